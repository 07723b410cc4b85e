import keras
import numpy as np

from keras_transformer import CausalMask
from keras_transformer.layers.masking import causal_mask, merge_masks, unblock_empty_rows
from tests.helpers import (
    assert_config_round_trip,
    assert_functional_call_matches_eager,
    mask_of,
    masked,
    to_numpy,
)


def test_causal_mask_is_lower_triangular():
    np.testing.assert_array_equal(to_numpy(causal_mask(4, 4)), np.tril(np.ones((4, 4), bool)))


def test_causal_mask_with_start_index_is_one_cached_step():
    np.testing.assert_array_equal(to_numpy(causal_mask(1, 5, start_index=2)), [[1, 1, 1, 0, 0]])


def test_merge_masks_ands_and_broadcasts():
    padding = np.array([[[True, True, False]]])  # (1, 1, 3)
    look_ahead = np.tril(np.ones((3, 3), bool))  # (3, 3)
    merged = to_numpy(merge_masks(None, padding, look_ahead))
    np.testing.assert_array_equal(merged, np.tril(np.ones((3, 3), bool))[None] & padding)
    assert merge_masks(None, None) is None


def test_unblock_empty_rows_only_touches_empty_rows():
    mask = np.array([[[True, False], [False, False]]])
    np.testing.assert_array_equal(to_numpy(unblock_empty_rows(mask)), [[[1, 0], [1, 1]]])


def test_layer_output_without_padding():
    outputs = CausalMask()(np.zeros((2, 4, 3), "float32"))
    assert outputs.shape == (2, 4, 4)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bool"
    np.testing.assert_array_equal(to_numpy(outputs)[1], np.tril(np.ones((4, 4), bool)))
    assert mask_of(outputs) is None


def test_layer_merges_the_padding_mask():
    padding = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    outputs = to_numpy(CausalMask()(masked(np.zeros((2, 4, 3), "float32"), padding)))
    np.testing.assert_array_equal(outputs, np.tril(np.ones((4, 4), bool))[None] & padding[:, None])


def test_symbolic_shape_and_config():
    layer = CausalMask()
    assert layer(keras.Input((None, 8))).shape == (None, None, None)
    assert layer.compute_output_shape((3, 5, 8)) == (3, 5, 5)
    assert_config_round_trip(layer)


def test_compiles_with_dynamic_batch_and_length():
    ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    model = keras.Model(ids, CausalMask()(embedded))
    model.compile(jit_compile=True)  # XLA on TF and JAX, torch.compile on torch
    for batch, length in [(2, 3), (3, 6)]:
        ids_value = np.ones((batch, length), "int32")
        ids_value[0, -1] = 0
        expected = np.tril(np.ones((length, length), bool))[None] & (ids_value != 0)[:, None]
        np.testing.assert_array_equal(to_numpy(model.predict_on_batch(ids_value)), expected)


def test_functional_call_returns_what_the_eager_call_returns():
    outputs = assert_functional_call_matches_eager(CausalMask(), np.ones((2, 4, 3), "float32"))
    np.testing.assert_array_equal(to_numpy(outputs)[0], np.tril(np.ones((4, 4), bool)))
