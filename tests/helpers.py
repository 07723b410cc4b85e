"""Shared test utilities: conversions, reference weight copies, round trips."""

import os

import keras
import numpy as np
from keras.src.backend import get_keras_mask, set_keras_mask

BACKEND = keras.backend.backend()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def masked(x, mask):
    """`x` as a backend tensor carrying the Keras padding mask `mask`."""
    x = keras.ops.convert_to_tensor(x)
    set_keras_mask(x, keras.ops.convert_to_tensor(mask, dtype="bool"))
    return x


def mask_of(x):
    mask = get_keras_mask(x)
    return None if mask is None else to_numpy(mask)


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
        (keras_attention._query_dense, ours.query_dense),
        (keras_attention._key_dense, ours.key_dense),
        (keras_attention._value_dense, ours.value_dense),
    ]
    for source, target in pairs:
        kernel, bias = (to_numpy(w) for w in source.weights)
        target.set_weights([kernel.reshape(kernel.shape[0], -1), bias.reshape(-1)])
    kernel, bias = (to_numpy(w) for w in keras_attention._output_dense.weights)
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
