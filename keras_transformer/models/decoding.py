"""Cached autoregressive decoding for `Transformer`: one compiled function
per sampler, kept in a bounded cache, reused for every input of one shape.

Each step feeds one target token through the decoder: its self-attention keys
and values are appended to a cache, and the cross-attention keys and values
of the encoder outputs are computed once per source sentence, so a step costs
one token's work instead of re-running the decoder on the whole prefix.
"""

import collections
import contextlib
import functools
import itertools
import logging
import warnings
from collections.abc import Callable, Hashable

import keras
import numpy as np
from keras import ops

from keras_transformer.validation import is_int

CacheInfo = collections.namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


class DecoderCache:
    """The compiled decoders of one model, least recently used dropped first.

    A decoder holds compiled code (an XLA executable per input shape, or
    TorchScript traces), so the cache keeps at most `maxsize` of them: a
    program that decodes with many sampler settings recompiles the ones it
    dropped instead of growing without bound. `info()` reports its use as
    `functools.lru_cache` does.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.decoders = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], "CompiledDecoder"]) -> "CompiledDecoder":
        """The decoder stored under `key`, made with `make()` if absent."""
        if key in self.decoders:
            self.hits += 1
            self.decoders.move_to_end(key)
            return self.decoders[key]
        self.misses += 1
        self.decoders[key] = decoder = make()
        while len(self.decoders) > self.maxsize:
            self.decoders.popitem(last=False)
        return decoder

    def info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, self.maxsize, len(self.decoders))


class CompiledDecoder:
    """Decodes with a `Transformer`'s layers and one sampler; made by
    `Transformer.generate` and kept in its `DecoderCache`.

    Holds the sampler and its decoding function, compiled for the backend
    unless `run_eagerly`, so repeated calls with inputs of the same shape
    reuse one trace (XLA on TensorFlow and JAX; on torch the loop runs in
    Python without a gradient tape and each decoder step is a TorchScript
    trace, `TorchTracedStep`). A seeded sampler restarts from its seed at
    every call, so equal inputs decode to equal outputs.
    """

    def __init__(self, model, sampler, run_eagerly: bool = False):
        self.model = model
        self.sampler = sampler
        self.seed_state = None
        if getattr(sampler, "seed", None) is not None:
            self.seed_state = [ops.convert_to_numpy(v.value) for v in sampler.variables]
        self.run_eagerly = run_eagerly
        self.decoder_step = self._decoder_step
        if keras.config.backend() == "torch" and not run_eagerly:
            self.decoder_step = TorchTracedStep(self._decoder_step, model)
        self._compile_functions()

    def _compile_functions(self):
        self.compiled = self._compile(self._generate_step)

    def _compile(self, function):
        return _compile(function, self.model, self.sampler, self.run_eagerly)

    def __call__(self, encoder_inputs, prompt, end_token_id):
        if self.seed_state is not None:
            for variable, value in zip(self.sampler.variables, self.seed_state, strict=True):
                variable.assign(value)
        end = ops.convert_to_tensor(end_token_id, "int32")
        return self.compiled(encoder_inputs, prompt, end)

    # === The decoding step, with caches ===

    def _initial_cache(self, encoder_inputs, max_length):
        """Encodes the source once; returns the caches every step reads, one
        tensor per decoder block (a block's cache is updated in place where
        the backend can, never copied along with the others)."""
        model = self.model
        encoder_outputs = model.encode(encoder_inputs)  # (batch, source_len, d_model)
        cross = tuple(
            block.compute_cross_attention_cache(encoder_outputs) for block in model.decoder_blocks
        )  # each (batch, 2, heads, source_len, dim)
        batch, _, heads, _, dim = ops.shape(cross[0])
        self_caches = tuple(
            ops.zeros((batch, 2, heads, max_length, dim), dtype=model.compute_dtype)
            for _ in model.decoder_blocks
        )  # each (batch, 2, heads, max_len, dim)
        source_mask = ops.expand_dims(ops.not_equal(encoder_inputs, 0), 1)  # (batch, 1, src)
        return {"self": self_caches, "cross": cross, "source_mask": source_mask}

    def _next(self, prompt, cache, index):
        """Logits of the token at `index`, from the token at `index - 1`."""
        position = index - 1
        token = ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1])  # (batch, 1)
        logits, self_caches = self.decoder_step(
            token, position, cache["self"], cache["cross"], cache["source_mask"]
        )
        return logits, None, {**cache, "self": self_caches}

    def _decoder_step(self, token, position, self_caches, cross_caches, source_mask):
        """One token per row through the decoder: the logits of the next
        token `(batch, vocab)` and the blocks' self-attention caches with
        this token's keys and values written at `position`."""
        model = self.model
        y = model.target_embedding(token, start_index=position)  # (batch, 1, d_model)
        updated = []
        for block, self_cache, cross_cache in zip(
            model.decoder_blocks, self_caches, cross_caches, strict=True
        ):
            y, self_cache = block(
                y,
                self_attention_cache=self_cache,
                cache_index=position,
                cross_attention_cache=cross_cache,
                cross_attention_mask=source_mask,
            )
            updated.append(self_cache)
        logits = ops.cast(model.project_to_vocabulary(y)[:, 0], "float32")  # (batch, vocab)
        return forbid_padding(logits), tuple(updated)

    def _generate_step(self, encoder_inputs, prompt, end_token_id):
        cache = self._initial_cache(encoder_inputs, ops.shape(prompt)[1])
        given = ops.arange(ops.shape(prompt)[1]) < 1  # the start token is given
        return self.sampler(
            self._next,
            prompt,
            cache=cache,
            index=1,
            mask=ops.broadcast_to(ops.expand_dims(given, 0), ops.shape(prompt)),
            stop_token_ids=[end_token_id],
            model=self.model,
        )


