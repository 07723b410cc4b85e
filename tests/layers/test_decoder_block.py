import keras
import keras_nlp
import numpy as np
import pytest

from keras_transformer import DecoderBlock
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

TARGET_SHAPE, SOURCE_SHAPE = (2, 4, 8), (2, 6, 8)
TARGET_PADDING = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
SOURCE_PADDING = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)


@pytest.fixture
def target(rng):
    return rng.normal(size=TARGET_SHAPE).astype("float32")


@pytest.fixture
def source(rng):
    return rng.normal(size=SOURCE_SHAPE).astype("float32")


def paired_blocks(norm_first, with_source=True):
    source_shape = SOURCE_SHAPE if with_source else None
    reference = keras_nlp.layers.TransformerDecoder(
        intermediate_dim=16, num_heads=2, dropout=0.0, normalize_first=norm_first
    )
    reference.build(TARGET_SHAPE, source_shape)
    ours = DecoderBlock(num_heads=2, ff_dim=16, norm_first=norm_first)
    ours.build(TARGET_SHAPE, source_shape)
    copy_keras_nlp_block_weights(reference, ours)
    return ours, reference


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_keras_nlp_transformer_decoder(target, source, norm_first):
    ours, reference = paired_blocks(norm_first)
    expected = to_numpy(
        reference(
            target,
            source,
            decoder_padding_mask=TARGET_PADDING,
            encoder_padding_mask=SOURCE_PADDING,
        )
    )
    outputs = ours(masked(target, TARGET_PADDING), masked(source, SOURCE_PADDING))
    np.testing.assert_allclose(
        to_numpy(outputs)[TARGET_PADDING], expected[TARGET_PADDING], atol=1e-5
    )
    np.testing.assert_array_equal(mask_of(outputs), TARGET_PADDING)


def test_decoder_only_matches_keras_nlp(target):
    ours, reference = paired_blocks(norm_first=False, with_source=False)
    assert ours.cross_attention is None
    np.testing.assert_allclose(to_numpy(ours(target)), to_numpy(reference(target)), atol=1e-5)


def test_a_later_target_never_changes_an_earlier_output(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    before = to_numpy(block(target, source))
    changed = target.copy()
    changed[:, 2] += 5.0
    after = to_numpy(block(changed, source))
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-6)
    assert not np.allclose(after[:, 2:], before[:, 2:])


