import keras
import numpy as np
import pytest

from keras_transformer import PositionalEncoding
from tests.helpers import (
    assert_config_round_trip,
    assert_functional_call_matches_eager,
    assert_keras_file_round_trip,
    mask_of,
    to_numpy,
)


def paper_encoding(positions, width, max_wavelength=10000):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...), in numpy."""
    encoding = np.zeros((len(positions), width))
    for row, pos in enumerate(positions):
        for column in range(width):
            i = column // 2
            angle = pos / max_wavelength ** (2 * i / width)
            encoding[row, column] = np.sin(angle) if column % 2 == 0 else np.cos(angle)
    return encoding


@pytest.mark.parametrize("width", [8, 7])
def test_matches_the_paper_formula(width):
    x = np.zeros((2, 6, width), "float32")
    outputs = to_numpy(PositionalEncoding()(x))
    np.testing.assert_allclose(outputs[0], paper_encoding(range(6), width), atol=1e-5)
    np.testing.assert_allclose(outputs[1], outputs[0])


def test_adds_to_the_input(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    outputs = to_numpy(PositionalEncoding(max_wavelength=100)(x))
    np.testing.assert_allclose(outputs, x + paper_encoding(range(5), 8, 100), atol=1e-5)


def test_start_index_gives_later_positions():
    x = np.zeros((1, 3, 16), "float32")
    outputs = to_numpy(PositionalEncoding()(x, start_index=7))
    np.testing.assert_allclose(outputs[0], paper_encoding(range(7, 10), 16), atol=1e-5)


def test_long_sequences_have_no_baked_in_maximum():
    x = np.zeros((1, 3000, 4), "float32")
    outputs = to_numpy(PositionalEncoding()(x))
    np.testing.assert_allclose(outputs[0, -1], paper_encoding([2999], 4)[0], atol=1e-3)


def test_passes_the_keras_mask_through():
    ids = np.array([[3, 4, 0], [1, 0, 0]])
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    outputs = PositionalEncoding()(embedded)
    np.testing.assert_array_equal(mask_of(outputs), ids != 0)


def test_config_and_file_round_trip(tmp_path):
    layer = PositionalEncoding(max_wavelength=500)
    assert_config_round_trip(layer)
    assert_keras_file_round_trip(layer, np.ones((2, 4, 6), "float32"), tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_output_dtype(policy):
    layer = PositionalEncoding(dtype=policy)
    outputs = layer(np.zeros((2, 3, 8), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_rejects_bad_max_wavelength(bad):
    with pytest.raises(ValueError, match=r"max_wavelength"):
        PositionalEncoding(max_wavelength=bad)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"rank 3"):
        PositionalEncoding()(np.zeros((2, 8), "float32"))


@pytest.mark.parametrize("start_index", [0, 3])
def test_functional_call_returns_what_the_eager_call_returns(rng, start_index):
    x = rng.normal(size=(2, 4, 6)).astype("float32")
    outputs = assert_functional_call_matches_eager(PositionalEncoding(), x, start_index=start_index)
    assert outputs.shape == (2, 4, 6)
