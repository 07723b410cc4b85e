"""One layer of the Transformer encoder."""

import keras

from keras_transformer.layers.masking import merge_masks
from keras_transformer.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_transformer")
class EncoderBlock(TransformerBlock):
    """One encoder layer: self-attention, then a position-wise feed-forward
    network, each wrapped in dropout, a residual connection and layer
    normalization (Vaswani et al., 2017, section 3.1):

        x = LayerNorm(x + Dropout(MultiHeadSelfAttention(x)))
        x = LayerNorm(x + Dropout(FeedForward(x)))

    This is the paper's post-norm arrangement. With `norm_first=True` each
    sublayer instead computes `x + Dropout(Sublayer(LayerNorm(x)))` (pre-norm,
    which trains deep stacks more stably; add a final `LayerNormalization`
    after the last block).

    Args:
        num_heads: int. Number of attention heads; must divide `d_model`.
        ff_dim: int. Width of the feed-forward network's inner layer.
        dropout: float in [0, 1). Dropout on each sublayer's output before
            the residual addition. Defaults to `0.1`, as in the paper.
        attention_dropout: float in [0, 1). Dropout on the attention
            probabilities. Defaults to `0`, which keeps the fused attention
            kernels usable while training.
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
        inputs: sequence `(batch, length, d_model)`.
        attention_mask: optional boolean `(batch, length, length)`, True where
            a position may attend another.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the attention
            probabilities `(batch, num_heads, length, length)`.
        mask, inputs_mask: boolean `(batch, length)`, True at real positions.
            Keras passes the Keras mask of `inputs`: as `mask` when `inputs`
            is the only tensor argument, else as `inputs_mask`.

    Returns `outputs`, or `(outputs, scores)` with `return_attention_scores`;
    the same structure in a functional model as eagerly.

    Masking: a Keras mask on `inputs` (from `InputEmbedding`, say) keeps
    padded positions from being attended, and is passed on to the output.

    Example:

    >>> x = keras.random.normal((2, 5, 16))
    >>> tuple(keras_transformer.EncoderBlock(num_heads=4, ff_dim=64)(x).shape)
    (2, 5, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def build(self, inputs_shape):
        self._check_width(inputs_shape)
        self.self_attention = self._build_attention("self_attention", 0, inputs_shape)
        self.self_attention_norm, self.self_attention_dropout = self._build_norm_and_dropout(
            "self_attention", 0, inputs_shape
        )
        self.feed_forward = self._build_feed_forward(inputs_shape)
        self.feed_forward_norm, self.feed_forward_dropout = self._build_norm_and_dropout(
            "feed_forward", 1, inputs_shape
        )
        self.built = True

    def call(
        self,
        inputs,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        mask=None,
        inputs_mask=None,
    ):
        attended = self.self_attention(
            self._sublayer_input(inputs, self.self_attention_norm),
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            inputs_mask=merge_masks(mask, inputs_mask),
        )
        if return_attention_scores:
            attended, scores = attended  # scores: (batch, heads, length, length)
        x = self._add_and_norm(
            inputs, attended, self.self_attention_norm, self.self_attention_dropout, training
        )
        transformed = self.feed_forward(self._sublayer_input(x, self.feed_forward_norm))
        outputs = self._add_and_norm(
            x, transformed, self.feed_forward_norm, self.feed_forward_dropout, training
        )  # (batch, length, d_model)
        return (outputs, scores) if return_attention_scores else outputs

    def compute_output_spec(
        self, inputs, attention_mask=None, training=None, return_attention_scores=False, **masks
    ):
        outputs = self._outputs_spec(inputs)
        if not return_attention_scores:
            return outputs
        _, scores = self.self_attention.compute_output_spec(inputs, return_attention_scores=True)
        return outputs, scores
