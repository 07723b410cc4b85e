"""Autoregressive decoding for `Transformer`: key/value caches, samplers and
one compiled function per sampler and input shape.

Each step feeds one target token through the decoder: its self-attention keys
and values are appended to a cache, and the cross-attention keys and values
of the encoder outputs are computed once per source sentence, so a step costs
one token's work instead of re-running the decoder on the whole prefix.
"""

import itertools

import keras
import numpy as np
from keras import ops

SAMPLERS = ("greedy", "beam", "top_k", "top_p")


class Generator:
    """Decodes with a `Transformer`'s layers; built by `Transformer.generate`.

    Holds the sampler and the compiled decoding function of one sampling
    configuration, so repeated calls with inputs of the same shape reuse one
    trace (XLA on TensorFlow and JAX; eager without a gradient tape on torch).
    """

    def __init__(self, model, sampler, num_beams, length_penalty, top_k, top_p, temperature):
        self.model = model
        self.sampler_name = sampler
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.sampler = _make_sampler(sampler, top_k, top_p, temperature)
        self.compiled = _compile(self._generate_step, model, self.sampler)
        self.trace_count = 0  # traces of the decoding function (every call on torch)

    def __call__(self, encoder_inputs, prompt, end_token_id, seed):
        if seed is not None and self.sampler is not None:
            state = self.sampler.seed_generator.state
            state.assign(ops.convert_to_tensor([seed, 0], dtype=state.dtype))
        end = ops.convert_to_tensor(end_token_id, "int32")
        return self.compiled(encoder_inputs, prompt, end)

    # === The decoding step, with caches ===

    def _initial_cache(self, encoder_inputs, max_length):
        """Encodes the source once; returns the caches every step reads."""
        model = self.model
        encoder_outputs = model.encode(encoder_inputs)  # (batch, source_len, d_model)
        cross = [b.compute_cross_attention_cache(encoder_outputs) for b in model.decoder_blocks]
        cross = ops.stack(cross, axis=1)  # (batch, layers, 2, source_len, heads, dim)
        batch, layers, _, _, heads, dim = ops.shape(cross)
        self_cache = ops.zeros(
            (batch, layers, 2, max_length, heads, dim), dtype=model.compute_dtype
        )  # (batch, layers, 2, max_len, heads, dim)
        source_mask = ops.expand_dims(ops.not_equal(encoder_inputs, 0), 1)  # (batch, 1, src)
        return {"self": self_cache, "cross": cross, "source_mask": source_mask}

    def _next(self, prompt, cache, index):
        """Logits of the token at `index`, from the token at `index - 1`."""
        model = self.model
        position = index - 1
        token = ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1])  # (batch, 1)
        y = model.target_embedding(token, start_index=position)  # (batch, 1, d_model)
        self_caches = []
        for i, block in enumerate(model.decoder_blocks):
            y, layer_cache = block(
                y,
                self_attention_cache=cache["self"][:, i],
                cache_index=position,
                cross_attention_cache=cache["cross"][:, i],
                cross_attention_mask=cache["source_mask"],
            )
            self_caches.append(layer_cache)
        logits = ops.cast(model.project_to_vocabulary(y)[:, 0], "float32")  # (batch, vocab)
        cache = {**cache, "self": ops.stack(self_caches, axis=1)}
        return forbid_padding(logits), None, cache

    def _generate_step(self, encoder_inputs, prompt, end_token_id):
        self.trace_count += 1
        cache = self._initial_cache(encoder_inputs, ops.shape(prompt)[1])
        if self.sampler_name == "beam":
            return beam_search(
                self._next, prompt, cache, end_token_id, self.num_beams, self.length_penalty
            )
        mask = ops.arange(ops.shape(prompt)[1]) < 1  # the start token is given
        mask = ops.broadcast_to(ops.expand_dims(mask, 0), ops.shape(prompt))
        return self.sampler(
            self._next,
            prompt,
            cache=cache,
            index=1,
            mask=mask,
            stop_token_ids=[end_token_id],
            model=self.model,
        )


def forbid_padding(logits):
    """Gives the padding id 0 no probability: it is never a decoded token."""
    is_padding = ops.arange(ops.shape(logits)[-1]) == 0  # (vocab,)
    return ops.where(is_padding, -1e9, logits)


def beam_search(next_fn, prompt, cache, end_token_id, num_beams, length_penalty):
    """Beam search with the length penalty of Wu et al. (2016), which the
    Transformer paper uses (alpha = 0.6): hypotheses are ranked by
    `log P(y) / ((5 + |y|) / 6) ** alpha`. A hypothesis that has produced the
    end token keeps its score and is extended with padding only; the loop
    ends when every kept hypothesis has ended.

    Returns the best hypothesis of each row, `(batch, max_length)`.
    """
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
        finished = ops.logical_or(finished, tokens == end_token_id)
        prompt = ops.slice_update(prompt, [0, index], tokens[:, None])
        return prompt, cache, index + 1, log_probs, lengths, finished

    prompt, _, _, log_probs, lengths, _ = ops.while_loop(
        cond,
        body,
        (prompt, cache, ops.convert_to_tensor(1, "int32"), log_probs, lengths, finished),
        maximum_iterations=max_length - 1,
    )
    scores = ops.reshape(log_probs / penalty(lengths), (batch, num_beams))
    best = ops.argmax(scores, axis=-1) + ops.arange(batch) * num_beams  # (batch,)
    return ops.take(prompt, best, axis=0)  # (batch, max_length)


