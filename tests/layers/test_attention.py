import keras
import numpy as np
import pytest

from keras_transformer import MultiHeadSelfAttention
from tests.helpers import (
    assert_config_round_trip,
    assert_dropout_respects_training_and_seed,
    assert_functional_call_matches_eager,
    assert_keras_file_round_trip,
    copy_attention_weights,
    mask_of,
    masked,
    to_numpy,
)

BATCH, LENGTH, WIDTH, HEADS = 2, 5, 8, 2


def paired_layers(inputs_shape, context_shape=None, **kwargs):
    """Our layer and `keras.layers.MultiHeadAttention` with equal weights."""
    reference = keras.layers.MultiHeadAttention(HEADS, key_dim=WIDTH // HEADS, **kwargs)
    reference.build(inputs_shape, context_shape or inputs_shape)
    ours = MultiHeadSelfAttention(HEADS, **kwargs)
    ours.build(inputs_shape, context_shape)
    copy_attention_weights(reference, ours)
    return ours, reference


@pytest.fixture
def sequence(rng):
    return rng.normal(size=(BATCH, LENGTH, WIDTH)).astype("float32")


def test_matches_keras_multi_head_attention(sequence):
    ours, reference = paired_layers(sequence.shape)
    np.testing.assert_allclose(
        to_numpy(ours(sequence)), to_numpy(reference(sequence, sequence)), atol=1e-5
    )


def test_padding_mask_matches_keras(sequence):
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    ours, reference = paired_layers(sequence.shape)
    expected = reference(sequence, sequence, value_mask=padding)
    outputs = ours(masked(sequence, padding))
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-5)
    np.testing.assert_array_equal(mask_of(outputs), padding)


def test_causal_mask_matches_keras(sequence):
    ours, reference = paired_layers(sequence.shape)
    expected = reference(sequence, sequence, use_causal_mask=True)
    np.testing.assert_allclose(
        to_numpy(ours(sequence, use_causal_mask=True)), to_numpy(expected), atol=1e-5
    )


def test_cross_attention_matches_keras(sequence, rng):
    context = rng.normal(size=(BATCH, 7, 12)).astype("float32")
    context_padding = np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], bool)
    ours, reference = paired_layers(sequence.shape, context.shape)
    expected = reference(sequence, context, value_mask=context_padding)
    outputs = ours(sequence, masked(context, context_padding))
    assert outputs.shape == (BATCH, LENGTH, WIDTH)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-5)


def test_explicit_attention_mask_matches_keras(sequence, rng):
    attention_mask = rng.random((BATCH, LENGTH, LENGTH)) > 0.3
    attention_mask[:, :, 0] = True
    ours, reference = paired_layers(sequence.shape)
    expected = reference(sequence, sequence, attention_mask=attention_mask)
    np.testing.assert_allclose(
        to_numpy(ours(sequence, attention_mask=attention_mask)), to_numpy(expected), atol=1e-5
    )


def test_scores_path_equals_fused_path_and_returns_probabilities(sequence):
    ours, reference = paired_layers(sequence.shape)
    fused = ours(sequence, use_causal_mask=True)
    outputs, probabilities = ours(sequence, use_causal_mask=True, return_attention_scores=True)
    _, expected_scores = reference(
        sequence, sequence, use_causal_mask=True, return_attention_scores=True
    )
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(fused), atol=1e-5)
    assert probabilities.shape == (BATCH, HEADS, LENGTH, LENGTH)
    np.testing.assert_allclose(to_numpy(probabilities), to_numpy(expected_scores), atol=1e-5)


def test_causality(sequence):
    layer = MultiHeadSelfAttention(HEADS)
    before = to_numpy(layer(sequence, use_causal_mask=True))
    changed = sequence.copy()
    changed[:, 3:] += 10.0
    after = to_numpy(layer(changed, use_causal_mask=True))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    assert not np.allclose(after[:, 3:], before[:, 3:])


