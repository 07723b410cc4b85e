"""Multi-head scaled dot-product attention, for self- and cross-attention."""

import math

import keras
from keras import ops

from keras_transformer.layers.masking import (
    causal_mask,
    merge_masks,
    padding_to_attention_mask,
    unblock_empty_rows,
)
from keras_transformer.layers.utils import clone_initializer
from keras_transformer.validation import (
    check_positive_int,
    check_rate,
    check_sequence_shape,
    divide_heads,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head attention over a sequence itself, or over a context.

    Projects the queries from `inputs` and the keys and values from `context`
    (from `inputs` when no context is given) into `num_heads` heads of width
    `key_dim`, computes in each head the scaled dot-product attention
    `softmax(Q K^T / sqrt(key_dim)) V`, concatenates the heads and projects
    them back to the width of `inputs` (Vaswani et al., 2017, section 3.2).

    The attention runs through `keras.ops.dot_product_attention`, so that each
    backend can use its fused kernel (flash or memory-efficient attention on
    GPU), unless the call needs the attention probabilities themselves: when
    `return_attention_scores=True`, or when attention dropout is active while
    training.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int or None. Width of each head's queries, keys and values.
            Defaults to `d_model // num_heads`, which must then divide evenly.
        dropout: float in [0, 1). Dropout on the attention probabilities.
            Defaults to `0`.
        use_bias: bool. Whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.
        bias_initializer: initializer of the projection biases.
        seed: int or None. Seed of the attention dropout.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Call arguments:
        inputs: query sequence `(batch, query_len, d_model)`.
        context: key/value sequence `(batch, key_len, d_context)`, or None for
            self-attention.
        attention_mask: boolean tensor `(batch, query_len, key_len)`, True
            where a query may attend a key.
        use_causal_mask: bool. Also forbid attending to later positions.
        return_attention_scores: bool. Also return the attention
            probabilities `(batch, num_heads, query_len, key_len)`. Not with
            a `cache`: the scores of a decoded sequence come from one call
            on the whole of it.
        training: bool. Whether dropout is active.
        cache: optional key/value cache `(batch, 2, num_heads, max_len,
            key_dim)` for incremental decoding, heads before positions so
            that each head's keys and values lie together, as the attention
            reads them. With `cache_index`, the keys and values of `inputs`
            (or `context`) are written at that index and the queries attend
            the whole cache (with `use_causal_mask`, only the positions up to
            their own). Without `cache_index`, the cache holds precomputed
            keys and values, from `compute_key_value_cache(context)`.
        cache_index: int or scalar int tensor. Position of the first query
            (and of the first cache entry written).
        mask, inputs_mask: boolean `(batch, query_len)`, True at the real
            positions of `inputs`. Keras passes the Keras mask of `inputs`
            as `mask` when `inputs` is the only tensor argument, else as
            `inputs_mask`.
        context_mask: boolean `(batch, key_len)`, True at the real positions
            of `context`; Keras passes the Keras mask of `context`.

    Returns: the outputs `(batch, query_len, d_model)`; `(outputs, scores)`
    with `return_attention_scores`; `(outputs, cache)`, the cache updated,
    whenever a `cache` is given (the incremental call). The same structure
    in a functional model as eagerly.

    Masking: the Keras mask of `context` (of `inputs` for self-attention)
    marks the keys that may be attended; it is merged with `attention_mask`
    and the causal mask (a cache's keys are masked only by `attention_mask`
    and the causal mask). The output carries the Keras mask of `inputs`. A
    query that may attend nothing gets finite values, never NaN.

    Example:

    >>> x = keras.random.normal((2, 5, 16))
    >>> attention = keras_transformer.MultiHeadSelfAttention(num_heads=4)
    >>> tuple(attention(x, use_causal_mask=True).shape)
    (2, 5, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = None if key_dim is None else check_positive_int("key_dim", key_dim)
        self.dropout = check_rate("dropout", dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.supports_masking = True

    def build(self, inputs_shape, context_shape=None):
        d_model = check_sequence_shape("inputs", inputs_shape)
        if context_shape is None:
            context_shape = inputs_shape
        check_sequence_shape("context", context_shape)
        self.head_dim = self.key_dim or divide_heads(d_model, self.num_heads, "d_model")
        heads_width = self.num_heads * self.head_dim
        self.query_dense = self._dense(heads_width, "query", inputs_shape)
        self.key_dense = self._dense(heads_width, "key", context_shape)
        self.value_dense = self._dense(heads_width, "value", context_shape)
        self.output_dense = self._dense(d_model, "attention_output", (None, None, heads_width))
        self.probability_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.built = True

    def _dense(self, units, name, inputs_shape):
        dense = keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        dense.build(inputs_shape)
        return dense

    def call(
        self,
        inputs,
        context=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        cache=None,
        cache_index=None,
        mask=None,
        inputs_mask=None,
        context_mask=None,
    ):
        _check_cache_arguments(return_attention_scores, cache, cache_index)
        keys_source = inputs if context is None else context
        query = self._split_heads(self.query_dense(inputs))  # (batch, query_len, heads, dim)
        if cache is not None:
            return self._attend_cache(
                query, keys_source, cache, cache_index, attention_mask, use_causal_mask, training
            )
        key = self._split_heads(self.key_dense(keys_source))  # (batch, key_len, heads, dim)
        value = self._split_heads(self.value_dense(keys_source))  # (batch, key_len, heads, dim)
        key_padding = _key_padding(context, mask, inputs_mask, context_mask)
        attention_mask = self._attention_mask(
            query, ops.shape(key)[1], key_padding, attention_mask, use_causal_mask, None
        )
        attended, scores = self._attend(
            query, key, value, attention_mask, return_attention_scores, training
        )  # attended: (batch, query_len, heads, dim)
        outputs = self._merge_and_project(attended)
        return (outputs, scores) if return_attention_scores else outputs

    def _merge_and_project(self, attended):
        return self.output_dense(self._merge_heads(attended))  # (batch, query_len, d_model)

    def _attend_cache(
        self, query, keys_source, cache, cache_index, attention_mask, use_causal_mask, training
    ):
        """The incremental call: `(outputs, cache)`. With `cache_index`, the
        keys and values of `keys_source` are first written into the cache
        from that index on; without, the cache holds precomputed keys and
        values (of an encoder's outputs, say) and `keys_source` is not used."""
        if cache_index is not None:
            update = self.compute_key_value_cache(keys_source)  # (batch, 2, heads, new_len, dim)
            start = [0, 0, 0, cache_index, 0]
            cache = ops.slice_update(cache, start, ops.cast(update, cache.dtype))
        attention_mask = self._attention_mask(
            query, ops.shape(cache)[3], None, attention_mask, use_causal_mask, cache_index
        )
        # Views in the layout the attention takes; XLA folds the transposes
        # into its dots, torch's attention transposes them back.
        key, value = (ops.transpose(cache[:, i], (0, 2, 1, 3)) for i in (0, 1))
        attended, _ = self._attend(
            query, key, value, attention_mask, return_attention_scores=False, training=training
        )
        return self._merge_and_project(attended), cache  # (batch, query_len, d_model)

    def _attend(self, query, key, value, mask, return_attention_scores, training):
        """The heads' attended values and, when they are materialised (for
        the scores, or for dropout while training), the probabilities."""
        if return_attention_scores or (training and self.dropout > 0):
            return self._explicit_attention(query, key, value, mask, training)
        attended = ops.dot_product_attention(
            query, key, value, mask=mask, scale=1.0 / math.sqrt(self.head_dim)
        )  # (batch, query_len, heads, dim)
        return attended, None

    def compute_key_value_cache(self, context):
        """Projects `context` `(batch, key_len, d_context)` to the keys and
        values `(batch, 2, heads, key_len, key_dim)` that `call(...,
        cache=...)` attends without recomputing them: the cross-attention
        cache of decoding, computed once per source sentence."""
        key = self._split_heads(self.key_dense(context))  # (batch, key_len, heads, dim)
        value = self._split_heads(self.value_dense(context))  # (batch, key_len, heads, dim)
        stacked = ops.stack([key, value], axis=1)  # (batch, 2, key_len, heads, dim)
        return ops.transpose(stacked, (0, 1, 3, 2, 4))  # (batch, 2, heads, key_len, dim)

    def _attention_mask(
        self, query, key_length, key_padding, attention_mask, use_causal_mask, start_index
    ):
        """Merges the key padding, explicit and causal masks, for all heads."""
        look_ahead = None
        if use_causal_mask:
            query_length = ops.shape(query)[1]
            start_index = 0 if start_index is None else start_index
            look_ahead = causal_mask(query_length, key_length, start_index)
        mask = merge_masks(padding_to_attention_mask(key_padding), attention_mask, look_ahead)
        if mask is None:
            return None
        if len(mask.shape) == 2:
            mask = ops.expand_dims(mask, 0)  # (1, query_len, key_len)
        mask = unblock_empty_rows(mask)  # (batch, query_len | 1, key_len)
        return ops.expand_dims(mask, 1)  # (batch, 1, query_len | 1, key_len)

    def _explicit_attention(self, query, key, value, mask, training):
        """Attention with the probabilities materialised (dropout, scores)."""
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key)  # (batch, heads, query_len, key_len)
        scores = ops.cast(scores, "float32") * scale
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        probabilities = ops.cast(ops.softmax(scores, axis=-1), value.dtype)
        dropped = self.probability_dropout(probabilities, training=training)
        attended = ops.einsum("bhqk,bkhd->bqhd", dropped, value)  # (batch, query_len, heads, dim)
        return attended, probabilities

    def _split_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads, self.head_dim))

    def _merge_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads * self.head_dim))

    def compute_output_shape(self, inputs_shape, context_shape=None):
        return inputs_shape

    def compute_output_spec(
        self,
        inputs,
        context=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        cache=None,
        cache_index=None,
        **masks,
    ):
        _check_cache_arguments(return_attention_scores, cache, cache_index)
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if cache is not None:
            return outputs, keras.KerasTensor(cache.shape, dtype=cache.dtype)
        if not return_attention_scores:
            return outputs
        key_length = (inputs if context is None else context).shape[1]
        scores_shape = (inputs.shape[0], self.num_heads, inputs.shape[1], key_length)
        return outputs, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config


def _key_padding(context, mask, inputs_mask, context_mask):
    """The padding of the attended keys, `(batch, key_len)` or None: that of
    `context`, or of `inputs` in self-attention."""
    if context is not None:
        return context_mask
    return merge_masks(mask, inputs_mask)


def _check_cache_arguments(return_attention_scores, cache, cache_index) -> None:
    if cache is None and cache_index is not None:
        raise ValueError(
            "`cache_index` is the position written into a `cache`, but no `cache` was "
            f"given. Received: cache=None, cache_index={cache_index!r}"
        )
    if cache is not None and return_attention_scores:
        raise ValueError(
            "A call with a `cache` returns `(outputs, cache)`; the attention scores "
            "come from a call without one, on the whole sequence. Received: "
            "return_attention_scores=True and a cache"
        )