def _make_sampler(name, top_k, top_p, temperature):
    if name == "beam":
        return None
    try:
        import keras_nlp
    except ImportError as error:
        raise ImportError(
            f"`sampler={name!r}` uses keras-nlp's samplers: "
            "pip install 'keras-transformer[generate]'"
        ) from error

    samplers = {
        "greedy": lambda: keras_nlp.samplers.GreedySampler(temperature=temperature),
        "top_k": lambda: keras_nlp.samplers.TopKSampler(k=top_k, temperature=temperature),
        "top_p": lambda: keras_nlp.samplers.TopPSampler(p=top_p, temperature=temperature),
    }
    return samplers[name]()


def _compile(generate_step, model, sampler):
    """`generate_step` compiled for the backend: `jax.jit` with the model's
    variables passed as state, `tf.function(jit_compile=True)`, or torch
    eager without gradient tracking."""
    backend = keras.config.backend()
    sampler_variables = [] if sampler is None else sampler.variables
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(generate_step, jit_compile=True)
    if backend == "torch":
        import torch

        def no_grad_step(*args):
            with torch.no_grad():
                return generate_step(*args)

        return no_grad_step
    import jax

    @jax.jit
    def stateless_step(state, *args):
        sampler_values, trainable, non_trainable = state
        mapping = itertools.chain(
            zip(sampler_variables, sampler_values, strict=True),
            zip(model.trainable_variables, trainable, strict=True),
            zip(model.non_trainable_variables, non_trainable, strict=True),
        )
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = generate_step(*args)
        new_sampler_values = [scope.get_current_value(v) for v in sampler_variables]
        return outputs, new_sampler_values

    def jax_step(*args):
        state = (
            [v.value for v in sampler_variables],
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        outputs, new_sampler_values = stateless_step(state, *args)
        for variable, value in zip(sampler_variables, new_sampler_values, strict=True):
            if value is not None:
                variable.assign(value)
        return outputs

    return jax_step


def pad_after_end(token_ids, end_token_id):
    """Sets every id after a row's first end token (past the start) to 0."""
    token_ids = np.array(token_ids)
    is_end = token_ids[:, 1:] == end_token_id
    after_end = np.cumsum(is_end, axis=1) - is_end > 0
    token_ids[:, 1:][after_end] = 0
    return token_ids


def check_generate_arguments(
    model,
    encoder_inputs,
    start_token_id,
    end_token_id,
    max_length,
    sampler,
    num_beams,
    top_k,
    top_p,
    temperature,
    length_penalty,
):
    """Raises `ValueError` for arguments `generate` cannot use."""
    vocabulary = model.target_vocabulary_size
    for name, value in (("start_token_id", start_token_id), ("end_token_id", end_token_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"`{name}` must be an int token id. Received: {name}={value!r}")
        if not 0 < value < vocabulary:
            raise ValueError(
                f"`{name}` must be a target id in [1, {vocabulary}). Received: {name}={value}"
            )
    checks = [
        ("max_length", max_length, isinstance(max_length, int) and max_length >= 1, ">= 1"),
        ("num_beams", num_beams, isinstance(num_beams, int) and num_beams >= 1, ">= 1"),
        ("sampler", sampler, sampler in SAMPLERS, f"one of {list(SAMPLERS)}"),
        ("top_k", top_k, isinstance(top_k, int) and top_k >= 1, ">= 1"),
        ("top_p", top_p, 0 < top_p <= 1, "in (0, 1]"),
        ("temperature", temperature, temperature > 0, "> 0"),
        ("length_penalty", length_penalty, length_penalty >= 0, ">= 0"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    if model.max_length is not None and max_length > model.max_length:
        raise ValueError(
            f"`max_length` must not exceed the model's `max_length` ({model.max_length}) "
            f"of learned positions. Received: max_length={max_length}"
        )
    shape = tuple(encoder_inputs.shape)
    if len(shape) != 2:
        raise ValueError(
            "`encoder_inputs` must be token ids of rank 2, (batch, source_len). "
            f"Received: encoder_inputs.shape={shape}"
        )
    dtype = keras.backend.standardize_dtype(encoder_inputs.dtype)
    if "int" not in dtype:
        raise ValueError(
            f"`encoder_inputs` must be integer token ids. Received: encoder_inputs.dtype={dtype}"
        )
