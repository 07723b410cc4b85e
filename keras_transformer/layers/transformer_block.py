"""What the encoder and decoder blocks share: their arguments, their
sublayers and the residual connection with layer normalization."""

import keras

from keras_transformer.layers.attention import MultiHeadSelfAttention
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.utils import clone_initializer, sub_seed
from keras_transformer.validation import (
    check_positive_int,
    check_rate,
    check_sequence_shape,
    divide_heads,
)


class TransformerBlock(keras.layers.Layer):
    """Base of `EncoderBlock` and `DecoderBlock`; see their docstrings."""

    def __init__(
        self,
        num_heads: int,
        ff_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation="relu",
        norm_first: bool = False,
        layer_norm_epsilon: float = 1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.ff_dim = check_positive_int("ff_dim", ff_dim)
        self.dropout = check_rate("dropout", dropout)
        self.attention_dropout = check_rate("attention_dropout", attention_dropout)
        self.activation = keras.activations.get(activation)
        self.norm_first = bool(norm_first)
        if not layer_norm_epsilon > 0:
            raise ValueError(
                "`layer_norm_epsilon` must be a positive number. "
                f"Received: layer_norm_epsilon={layer_norm_epsilon!r}"
            )
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.supports_masking = True

    def _check_width(self, inputs_shape) -> int:
        d_model = check_sequence_shape("inputs", inputs_shape)
        divide_heads(d_model, self.num_heads, "d_model")
        return d_model

    def _build_attention(self, name, index, inputs_shape, context_shape=None):
        attention = MultiHeadSelfAttention(
            self.num_heads,
            dropout=self.attention_dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=self.bias_initializer,
            seed=sub_seed(self.seed, "attention_dropout", index),
            dtype=self.dtype_policy,
            name=name,
        )
        attention.build(inputs_shape, context_shape)
        return attention

    def _build_feed_forward(self, inputs_shape):
        feed_forward = FeedForward(
            self.ff_dim,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        feed_forward.build(inputs_shape)
        return feed_forward

    def _build_norm_and_dropout(self, name, index, inputs_shape):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=f"{name}_norm"
        )
        norm.build(inputs_shape)
        dropout = keras.layers.Dropout(
            self.dropout,
            seed=sub_seed(self.seed, "sublayer_dropout", index),
            dtype=self.dtype_policy,
            name=f"{name}_dropout",
        )
        return norm, dropout

    def _sublayer_input(self, inputs, norm):
        """What a sublayer reads: `LayerNorm(x)` with `norm_first`, else `x`."""
        return norm(inputs) if self.norm_first else inputs

    def _add_and_norm(self, inputs, sublayer_outputs, norm, dropout, training):
        """`LayerNorm(x + Dropout(Sublayer(x)))`, or with `norm_first`
        `x + Dropout(Sublayer(LayerNorm(x)))`."""
        outputs = inputs + dropout(sublayer_outputs, training=training)
        return outputs if self.norm_first else norm(outputs)

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def _outputs_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
