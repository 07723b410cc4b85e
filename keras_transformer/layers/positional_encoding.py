"""The sinusoidal positional encoding of the Transformer."""

import keras
from keras import ops

from keras_transformer.validation import check_positive_int, check_sequence_shape


def sinusoidal_encoding(positions, width, max_wavelength=10000):
    """The paper's encoding at the given positions.

    PE[pos, 2i] = sin(pos / max_wavelength^(2i/width)) and
    PE[pos, 2i+1] = cos(pos / max_wavelength^(2i/width)).

    Args:
        positions: float tensor of shape `(length,)`.
        width: the model width `d`.
        max_wavelength: the base of the geometric progression of wavelengths.

    Returns:
        A float32 tensor of shape `(length, width)`.
    """
    half = (width + 1) // 2
    exponents = ops.arange(half, dtype="float32") * (2.0 / width)  # (half,)
    inverse_frequencies = ops.power(float(max_wavelength), -exponents)
    angles = ops.expand_dims(positions, 1) * inverse_frequencies  # (length, half)
    interleaved = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    encoding = ops.reshape(interleaved, (-1, 2 * half))  # (length, 2 * half)
    return encoding[:, :width]  # (length, width)


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionalEncoding(keras.layers.Layer):
    """Adds the sinusoidal positional encoding to a sequence.

    For an input `x` of shape `(batch, length, d)` the output is
    `x + PE[start_index : start_index + length]`, where
    `PE[pos, 2i] = sin(pos / max_wavelength^(2i/d))` and
    `PE[pos, 2i+1] = cos(pos / max_wavelength^(2i/d))` (Vaswani et al., 2017,
    section 3.5). The encoding is computed on the fly for any length: no
    maximum length is baked in and the layer has no weights.

    Args:
        max_wavelength: int. The longest wavelength, `10000` in the paper.
        **kwargs: other keyword arguments of `keras.layers.Layer`, such as
            `name` and `dtype`.

    Call arguments:
        inputs: float tensor of shape `(batch, length, d)`.
        start_index: int or scalar int tensor. The position of the first
            element of `inputs`, so that one decoding step at position `t`
            receives `PE[t]`. Defaults to `0`.

    Masking: the input's Keras mask is passed through unchanged.

    Example:

    >>> x = keras.ops.zeros((2, 5, 8))
    >>> y = keras_transformer.PositionalEncoding()(x)
    >>> tuple(y.shape)
    (2, 5, 8)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, max_wavelength: int = 10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = check_positive_int("max_wavelength", max_wavelength)
        self.supports_masking = True

    def build(self, inputs_shape):
        check_sequence_shape("inputs", inputs_shape)
        self.built = True

    def call(self, inputs, start_index=0):
        width = inputs.shape[-1]
        length = ops.shape(inputs)[1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        encoding = sinusoidal_encoding(positions, width, self.max_wavelength)
        return inputs + ops.cast(encoding, inputs.dtype)  # (batch, length, d)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
