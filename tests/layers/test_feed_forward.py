import keras
import numpy as np
import pytest

from keras_transformer import FeedForward
from tests.helpers import (
    assert_config_round_trip,
    assert_functional_call_matches_eager,
    assert_keras_file_round_trip,
    to_numpy,
)


def test_matches_the_paper_formula(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    layer = FeedForward(16)
    outputs = to_numpy(layer(x))
    w1, b1, w2, b2 = (to_numpy(w) for w in layer.weights)
    np.testing.assert_allclose(outputs, np.maximum(0, x @ w1 + b1) @ w2 + b2, atol=1e-5)


def test_config_and_file_round_trip(rng, tmp_path):
    layer = FeedForward(16, activation="gelu", kernel_initializer="he_normal")
    assert_config_round_trip(layer)
    assert_keras_file_round_trip(layer, rng.normal(size=(2, 5, 8)).astype("float32"), tmp_path)


def test_rejects_bad_ff_dim():
    with pytest.raises(ValueError, match="ff_dim"):
        FeedForward(0)


def test_symbolic_shape():
    assert FeedForward(16)(keras.Input((None, 8))).shape == (None, None, 8)


def test_functional_call_returns_what_the_eager_call_returns(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    assert assert_functional_call_matches_eager(FeedForward(16), x).shape == (2, 5, 8)
