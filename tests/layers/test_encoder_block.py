import keras
import keras_nlp
import numpy as np
import pytest

from keras_transformer import EncoderBlock, InputEmbedding
from tests.helpers import (
    assert_config_round_trip,
    assert_dropout_respects_training_and_seed,
    assert_functional_call_matches_eager,
    assert_keras_file_round_trip,
    copy_keras_nlp_block_weights,
    mask_of,
    masked,
    to_numpy,
)

SHAPE = (2, 5, 8)
PADDING = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


@pytest.fixture
def sequence(rng):
    return rng.normal(size=SHAPE).astype("float32")


def paired_blocks(norm_first):
    reference = keras_nlp.layers.TransformerEncoder(
        intermediate_dim=16, num_heads=2, dropout=0.0, normalize_first=norm_first
    )
    reference.build(SHAPE)
    ours = EncoderBlock(num_heads=2, ff_dim=16, norm_first=norm_first)
    ours.build(SHAPE)
    copy_keras_nlp_block_weights(reference, ours)
    return ours, reference


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_keras_nlp_transformer_encoder(sequence, norm_first):
    ours, reference = paired_blocks(norm_first)
    expected = to_numpy(reference(sequence, padding_mask=PADDING))
    outputs = ours(masked(sequence, PADDING))
    real = PADDING
    np.testing.assert_allclose(to_numpy(outputs)[real], expected[real], atol=1e-5)
    np.testing.assert_array_equal(mask_of(outputs), PADDING)


def test_padding_never_changes_real_positions(sequence):
    block = EncoderBlock(num_heads=2, ff_dim=16)
    garbage = sequence.copy()
    garbage[~PADDING] = 1e3
    clean = to_numpy(block(masked(sequence, PADDING)))[PADDING]
    dirty = to_numpy(block(masked(garbage, PADDING)))[PADDING]
    np.testing.assert_allclose(dirty, clean, atol=1e-5)
    longer = np.concatenate([sequence, np.zeros((2, 3, 8), "float32")], axis=1)
    longer_padding = np.concatenate([PADDING, np.zeros((2, 3), bool)], axis=1)
    extended = to_numpy(block(masked(longer, longer_padding)))[:, :5][PADDING]
    np.testing.assert_allclose(extended, clean, atol=1e-5)


def test_all_padding_row_is_finite(sequence):
    padding = PADDING.copy()
    padding[0] = False
    outputs = EncoderBlock(num_heads=2, ff_dim=16)(masked(sequence, padding))
    assert np.isfinite(to_numpy(outputs)).all()


def test_dropout_respects_training_and_seed(sequence):
    assert_dropout_respects_training_and_seed(
        lambda: EncoderBlock(num_heads=2, ff_dim=16, dropout=0.3, seed=5), sequence
    )


def test_weights_and_shapes(sequence):
    block = EncoderBlock(num_heads=2, ff_dim=16)
    assert block(keras.Input((None, 8))).shape == (None, None, 8)
    # q, k, v, o (kernel + bias) + 2 norms (gamma, beta) + 2 dense (kernel + bias)
    assert len(block.weights) == 8 + 4 + 4
    assert block.count_params() == 4 * (8 * 8 + 8) + 2 * 16 + (8 * 16 + 16) + (16 * 8 + 8)


def test_config_and_file_round_trip(sequence, tmp_path):
    block = EncoderBlock(
        num_heads=2,
        ff_dim=16,
        dropout=0.2,
        attention_dropout=0.1,
        activation="gelu",
        norm_first=True,
        layer_norm_epsilon=1e-6,
        seed=3,
    )
    assert_config_round_trip(block)
    assert_keras_file_round_trip(block, sequence, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(sequence, policy):
    block = EncoderBlock(num_heads=2, ff_dim=16, dtype=policy)
    outputs = block(masked(sequence, PADDING))
    assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in block.weights)
    assert np.isfinite(to_numpy(keras.ops.cast(outputs, "float32"))).all()


def test_trains_inside_a_user_model():
    ids = keras.Input((None,), dtype="int32")
    x = InputEmbedding(20, 8)(ids)
    x = EncoderBlock(num_heads=2, ff_dim=16)(x)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(ids, outputs)
    model.compile("adam", "mse")
    data = np.random.default_rng(0).integers(0, 20, (16, 6)).astype("int32")
    history = model.fit(data, np.ones((16, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_heads": 0, "ff_dim": 16}, "num_heads"),
        ({"num_heads": 2, "ff_dim": 0}, "ff_dim"),
        ({"num_heads": 2, "ff_dim": 16, "dropout": 1.0}, "dropout"),
        ({"num_heads": 2, "ff_dim": 16, "attention_dropout": -0.5}, "attention_dropout"),
        ({"num_heads": 2, "ff_dim": 16, "layer_norm_epsilon": 0}, "layer_norm_epsilon"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        EncoderBlock(**kwargs)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"d_model.*divisible"):
        EncoderBlock(num_heads=3, ff_dim=16)(np.zeros(SHAPE, "float32"))
    with pytest.raises(ValueError, match=r"rank 3"):
        EncoderBlock(num_heads=2, ff_dim=16)(np.zeros((2, 8), "float32"))


def test_attention_scores_leave_outputs_alone_and_skip_padding(sequence):
    block = EncoderBlock(num_heads=2, ff_dim=16)
    plain = to_numpy(block(masked(sequence, PADDING)))
    outputs, scores = block(masked(sequence, PADDING), return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(outputs), plain, atol=1e-5)
    scores = to_numpy(scores)  # (batch, heads, length, length)
    assert scores.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    padded_keys = np.broadcast_to(~PADDING[:, None, None, :], scores.shape)
    assert np.all(scores[padded_keys] == 0)


@pytest.mark.parametrize("return_attention_scores", [False, True])
@pytest.mark.parametrize("with_attention_mask", [False, True])
def test_functional_call_returns_what_the_eager_call_returns(
    sequence, return_attention_scores, with_attention_mask
):
    tensors = {"attention_mask": np.tril(np.ones((2, 5, 5), bool))} if with_attention_mask else {}
    outputs = assert_functional_call_matches_eager(
        EncoderBlock(num_heads=2, ff_dim=16),
        sequence,
        tensor_kwargs=tensors,
        return_attention_scores=return_attention_scores,
    )
    assert isinstance(outputs, tuple) == return_attention_scores


def test_padding_flows_through_a_functional_model(sequence):
    ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 8, mask_zero=True)(ids)
    block = EncoderBlock(num_heads=2, ff_dim=16)
    outputs, scores = block(embedded, return_attention_scores=True)
    model = keras.Model(ids, [outputs, scores])
    token_ids = np.where(PADDING, 5, 0).astype("int32")
    _, computed_scores = model(token_ids)
    padded_keys = np.broadcast_to(~PADDING[:, None, None, :], (2, 2, 5, 5))
    assert np.all(to_numpy(computed_scores)[padded_keys] == 0)
