"""One layer of the Transformer decoder."""

import keras

from keras_transformer.layers.masking import merge_masks
from keras_transformer.layers.transformer_block import TransformerBlock
from keras_transformer.validation import check_sequence_shape


@keras.saving.register_keras_serializable(package="keras_transformer")
class DecoderBlock(TransformerBlock):
    """One decoder layer: causal self-attention, cross-attention over the
    encoder outputs, then a position-wise feed-forward network, each wrapped
    in dropout, a residual connection and layer normalization (Vaswani et
    al., 2017, section 3.1):

        y = LayerNorm(y + Dropout(MultiHeadSelfAttention(y, causal)))
        y = LayerNorm(y + Dropout(MultiHeadSelfAttention(y, encoder_outputs)))
        y = LayerNorm(y + Dropout(FeedForward(y)))

    Called without `encoder_outputs` (and built without them) the block has
    no cross-attention: a decoder-only (language model) layer.

    Args:
        num_heads: int. Number of attention heads; must divide `d_model`.
        ff_dim: int. Width of the feed-forward network's inner layer.
        dropout: float in [0, 1). Dropout on each sublayer's output before
            the residual addition. Defaults to `0.1`, as in the paper.
        attention_dropout: float in [0, 1). Dropout on the attention
            probabilities. Defaults to `0`.
        activation: activation of the feed-forward network. Defaults to
            `"relu"`.
        norm_first: bool. Pre-norm instead of the paper's post-norm.
        layer_norm_epsilon: float. Epsilon of the layer normalizations.
            Defaults to `1e-5`.
        kernel_initializer: initializer of every dense kernel.
        bias_initializer: initializer of every dense bias.
        seed: int or None. Seed of the dropout layers.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Call arguments:
        inputs: target sequence `(batch, target_len, d_model)`.
        encoder_outputs: source sequence `(batch, source_len, d_source)`, or
            None for a block without cross-attention.
        self_attention_mask: optional boolean `(batch, target_len,
            target_len)` merged with the causal mask.
        cross_attention_mask: optional boolean `(batch, target_len,
            source_len)`.
        use_causal_mask: bool. Forbid attending to later target positions.
            Defaults to `True`.
        training: bool. Whether dropout is active.
        self_attention_cache: optional `(batch, 2, num_heads, max_len,
            key_dim)` keys and values of the target positions decoded so
            far: the incremental call, which returns `(outputs, cache)`.
        cache_index: int or scalar int tensor. Position of `inputs` in the
            target sequence, where the cache is written; required with
            `self_attention_cache`.
        cross_attention_cache: optional precomputed keys and values of the
            encoder outputs, from `compute_cross_attention_cache`; then
            `encoder_outputs` may be None and `cross_attention_mask` carries
            the source padding.
        return_attention_scores: bool. Also return a dict of attention
            probabilities: `"self_attention"` `(batch, num_heads, target_len,
            target_len)` and, with cross-attention, `"cross_attention"`
            `(batch, num_heads, target_len, source_len)`. Not with caches:
            the scores of a decoded sequence come from one call on the whole
            of it.
        mask, inputs_mask: boolean `(batch, target_len)`, True at real target
            positions. Keras passes the Keras mask of `inputs`: as `mask`
            when `inputs` is the only tensor argument, else as `inputs_mask`.
        encoder_outputs_mask: boolean `(batch, source_len)`, True at real
            source positions; Keras passes the Keras mask of
            `encoder_outputs`.

    Returns `outputs`; `(outputs, scores)` with `return_attention_scores`;
    `(outputs, self_attention_cache)`, the cache updated, in the incremental
    call. The same structure in a functional model as eagerly.

    Masking: the Keras mask of `inputs` keeps padded target positions from
    being attended and is passed on to the output; the Keras mask of
    `encoder_outputs` keeps padded source positions from being attended.

    Example:

    >>> target = keras.random.normal((2, 4, 16))
    >>> source = keras.random.normal((2, 6, 16))
    >>> block = keras_transformer.DecoderBlock(num_heads=4, ff_dim=64)
    >>> tuple(block(target, source).shape)
    (2, 4, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def build(self, inputs_shape, encoder_outputs_shape=None):
        self._check_width(inputs_shape)
        self.self_attention = self._build_attention("self_attention", 0, inputs_shape)
        self.self_attention_norm, self.self_attention_dropout = self._build_norm_and_dropout(
            "self_attention", 0, inputs_shape
        )
        self.cross_attention = None
        if encoder_outputs_shape is not None:
            check_sequence_shape("encoder_outputs", encoder_outputs_shape)
            self.cross_attention = self._build_attention(
                "cross_attention", 1, inputs_shape, encoder_outputs_shape
            )
            self.cross_attention_norm, self.cross_attention_dropout = self._build_norm_and_dropout(
                "cross_attention", 1, inputs_shape
            )
        self.feed_forward = self._build_feed_forward(inputs_shape)
        self.feed_forward_norm, self.feed_forward_dropout = self._build_norm_and_dropout(
            "feed_forward", 2, inputs_shape
        )
        self.built = True

    def call(
        self,
        inputs,
        encoder_outputs=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        use_causal_mask=True,
        training=None,
        self_attention_cache=None,
        cache_index=None,
        cross_attention_cache=None,
        return_attention_scores=False,
        mask=None,
        inputs_mask=None,
        encoder_outputs_mask=None,
    ):
        self._check_call(encoder_outputs, self_attention_cache, cache_index, cross_attention_cache)
        seconds = {}  # the second output of each attention: its scores, or its cache
        attended, seconds["self_attention"] = _attend(
            self.self_attention,
            self._sublayer_input(inputs, self.self_attention_norm),
            cache=self_attention_cache,
            return_attention_scores=return_attention_scores,
            cache_index=cache_index,
            attention_mask=self_attention_mask,
            use_causal_mask=use_causal_mask,
            training=training,
            inputs_mask=merge_masks(mask, inputs_mask),
        )
        y = self._add_and_norm(
            inputs, attended, self.self_attention_norm, self.self_attention_dropout, training
        )
        if self.cross_attention is not None:
            attended, seconds["cross_attention"] = _attend(
                self.cross_attention,
                self._sublayer_input(y, self.cross_attention_norm),
                cache=cross_attention_cache,
                return_attention_scores=return_attention_scores,
                context=encoder_outputs,
                attention_mask=cross_attention_mask,
                training=training,
                context_mask=encoder_outputs_mask,
            )
            y = self._add_and_norm(
                y, attended, self.cross_attention_norm, self.cross_attention_dropout, training
            )
        transformed = self.feed_forward(self._sublayer_input(y, self.feed_forward_norm))
        outputs = self._add_and_norm(
            y, transformed, self.feed_forward_norm, self.feed_forward_dropout, training
        )  # (batch, target_len, d_model)
        if self_attention_cache is not None:
            return outputs, seconds["self_attention"]  # the updated cache
        return (outputs, seconds) if return_attention_scores else outputs

    def compute_output_spec(
        self,
        inputs,
        encoder_outputs=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        use_causal_mask=True,
        training=None,
        self_attention_cache=None,
        cache_index=None,
        cross_attention_cache=None,
        return_attention_scores=False,
        **masks,
    ):
        self._check_call(encoder_outputs, self_attention_cache, cache_index, cross_attention_cache)
        outputs = self._outputs_spec(inputs)
        if self_attention_cache is not None:
            _, cache = self.self_attention.compute_output_spec(
                inputs,
                return_attention_scores=return_attention_scores,
                cache=self_attention_cache,
                cache_index=cache_index,
            )
            return outputs, cache
        if not return_attention_scores:
            return outputs
        _, own = self.self_attention.compute_output_spec(inputs, return_attention_scores=True)
        scores = {"self_attention": own}
        if self.cross_attention is not None:
            _, scores["cross_attention"] = self.cross_attention.compute_output_spec(
                inputs, encoder_outputs, return_attention_scores=True, cache=cross_attention_cache
            )
        return outputs, scores

    def compute_cross_attention_cache(self, encoder_outputs):
        """The cross-attention keys and values of `encoder_outputs`, `(batch,
        2, num_heads, source_len, key_dim)`, to pass as
        `cross_attention_cache` at every decoding step."""
        return self.cross_attention.compute_key_value_cache(encoder_outputs)

    def _check_call(
        self, encoder_outputs, self_attention_cache, cache_index, cross_attention_cache
    ):
        if (self_attention_cache is None) != (cache_index is None):
            raise ValueError(
                "`self_attention_cache` and `cache_index` go together: the incremental call "
                "writes the step's keys and values into the cache at that index. Received: "
                f"self_attention_cache={'None' if self_attention_cache is None else 'a tensor'}, "
                f"cache_index={cache_index!r}"
            )
        built_with = self.cross_attention is not None
        called_with = encoder_outputs is not None or cross_attention_cache is not None
        if built_with != called_with:
            raise ValueError(
                f"`DecoderBlock` '{self.name}' was built "
                f"{'with' if built_with else 'without'} cross-attention, but is "
                f"called {'without' if built_with else 'with'} `encoder_outputs`. "
                "Call it the same way every time."
            )


def _attend(attention, inputs, cache, return_attention_scores, **kwargs):
    """Calls `attention` and returns `(outputs, second)`: the second output
    is the cache with a `cache` (the incremental call), the scores with
    `return_attention_scores`, else None."""
    results = attention(
        inputs, cache=cache, return_attention_scores=return_attention_scores, **kwargs
    )
    return results if cache is not None or return_attention_scores else (results, None)
