"""Shared test utilities: conversions, reference weight copies, round trips."""

import os

import keras
import numpy as np

BACKEND = keras.backend.backend()
standardize_dtype = keras.backend.standardize_dtype


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


class AttachMask(keras.layers.Layer):
    """Passes its input through with `padding` as its Keras mask."""

    def __init__(self, padding, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.padding = padding

    def call(self, inputs):
        return keras.ops.copy(inputs)

    def compute_mask(self, inputs, mask=None):
        return keras.ops.convert_to_tensor(self.padding, dtype="bool")


class ReadMask(keras.layers.Layer):
    """Keeps the Keras mask that Keras passes to `call` as `mask`."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        self.received = mask
        return inputs


def masked(x, mask):
    """`x` as a backend tensor carrying the Keras padding mask `mask`."""
    return AttachMask(mask)(keras.ops.convert_to_tensor(x))


def mask_of(x):
    """The Keras mask of `x` as a numpy array, or None."""
    reader = ReadMask()
    reader(x)
    return None if reader.received is None else to_numpy(reader.received)


def assert_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def assert_keras_file_round_trip(layer, inputs, tmp_path, **call_kwargs):
    """Saves `layer` inside a functional model as `.keras`, loads it back with
    `safe_mode=True` and no custom objects, and compares the outputs.

    `inputs` is an array or a list of arrays, one per positional argument."""
    arrays = inputs if isinstance(inputs, list) else [inputs]
    symbolic = [keras.Input(a.shape[1:], dtype=str(a.dtype)) for a in arrays]
    model = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored.layers[-1]) is type(layer)
    np.testing.assert_allclose(
        to_numpy(restored.predict_on_batch(arrays)),
        to_numpy(model.predict_on_batch(arrays)),
        atol=1e-6,
    )


def assert_dropout_respects_training_and_seed(make_layer, inputs):
    """Dropout acts only in training, and two layers with the same seed and
    weights drop the same units."""
    first, second = make_layer(), make_layer()
    inference = to_numpy(first(inputs))
    second(inputs)
    second.set_weights(first.get_weights())
    trained = to_numpy(first(inputs, training=True))
    np.testing.assert_allclose(to_numpy(second(inputs, training=True)), trained)
    assert not np.allclose(trained, inference)
    np.testing.assert_allclose(to_numpy(first(inputs, training=False)), inference)


def copy_attention_weights(keras_attention, ours):
    """Copies a `keras.layers.MultiHeadAttention`'s projections into a
    `MultiHeadSelfAttention` (kernels `(d, heads, key_dim)` become
    `(d, heads * key_dim)`)."""
    pairs = [
        (keras_attention.query_dense, ours.query_dense),
        (keras_attention.key_dense, ours.key_dense),
        (keras_attention.value_dense, ours.value_dense),
    ]
    for source, target in pairs:
        kernel, bias = source.get_weights()
        target.set_weights([kernel.reshape(kernel.shape[0], -1), bias.reshape(-1)])
    kernel, bias = keras_attention.output_dense.get_weights()
    ours.output_dense.set_weights([kernel.reshape(-1, kernel.shape[-1]), bias])


def copy_dense_weights(source, target):
    target.set_weights([to_numpy(w) for w in source.weights])


def copy_keras_nlp_block_weights(reference, ours):
    """Copies a keras-nlp `TransformerEncoder` or `TransformerDecoder` into our
    `EncoderBlock` or `DecoderBlock` (same sublayers, other names)."""
    copy_attention_weights(reference._self_attention_layer, ours.self_attention)
    copy_dense_weights(reference._self_attention_layer_norm, ours.self_attention_norm)
    if getattr(reference, "_cross_attention_layer", None) is not None:
        copy_attention_weights(reference._cross_attention_layer, ours.cross_attention)
        copy_dense_weights(reference._cross_attention_layer_norm, ours.cross_attention_norm)
    feed_forward = ours.feed_forward
    copy_dense_weights(reference._feedforward_intermediate_dense, feed_forward.intermediate_dense)
    copy_dense_weights(reference._feedforward_output_dense, feed_forward.output_dense)
    copy_dense_weights(reference._feedforward_layer_norm, ours.feed_forward_norm)


def assert_functional_call_matches_eager(layer, inputs, tensor_kwargs=None, atol=1e-5, **kwargs):
    """Calls `layer` on `keras.Input`s and builds a functional model of the
    call: the symbolic outputs have the structure, shapes and dtypes of the
    eager call's, and the model computes the eager call's values.

    `inputs` is an array or a list of arrays, the positional arguments;
    `tensor_kwargs` maps keyword arguments to arrays (caches, masks);
    `kwargs` are the other (Python) keyword arguments."""
    arrays = inputs if isinstance(inputs, list) else [inputs]
    tensor_kwargs = tensor_kwargs or {}
    symbolic = [_input_like(a) for a in arrays]
    symbolic_kwargs = {name: _input_like(a) for name, a in tensor_kwargs.items()}
    symbolic_outputs = layer(*symbolic, **symbolic_kwargs, **kwargs)
    model = keras.Model([symbolic, symbolic_kwargs], symbolic_outputs)
    eager_outputs = layer(*arrays, **tensor_kwargs, **kwargs)
    keras.tree.assert_same_structure(symbolic_outputs, eager_outputs)
    flat_eager = keras.tree.flatten(eager_outputs)
    for spec, value in zip(keras.tree.flatten(symbolic_outputs), flat_eager, strict=True):
        assert len(spec.shape) == len(value.shape)
        assert all(s in (None, v) for s, v in zip(spec.shape, value.shape, strict=True))
        assert standardize_dtype(spec.dtype) == standardize_dtype(value.dtype)
    computed = keras.tree.flatten(model([arrays, tensor_kwargs]))
    for value, expected in zip(computed, flat_eager, strict=True):
        np.testing.assert_allclose(to_numpy(value), to_numpy(expected), atol=atol)
    return eager_outputs


def _input_like(array):
    return keras.Input(array.shape[1:], dtype=str(array.dtype))
