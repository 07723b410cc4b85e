"""The position-wise feed-forward network of a Transformer block."""

import keras

from keras_transformer.layers.utils import clone_initializer
from keras_transformer.validation import check_positive_int, check_sequence_shape


@keras.saving.register_keras_serializable(package="keras_transformer")
class FeedForward(keras.layers.Layer):
    """Two dense layers applied at every position: `act(x W1 + b1) W2 + b2`.

    The inner layer widens `d_model` to `ff_dim` and the outer one projects
    back to `d_model` (Vaswani et al., 2017, section 3.3: ReLU, 512 -> 2048
    -> 512 in the base model).

    Args:
        ff_dim: int. Width of the inner layer.
        activation: activation of the inner layer. Defaults to `"relu"`.
        kernel_initializer: initializer of both kernels.
        bias_initializer: initializer of both biases.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Masking: the input's Keras mask is passed through.

    Example:

    >>> x = keras.ops.ones((2, 5, 8))
    >>> tuple(keras_transformer.FeedForward(ff_dim=32)(x).shape)
    (2, 5, 8)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(
        self,
        ff_dim: int,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ff_dim = check_positive_int("ff_dim", ff_dim)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        d_model = check_sequence_shape("inputs", inputs_shape)
        self.intermediate_dense = self._dense(self.ff_dim, self.activation, "intermediate_dense")
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = self._dense(d_model, None, "output_dense")
        self.output_dense.build((*inputs_shape[:-1], self.ff_dim))
        self.built = True

    def _dense(self, units, activation, name):
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def call(self, inputs):
        hidden = self.intermediate_dense(inputs)  # (batch, length, ff_dim)
        return self.output_dense(hidden)  # (batch, length, d_model)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ff_dim": self.ff_dim,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