def test_padded_keys_do_not_change_real_outputs(sequence):
    padding = np.array([[1, 1, 1, 0, 0]] * BATCH, bool)
    layer = MultiHeadSelfAttention(HEADS)
    garbage = sequence.copy()
    garbage[:, 3:] = 1e3
    clean = to_numpy(layer(masked(sequence, padding)))[:, :3]
    dirty = to_numpy(layer(masked(garbage, padding)))[:, :3]
    np.testing.assert_allclose(dirty, clean, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("return_attention_scores", [False, True])
def test_row_with_nothing_to_attend_is_finite(sequence, dtype, return_attention_scores):
    layer = MultiHeadSelfAttention(HEADS, dtype=dtype)
    attention_mask = np.ones((BATCH, LENGTH, LENGTH), bool)
    attention_mask[0, 2] = False
    padding = np.zeros((BATCH, LENGTH), bool)
    outputs = layer(
        masked(sequence.astype(dtype), padding),
        attention_mask=attention_mask,
        return_attention_scores=return_attention_scores,
    )
    outputs = outputs[0] if return_attention_scores else outputs
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    assert np.isfinite(to_numpy(keras.ops.cast(outputs, "float32"))).all()


def test_key_dim_default_and_explicit(sequence):
    default = MultiHeadSelfAttention(HEADS)
    default(sequence)
    assert default.query_dense.kernel.shape == (WIDTH, WIDTH)
    explicit = MultiHeadSelfAttention(HEADS, key_dim=3, use_bias=False)
    assert explicit(sequence).shape == sequence.shape
    assert explicit.query_dense.kernel.shape == (WIDTH, HEADS * 3)
    assert len(explicit.weights) == 4


def test_attention_dropout_respects_training_and_seed(sequence):
    assert_dropout_respects_training_and_seed(
        lambda: MultiHeadSelfAttention(HEADS, dropout=0.5, seed=7), sequence
    )


def test_config_and_file_round_trip(sequence, rng, tmp_path):
    layer = MultiHeadSelfAttention(HEADS, key_dim=3, dropout=0.1, use_bias=False, seed=1)
    assert_config_round_trip(layer)
    context = rng.normal(size=(BATCH, 4, 6)).astype("float32")
    assert_keras_file_round_trip(layer, [sequence, context], tmp_path)


def test_symbolic_output_shape():
    inputs = keras.Input((None, WIDTH))
    context = keras.Input((7, 12))
    assert MultiHeadSelfAttention(HEADS)(inputs, context).shape == (None, None, WIDTH)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(sequence, policy):
    layer = MultiHeadSelfAttention(HEADS, dtype=policy)
    outputs = layer(sequence, use_causal_mask=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in layer.weights)
    assert np.isfinite(to_numpy(keras.ops.cast(outputs, "float32"))).all()


def test_trains_with_fit(sequence):
    inputs = keras.Input((LENGTH, WIDTH))
    model = keras.Model(inputs, MultiHeadSelfAttention(HEADS)(inputs))
    model.compile("adam", "mse")
    history = model.fit(sequence, sequence, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_heads": 0}, "num_heads"),
        ({"num_heads": 2, "key_dim": -1}, "key_dim"),
        ({"num_heads": 2, "dropout": 1.0}, "dropout"),
        ({"num_heads": 2, "dropout": -0.1}, "dropout"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        MultiHeadSelfAttention(**kwargs)


def test_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"d_model.*divisible.*num_heads"):
        MultiHeadSelfAttention(3)(np.zeros((1, 2, 8), "float32"))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"inputs.*rank 3"):
        MultiHeadSelfAttention(2)(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"context.*rank 3"):
        MultiHeadSelfAttention(2)(np.zeros((2, 3, 8), "float32"), np.zeros((2, 8), "float32"))


CALLS = {
    "self": ({}, {}),
    "causal": ({}, {"use_causal_mask": True}),
    "scores": ({}, {"return_attention_scores": True}),
    "cross": ({"context": (BATCH, 7, 12)}, {}),
    "cross scores": ({"context": (BATCH, 7, 12)}, {"return_attention_scores": True}),
    "cache": ({"cache": (BATCH, 2, HEADS, LENGTH, WIDTH // HEADS)}, {"cache_index": 2}),
    "precomputed cache": ({"cache": (BATCH, 2, HEADS, 7, WIDTH // HEADS)}, {}),
}


@pytest.mark.parametrize("call", CALLS)
def test_functional_call_returns_what_the_eager_call_returns(sequence, rng, call):
    shapes, kwargs = CALLS[call]
    tensors = {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}
    inputs = sequence[:, :1] if "cache_index" in kwargs else sequence
    outputs = assert_functional_call_matches_eager(
        MultiHeadSelfAttention(HEADS), inputs, tensor_kwargs=tensors, **kwargs
    )
    with_second = kwargs.get("return_attention_scores") or "cache" in tensors
    assert isinstance(outputs, tuple) == bool(with_second)


def test_cache_and_scores_are_separate_calls(sequence):
    layer = MultiHeadSelfAttention(HEADS)
    cache = np.zeros((BATCH, 2, HEADS, LENGTH, WIDTH // HEADS), "float32")
    with pytest.raises(ValueError, match="return_attention_scores"):
        layer(sequence[:, :1], cache=cache, cache_index=0, return_attention_scores=True)
    with pytest.raises(ValueError, match="cache_index"):
        layer(sequence, cache_index=0)


def test_incremental_calls_equal_the_causal_call(sequence):
    layer = MultiHeadSelfAttention(HEADS)
    full = to_numpy(layer(sequence, use_causal_mask=True))
    cache = np.zeros((BATCH, 2, HEADS, LENGTH, WIDTH // HEADS), "float32")
    for index in range(LENGTH):
        step = sequence[:, index : index + 1]
        outputs, cache = layer(step, cache=cache, cache_index=index, use_causal_mask=True)
        np.testing.assert_allclose(to_numpy(outputs), full[:, index : index + 1], atol=1e-5)
    # The cache holds every position's keys and values, heads first.
    np.testing.assert_allclose(
        to_numpy(cache), to_numpy(layer.compute_key_value_cache(sequence)), atol=1e-6
    )


def test_a_precomputed_cache_equals_attending_the_context(sequence, rng):
    context = rng.normal(size=(BATCH, 7, 12)).astype("float32")
    layer = MultiHeadSelfAttention(HEADS)
    expected = to_numpy(layer(sequence, context))
    cache = layer.compute_key_value_cache(context)
    assert tuple(cache.shape) == (BATCH, 2, HEADS, 7, WIDTH // HEADS)
    outputs, returned = layer(sequence, cache=cache)
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(returned), to_numpy(cache))
