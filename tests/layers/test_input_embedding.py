import math

import keras
import numpy as np
import pytest

from keras_transformer import InputEmbedding
from keras_transformer.layers.positional_encoding import sinusoidal_encoding
from tests.helpers import (
    assert_config_round_trip,
    assert_dropout_respects_training_and_seed,
    assert_functional_call_matches_eager,
    assert_keras_file_round_trip,
    mask_of,
    to_numpy,
)

IDS = np.array([[5, 7, 2, 0, 0], [1, 2, 3, 4, 9]], "int32")


def test_scaled_embedding_plus_sinusoid():
    layer = InputEmbedding(10, 8)
    outputs = to_numpy(layer(IDS))
    table = to_numpy(layer.token_embedding.embeddings)
    encoding = to_numpy(sinusoidal_encoding(keras.ops.arange(5, dtype="float32"), 8))
    np.testing.assert_allclose(outputs, table[IDS] * math.sqrt(8) + encoding, atol=1e-5)


def test_learned_positions_and_no_scaling():
    layer = InputEmbedding(10, 8, position_encoding="learned", max_length=6, scale_embeddings=False)
    outputs = to_numpy(layer(IDS, start_index=1))
    tokens = to_numpy(layer.token_embedding.embeddings)[IDS]
    positions = to_numpy(layer.position_embedding.embeddings)[1:6]
    np.testing.assert_allclose(outputs, tokens + positions, atol=1e-6)


def test_padding_id_zero_makes_the_mask():
    np.testing.assert_array_equal(mask_of(InputEmbedding(10, 8)(IDS)), IDS != 0)


def test_reverse_projects_onto_the_vocabulary(rng):
    layer = InputEmbedding(10, 8)
    layer(IDS)
    vectors = rng.normal(size=(2, 3, 8)).astype("float32")
    logits = to_numpy(layer(vectors, reverse=True))
    table = to_numpy(layer.token_embedding.embeddings)
    np.testing.assert_allclose(logits, vectors @ table.T, atol=1e-5)
    assert layer(keras.Input((None, 8)), reverse=True).shape == (None, None, 10)


def test_dropout_respects_training_and_seed():
    assert_dropout_respects_training_and_seed(
        lambda: InputEmbedding(10, 8, dropout=0.5, seed=1), IDS
    )


def test_config_and_file_round_trip(tmp_path):
    layer = InputEmbedding(10, 8, position_encoding="learned", max_length=9, dropout=0.1, seed=2)
    assert_config_round_trip(layer)
    assert_keras_file_round_trip(layer, IDS, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    layer = InputEmbedding(10, 8, dtype=policy)
    assert keras.backend.standardize_dtype(layer(IDS).dtype) == policy.split("_")[1]
    assert layer.token_embedding.embeddings.dtype == "float32"


def test_rejects_float_inputs():
    with pytest.raises(ValueError, match=r"integer token ids.*float32"):
        InputEmbedding(10, 8)(IDS.astype("float32"))
    with pytest.raises(ValueError, match=r"integer token ids"):
        InputEmbedding(10, 8)(keras.Input((None,), dtype="float32"))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"rank 2"):
        InputEmbedding(10, 8)(IDS[0])


def test_rejects_sequences_longer_than_learned_positions():
    with pytest.raises(ValueError, match=r"max_length"):
        InputEmbedding(10, 8, position_encoding="learned", max_length=4)(IDS)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"vocabulary_size": 0, "d_model": 8}, "vocabulary_size"),
        ({"vocabulary_size": 10, "d_model": -8}, "d_model"),
        ({"vocabulary_size": 10, "d_model": 8, "dropout": 1.5}, "dropout"),
        ({"vocabulary_size": 10, "d_model": 8, "position_encoding": "rotary"}, "position_encoding"),
        ({"vocabulary_size": 10, "d_model": 8, "position_encoding": "learned"}, "max_length"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        InputEmbedding(**kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"start_index": 2}])
def test_functional_call_returns_what_the_eager_call_returns(kwargs):
    layer = InputEmbedding(10, 8, position_encoding="learned", max_length=8)
    assert assert_functional_call_matches_eager(layer, IDS, **kwargs).shape == (2, 5, 8)


def test_functional_reverse_call_returns_what_the_eager_call_returns(rng):
    layer = InputEmbedding(10, 8)
    layer(IDS)
    vectors = rng.normal(size=(2, 3, 8)).astype("float32")
    logits = assert_functional_call_matches_eager(layer, vectors, reverse=True)
    assert logits.shape == (2, 3, 10)
