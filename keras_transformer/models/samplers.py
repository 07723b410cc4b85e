"""The samplers `Transformer.generate` decodes with, and how a sampler given
by name or as an object is turned into one.

A sampler is called as keras-nlp's samplers are:
`sampler(next, prompt, cache=..., index=..., mask=..., stop_token_ids=...)`,
where `next(prompt, cache, index)` returns the logits of the token at `index`.
"""

import json
from collections.abc import Hashable

import keras
from keras import ops

from keras_transformer.validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
    is_int,
)

SAMPLERS = ("greedy", "beam", "top_k", "top_p")
DEFAULT_BEAMS = 4


def choose_sampler(sampler="greedy", num_beams=None, seed=None):
    """Checks `generate`'s `sampler`, `num_beams` and `seed` together and
    returns the sampler they ask for: `"greedy"`, `"beam"` (`BeamSearch`
    with `num_beams`, 4 by default, and the paper's length penalty),
    `"top_k"` (k = 10) or `"top_p"` (p = 0.9) seeded with `seed`, or the
    sampler object given.

    Raises:
        ValueError: for an unknown name, an object that is not callable,
            `num_beams` without `sampler="beam"`, or `seed` without a sampler
            given by name.
    """
    if isinstance(sampler, str):
        check_choice("sampler", sampler, SAMPLERS)
    elif not callable(sampler):
        raise ValueError(
            f"`sampler` must be one of {list(SAMPLERS)} or a sampler object (a "
            f"keras_nlp.samplers.Sampler, or BeamSearch). Received: sampler={sampler!r}"
        )
    if num_beams is not None and (sampler != "beam" or not is_int(num_beams) or num_beams < 1):
        raise ValueError(
            "`num_beams` must be an int >= 1, with sampler='beam' (a BeamSearch object "
            f"carries its own). Received: num_beams={num_beams!r}, sampler={sampler!r}"
        )
    if seed is not None and (not isinstance(sampler, str) or not is_int(seed)):
        raise ValueError(
            "`seed` must be an int, with a sampler given by name (a sampler object "
            f"carries its own seed). Received: seed={seed!r}, sampler={sampler!r}"
        )
    if not isinstance(sampler, str):
        return sampler
    if sampler == "beam":
        return BeamSearch(num_beams or DEFAULT_BEAMS)
    return _keras_nlp_sampler(sampler, seed)


def sampler_key(sampler) -> Hashable:
    """What makes two samplers decode alike: their class and configuration
    (`get_config`), or for a sampler without one, the object itself."""
    if not hasattr(sampler, "get_config"):
        return ("object", id(sampler))
    config = json.dumps(sampler.get_config(), sort_keys=True, default=repr)
    sampler_class = type(sampler)
    return (sampler_class.__module__, sampler_class.__qualname__, config)


def is_greedy(sampler) -> bool:
    """Whether `sampler` is keras-nlp's `GreedySampler` (what `"greedy"`
    gives): the most probable token at every step, whatever its
    temperature."""
    sampler_class = type(sampler)
    return sampler_class.__name__ == "GreedySampler" and sampler_class.__module__.startswith(
        ("keras_hub.", "keras_nlp.")
    )


def _keras_nlp_sampler(name, seed):
    try:
        import keras_nlp
    except ImportError as error:
        raise ImportError(
            f"`sampler={name!r}` uses keras-nlp's samplers: "
            "pip install 'keras-transformer[generate]'"
        ) from error
    if name == "top_k":
        return keras_nlp.samplers.TopKSampler(k=10, seed=seed)
    if name == "top_p":
        return keras_nlp.samplers.TopPSampler(p=0.9, seed=seed)
    return keras_nlp.samplers.GreedySampler()


class BeamSearch:
    """Beam search with the length penalty of Wu et al. (2016), as a sampler.

    Keeps the `num_beams` most probable hypotheses of each row, ranked by
    `log P(y) / ((5 + |y|) / 6) ** length_penalty`; the Transformer paper
    decodes with 4 beams and `length_penalty=0.6` (section 6.1). A hypothesis
    that has produced a stop token keeps its score and is extended with
    padding only; decoding ends when every kept hypothesis has ended, and
    each row gets its best hypothesis.

    It is called like keras-nlp's samplers, so `Transformer.generate` takes
    either: `generate(..., sampler=BeamSearch(num_beams=8))`, or
    `sampler="beam"` for the paper's settings.

    Args:
        num_beams: int. Hypotheses kept per row. Defaults to `4`.
        length_penalty: float >= 0. The exponent alpha of the length
            penalty; `0` ranks by probability alone. Defaults to `0.6`.

    Example:

    >>> keras_transformer.BeamSearch(num_beams=8).get_config()
    {'num_beams': 8, 'length_penalty': 0.6}

    Reference:
        Wu et al., "Google's Neural Machine Translation System", 2016.
    """

    variables = ()  # no random state

    def __init__(self, num_beams: int = DEFAULT_BEAMS, length_penalty: float = 0.6):
        self.num_beams = check_positive_int("num_beams", num_beams)
        self.length_penalty = check_non_negative("length_penalty", length_penalty)

    def __call__(
        self,
        next,
        prompt,
        cache=None,
        index=0,
        mask=None,
        stop_token_ids=None,
        hidden_states=None,
        model=None,
    ):
        """Decodes `prompt` `(batch, max_length)` from position `index` on
        with `next(prompt, cache, index) -> (logits, hidden_states, cache)`;
        returns the best hypothesis of each row, `(batch, max_length)`."""
        return beam_search(
            next, prompt, cache, index, stop_token_ids, self.num_beams, self.length_penalty
        )

    def get_config(self) -> dict:
        return {"num_beams": self.num_beams, "length_penalty": self.length_penalty}