class ShrinkingGreedyDecoder(CompiledDecoder):
    """Greedy decoding that takes the rows which have ended out of the batch.

    A batch decodes until its longest output ends, and a step costs more
    the more rows it has (on a CPU nearly in proportion), so one long
    output would keep a whole batch decoding. Here a batch of at least
    `MIN_ROUND_ROWS` rows decodes in rounds of `ROUND_STEPS` steps; after a
    round, when the rows still going fit in half the rows or fewer, they go
    on alone in a batch of the smallest power of two that holds them
    (repeating one of them), their caches gathered; once fewer than
    `MIN_ROUND_ROWS`, to their end in one call. A smaller batch decodes as
    `CompiledDecoder` does, in one call of keras-nlp's greedy loop: each
    round costs a call of a compiled function, which small batches do not
    win back. A power of two keeps the compiled shapes few: at most
    `log2(batch) + 1` row counts per input shape. Greedy decoding treats
    each row on its own, so a row's output does not depend on the rows it
    is batched with.

    Made by `Transformer.generate` for a greedy sampler (`sampler="greedy"`
    or a `keras_nlp.samplers.GreedySampler`); other samplers decode every
    row to the end of the batch (`CompiledDecoder`).
    """

    ROUND_STEPS = 8
    MIN_ROUND_ROWS = 16

    def _compile_functions(self):
        super()._compile_functions()  # the whole loop in one call, for small batches
        self.begin = self._compile(self._begin)
        self.advance = self._compile(self._advance)
        self.shapes = set()  # the batch shapes whose rounds are compiled

    def __call__(self, encoder_inputs, prompt, end_token_id):
        if len(prompt) < self.MIN_ROUND_ROWS:
            return super().__call__(encoder_inputs, prompt, end_token_id)
        end = ops.convert_to_tensor(end_token_id, "int32")
        max_length = prompt.shape[1]
        index = self._round_end(1, len(prompt), max_length)
        state = self.begin(encoder_inputs, prompt, _int32(index), end)
        self._compile_rounds(state, end)
        outputs = np.array(prompt)  # (batch, max_len)
        output_rows = np.arange(len(prompt))  # the output row of each decoded row
        while index < max_length:
            going = np.flatnonzero(~ops.convert_to_numpy(state["ended"]))  # (rows going,)
            if not len(going):
                break
            if _rows_for(len(going)) < len(output_rows):
                outputs[output_rows] = ops.convert_to_numpy(state["prompt"])
                state, output_rows = _keep_rows(state, output_rows, going)
            stop = self._round_end(index, len(output_rows), max_length)
            state = self.advance(state, _int32(index), _int32(stop), end)
            index = stop
        outputs[output_rows] = ops.convert_to_numpy(state["prompt"])
        return outputs

    def _compile_rounds(self, state, end):
        """Compiles `advance` for the shapes of `state` and of every smaller
        power of two rows, and the gathers that take rows out, the first
        time a batch of these shapes decodes, by calls that decode and keep
        nothing: so that decoding each batch shape once (a server's
        warm-up) compiles all that its rounds need."""
        shapes = tuple(tuple(x.shape) for x in keras.tree.flatten(state))
        if shapes in self.shapes:
            return
        self.shapes.add(shapes)
        # One trace per shape, as intended: TensorFlow would warn of retracing.
        with _logger_level("tensorflow", logging.ERROR):
            self.advance(state, _int32(1), _int32(1), end)
            rows = 1
            while rows < len(state["ended"]):
                fewer = _take_rows(state, np.zeros(rows, "int32"))
                self.advance(fewer, _int32(1), _int32(1), end)
                rows *= 2

    def _round_end(self, index: int, rows: int, max_length: int) -> int:
        """Where a round from `index` stops: after `ROUND_STEPS` steps, or
        at the end for fewer than `MIN_ROUND_ROWS` rows."""
        if rows < self.MIN_ROUND_ROWS:
            return max_length
        return min(index + self.ROUND_STEPS, max_length)

    def _begin(self, encoder_inputs, prompt, stop, end_token_id):
        """Encodes the sources and decodes up to `stop`: the state `advance`
        goes on from (the caches, the prompt and which rows have ended)."""
        cache = self._initial_cache(encoder_inputs, ops.shape(prompt)[1])
        ended = ops.zeros((ops.shape(prompt)[0],), "bool")  # (batch,)
        state = {**cache, "prompt": prompt, "ended": ended}
        return self._advance(state, 1, stop, end_token_id)

    def _advance(self, state, index, stop, end_token_id):
        """Decodes the tokens from `index` to `stop` (excluded), or until
        every row has ended; a row that has ended gets 0."""
        index, stop = (ops.convert_to_tensor(i, "int32") for i in (index, stop))

        def going(state, index):
            return ops.logical_and(index < stop, ops.logical_not(ops.all(state["ended"])))

        def step(state, index):
            logits, _, cache = self._next(state["prompt"], state, index)  # (batch, vocab)
            token = ops.cast(ops.argmax(logits, axis=-1), "int32")  # (batch,)
            token = ops.where(state["ended"], 0, token)
            prompt = ops.slice_update(state["prompt"], [0, index], token[:, None])
            ended = ops.logical_or(state["ended"], token == end_token_id)
            return {**cache, "prompt": prompt, "ended": ended}, index + 1

        state, _ = ops.while_loop(going, step, (state, index))
        return state