def test_padded_source_positions_are_ignored(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    clean = to_numpy(block(target, masked(source, SOURCE_PADDING)))
    garbage = source.copy()
    garbage[~SOURCE_PADDING] = -1e3
    np.testing.assert_allclose(
        to_numpy(block(target, masked(garbage, SOURCE_PADDING))), clean, atol=1e-5
    )
    longer = np.concatenate([source, np.full((2, 2, 8), 7.0, "float32")], axis=1)
    longer_padding = np.concatenate([SOURCE_PADDING, np.zeros((2, 2), bool)], axis=1)
    np.testing.assert_allclose(
        to_numpy(block(target, masked(longer, longer_padding))), clean, atol=1e-5
    )


def test_all_padding_source_row_is_finite(target, source):
    padding = SOURCE_PADDING.copy()
    padding[0] = False
    outputs = DecoderBlock(num_heads=2, ff_dim=16)(target, masked(source, padding))
    assert np.isfinite(to_numpy(outputs)).all()


def test_dropout_respects_training_and_seed(target):
    assert_dropout_respects_training_and_seed(
        lambda: DecoderBlock(num_heads=2, ff_dim=16, dropout=0.3, seed=5), target
    )


def test_encoder_of_another_width_meets_through_the_projections(target, rng):
    source = rng.normal(size=(2, 6, 12)).astype("float32")
    assert DecoderBlock(num_heads=2, ff_dim=16)(target, source).shape == TARGET_SHAPE


def test_rejects_encoder_outputs_that_cannot_meet(target):
    with pytest.raises(ValueError, match=r"encoder_outputs.*rank 3"):
        DecoderBlock(num_heads=2, ff_dim=16)(target, np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"width.*encoder_outputs.*must be known"):
        DecoderBlock(num_heads=2, ff_dim=16)(keras.Input((4, 8)), keras.Input((6, None)))


def test_rejects_calls_inconsistent_with_build(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    block(target)
    with pytest.raises(ValueError, match=r"built without cross-attention"):
        block(target, source)


def test_weights_and_symbolic_shape():
    block = DecoderBlock(num_heads=2, ff_dim=16)
    outputs = block(keras.Input((None, 8)), keras.Input((None, 8)))
    assert outputs.shape == (None, None, 8)
    assert len(block.weights) == 2 * 8 + 3 * 2 + 4


def test_config_and_file_round_trip(target, source, tmp_path):
    block = DecoderBlock(num_heads=2, ff_dim=16, dropout=0.2, norm_first=True, seed=4)
    assert_config_round_trip(block)
    assert_keras_file_round_trip(block, [target, source], tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(target, source, policy):
    block = DecoderBlock(num_heads=2, ff_dim=16, dtype=policy)
    outputs = block(masked(target, TARGET_PADDING), masked(source, SOURCE_PADDING))
    assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in block.weights)
    assert np.isfinite(to_numpy(keras.ops.cast(outputs, "float32"))).all()


def test_attention_scores_are_causal_distributions_over_real_positions(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    plain = block(target, masked(source, SOURCE_PADDING))
    outputs, scores = block(target, masked(source, SOURCE_PADDING), return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(plain), atol=1e-5)
    own, cross = to_numpy(scores["self_attention"]), to_numpy(scores["cross_attention"])
    assert own.shape == (2, 2, 4, 4) and cross.shape == (2, 2, 4, 6)
    np.testing.assert_allclose(own.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(own, k=1) == 0)
    assert np.all(cross[:, :, :, ~SOURCE_PADDING[0]][0] == 0)


def test_incremental_calls_return_outputs_and_cache_and_equal_the_full_call(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    full = to_numpy(block(target, source))
    cross_cache = block.compute_cross_attention_cache(source)
    cache = np.zeros((2, 2, 2, 4, 4), "float32")
    for index in range(4):
        outputs, cache = block(
            target[:, index : index + 1],
            self_attention_cache=cache,
            cache_index=index,
            cross_attention_cache=cross_cache,
        )
        assert tuple(cache.shape) == (2, 2, 2, 4, 4)
        np.testing.assert_allclose(to_numpy(outputs), full[:, index : index + 1], atol=1e-5)


def test_scores_come_from_the_call_without_caches(target, source):
    block = DecoderBlock(num_heads=2, ff_dim=16)
    cache = np.zeros((2, 2, 2, 4, 4), "float32")
    with pytest.raises(ValueError, match="return_attention_scores"):
        block(
            target[:, :1],
            source,
            self_attention_cache=cache,
            cache_index=0,
            return_attention_scores=True,
        )
    with pytest.raises(ValueError, match="cache_index"):
        block(target[:, :1], source, self_attention_cache=cache)


SELF_CACHE = {"self_attention_cache": (2, 2, 2, 4, 4)}
CALLS = {  # (encoder outputs, tensor keyword arguments' shapes, other keyword arguments)
    "plain": (True, {}, {}),
    "scores": (True, {}, {"return_attention_scores": True}),
    "decoder-only scores": (False, {}, {"return_attention_scores": True}),
    "self cache": (True, SELF_CACHE, {"cache_index": 1}),
    "decoder-only cache": (False, SELF_CACHE, {"cache_index": 1}),
    "both caches": (
        False,
        {**SELF_CACHE, "cross_attention_cache": (2, 2, 2, 6, 4)},
        {"cache_index": 1},
    ),
}


@pytest.mark.parametrize("call", CALLS)
def test_functional_call_returns_what_the_eager_call_returns(target, source, rng, call):
    with_source, shapes, kwargs = CALLS[call]
    tensors = {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}
    inputs = target[:, :1] if "cache_index" in kwargs else target
    block = DecoderBlock(num_heads=2, ff_dim=16)
    if "cross_attention_cache" in shapes:
        block.build(TARGET_SHAPE, SOURCE_SHAPE)
    outputs = assert_functional_call_matches_eager(
        block, [inputs, source] if with_source else inputs, tensor_kwargs=tensors, **kwargs
    )
    assert isinstance(outputs, tuple) == (call != "plain")