def beam_search(next_fn, prompt, cache, index, stop_token_ids, num_beams, length_penalty):
    """The loop of `BeamSearch`: its docstring says what it computes."""
    batch, max_length = ops.shape(prompt)

    def repeat(x):  # (batch, ...) -> (batch*beams, ...)
        return ops.repeat(x, num_beams, axis=0)

    prompt, cache = repeat(prompt), keras.tree.map_structure(repeat, cache)
    first_beam_only = ops.convert_to_tensor([0.0] + [-1e9] * (num_beams - 1))
    log_probs = ops.reshape(ops.tile(first_beam_only[None], (batch, 1)), (-1,))  # (batch*beams,)
    lengths = ops.zeros_like(log_probs)  # tokens generated, the end token included
    finished = ops.zeros_like(log_probs, dtype="bool")

    def penalty(length):
        return ops.power((5.0 + length) / 6.0, length_penalty)

    def cond(prompt, cache, index, log_probs, lengths, finished):
        return ops.logical_not(ops.all(finished))

    def body(prompt, cache, index, log_probs, lengths, finished):
        logits, _, cache = next_fn(prompt, cache, index)
        token_log_probs = ops.log_softmax(logits, axis=-1)  # (batch*beams, vocab)
        vocabulary = ops.shape(token_log_probs)[-1]
        padding_only = ops.where(ops.arange(vocabulary) == 0, 0.0, -1e9)  # (vocab,)
        token_log_probs = ops.where(finished[:, None], padding_only, token_log_probs)
        new_lengths = ops.where(finished, lengths, lengths + 1.0)
        candidates = log_probs[:, None] + token_log_probs  # (batch*beams, vocab)
        ranking = candidates / penalty(new_lengths)[:, None]
        ranking = ops.reshape(ranking, (batch, num_beams * vocabulary))
        _, chosen = ops.top_k(ranking, k=num_beams)  # (batch, beams)
        source_beam = chosen // vocabulary + ops.arange(batch)[:, None] * num_beams
        source_beam = ops.reshape(source_beam, (-1,))  # (batch*beams,)
        tokens = ops.cast(ops.reshape(chosen % vocabulary, (-1,)), prompt.dtype)

        def gather(x):  # the rows of the chosen hypotheses' parents
            return ops.take(x, source_beam, axis=0)

        prompt, cache = gather(prompt), keras.tree.map_structure(gather, cache)
        log_probs = ops.take_along_axis(
            ops.reshape(candidates, (-1,)), source_beam * vocabulary + ops.cast(tokens, "int32"), 0
        )
        lengths, finished = gather(new_lengths), gather(finished)
        finished = ops.logical_or(finished, _is_stop(tokens, stop_token_ids))
        prompt = ops.slice_update(prompt, [0, index], tokens[:, None])
        return prompt, cache, index + 1, log_probs, lengths, finished

    prompt, _, _, log_probs, lengths, _ = ops.while_loop(
        cond,
        body,
        (prompt, cache, ops.convert_to_tensor(index, "int32"), log_probs, lengths, finished),
        maximum_iterations=max_length - index,
    )
    scores = ops.reshape(log_probs / penalty(lengths), (batch, num_beams))
    best = ops.argmax(scores, axis=-1) + ops.arange(batch) * num_beams  # (batch,)
    return ops.take(prompt, best, axis=0)  # (batch, max_length)


def _is_stop(tokens, stop_token_ids):
    """Whether each token is one of `stop_token_ids` (never when None)."""
    stops = [ops.equal(tokens, ops.cast(stop, tokens.dtype)) for stop in stop_token_ids or ()]
    if not stops:
        return ops.zeros_like(tokens, dtype="bool")
    return ops.any(ops.stack(stops), axis=0)