def _rows_for(count: int) -> int:
    """The smallest power of two >= `count` (1 for 0)."""
    return 1 << max(0, count - 1).bit_length()


def _keep_rows(state, output_rows, going):
    """The decoding state and output rows of the rows `going` only, in a
    batch of `_rows_for(len(going))` rows (the first of them repeated)."""
    kept = np.concatenate([going, np.repeat(going[:1], _rows_for(len(going)) - len(going))])
    return _take_rows(state, kept.astype("int32")), output_rows[kept]


def _take_rows(state, rows):
    """`state`'s tensors at `rows` of their first axis. On JAX one compiled
    gather for the whole state (compiled once per shape; op by op, each
    tensor's gather would compile on its own)."""
    if keras.config.backend() != "jax":
        return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), state)
    return _jax_take_rows()(state, rows)


@functools.cache
def _jax_take_rows():
    import jax

    return jax.jit(lambda state, rows: jax.tree.map(lambda x: x[rows], state))


@contextlib.contextmanager
def _logger_level(name: str, level: int):
    """The Python logger `name` at `level` or above inside the block."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(level, previous))
    try:
        yield
    finally:
        logger.setLevel(previous)


def _int32(value: int) -> np.ndarray:
    """`value` as a compiled function's int32 scalar argument (a NumPy one:
    converting it to a backend tensor first costs more than the call)."""
    return np.asarray(value, "int32")


class TorchTracedStep:
    """A decoder step traced into a TorchScript graph, one per input shape.

    On torch every Keras layer call and op costs tens of microseconds of
    Python, far more than the arithmetic of one token: tracing records the
    step's tensor operations once, so later steps run without the layers'
    Python. The model's weights are inputs of the trace (read through a
    `keras.StatelessScope`), so a trace always computes with their current
    values; the step's position is a tensor input, so one trace serves every
    step.

    A trace costs about as much as `EAGER_STEPS` eager steps, so a shape runs
    eagerly for its first `EAGER_STEPS` steps (across calls) and is traced
    after: short outputs never pay for a trace, and long or repeated ones pay
    at most twice the cheaper of the two.
    """

    EAGER_STEPS = 16

    def __init__(self, step, model):
        self.step = step
        self.variables = list(model.trainable_variables) + list(model.non_trainable_variables)
        self.eager_steps = {}  # steps run eagerly, per input shape
        self.traces = {}

    def __call__(self, token, position, self_caches, *rest):
        import torch

        inputs = keras.tree.map_structure(
            torch.as_tensor, (token, position, tuple(self_caches), *rest)
        )
        key = tuple((tuple(x.shape), x.dtype) for x in keras.tree.flatten(inputs))
        if key not in self.traces:
            self.eager_steps[key] = self.eager_steps.get(key, 0) + 1
            if self.eager_steps[key] <= self.EAGER_STEPS:
                return self.step(*inputs)
        weights = [v.value for v in self.variables]
        if key not in self.traces:
            self.traces[key] = self._trace(weights, inputs)
        return self.traces[key](weights, *inputs)

    def _trace(self, weights, inputs):
        import torch

        def stateless_step(weights, *inputs):
            with keras.StatelessScope(state_mapping=zip(self.variables, weights, strict=True)):
                return self.step(*inputs)

        with warnings.catch_warnings():
            # Shapes are fixed per trace, so the tracer's warnings about them
            # are moot; a value frozen by mistake is caught below.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(stateless_step, (weights, *inputs), check_trace=False)
        if self._agrees(traced, stateless_step, weights, inputs):
            return traced
        warnings.warn(
            "The decoder step depends on its position in a way tracing cannot follow; "
            "decoding runs it eagerly (slower).",
            stacklevel=4,
        )
        return stateless_step

    @staticmethod
    def _agrees(traced, step, weights, inputs) -> bool:
        """Whether the trace computes what the step does at another position."""
        token, position, self_caches, *rest = inputs
        max_length = self_caches[0].shape[3]
        other = (token, (position + 1) % max_length, self_caches, *rest)
        expected, actual = step(weights, *other), traced(weights, *other)
        return all(
            np.allclose(ops.convert_to_numpy(e), ops.convert_to_numpy(a), atol=1e-5)
            for e, a in zip(keras.tree.flatten(expected), keras.tree.flatten(actual), strict=True)
        )


def forbid_padding(logits):
    """Gives the padding id 0 no probability: it is never a decoded token."""
    is_padding = ops.arange(ops.shape(logits)[-1]) == 0  # (vocab,)
    return ops.where(is_padding, -1e9, logits)


def _compile(generate_step, model, sampler, run_eagerly):
    """`generate_step` compiled for the backend: `jax.jit` with the model's
    and the sampler's variables passed as state, `tf.function(jit_compile=
    True)`, or torch eager without gradient tracking. With `run_eagerly`,
    op by op (on JAX under `jax.disable_jit`, so that loops run in Python)."""
    backend = keras.config.backend()
    if backend == "torch":
        import torch

        def no_grad_step(*args):
            with torch.no_grad():
                return generate_step(*args)

        return no_grad_step
    if backend == "tensorflow":
        import tensorflow as tf

        return generate_step if run_eagerly else tf.function(generate_step, jit_compile=True)
    import jax

    if run_eagerly:

        def eager_step(*args):
            with jax.disable_jit():
                return generate_step(*args)

        return eager_step
    return _jax_compile(generate_step, model, list(sampler.variables))


def _jax_compile(generate_step, model, sampler_variables):
    """`jax.jit` of `generate_step`, stateless: the variables go in as
    values and the sampler's advanced random state comes back out."""
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
    run_eagerly,
) -> None:
    """Raises `ValueError` for arguments `Transformer.generate` cannot use,
    checked in the order of its signature."""
    _check_encoder_inputs(encoder_inputs)
    vocabulary = model.target_vocabulary_size
    for name, value in (("start_token_id", start_token_id), ("end_token_id", end_token_id)):
        if not is_int(value) or not 0 < value < vocabulary:
            raise ValueError(
                f"`{name}` must be an int target id in [1, {vocabulary}). "
                f"Received: {name}={value!r}"
            )
    if not is_int(max_length) or max_length < 1:
        raise ValueError(f"`max_length` must be an int >= 1. Received: max_length={max_length!r}")
    if model.max_length is not None and max_length > model.max_length:
        raise ValueError(
            f"`max_length` must not exceed the model's `max_length` ({model.max_length}) "
            f"of learned positions. Received: max_length={max_length}"
        )
    if run_eagerly is not None and not isinstance(run_eagerly, bool):
        raise ValueError(f"`run_eagerly` must be a bool or None. Received: {run_eagerly!r}")


def _check_encoder_inputs(encoder_inputs) -> None:
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
