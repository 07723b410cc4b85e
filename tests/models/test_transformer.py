import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from keras_transformer import Transformer
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID, make_reverse_task
from tests.helpers import mask_of, to_numpy

SMALL = {"num_layers": 2, "d_model": 16, "num_heads": 2, "ff_dim": 32}
SOURCE = np.array([[5, 6, 7, 8, 0, 0], [3, 4, 5, 6, 7, 9]], "int32")
TARGET = np.array([[1, 9, 8, 0, 0], [1, 4, 3, 6, 2]], "int32")
INPUTS = {"encoder_inputs": SOURCE, "decoder_inputs": TARGET}


def small_model(**kwargs):
    return Transformer(source_vocabulary_size=11, target_vocabulary_size=13, **SMALL, **kwargs)


def logits_of(model, source, target):
    return to_numpy(model.predict_on_batch({"encoder_inputs": source, "decoder_inputs": target}))


def test_paper_base_model_defaults():
    model = Transformer(37000, 37000, share_embeddings=True, tie_output_embedding=True)
    config = model.get_config()
    assert (config["num_layers"], config["d_model"], config["num_heads"], config["ff_dim"]) == (
        6,
        512,
        8,
        2048,
    )
    assert config["dropout"] == 0.1
    # The paper reports 65M parameters for the base model.
    assert 60e6 < model.count_params() < 66e6


def test_output_shape_dtype_and_mask():
    model = small_model()
    logits = model(INPUTS)
    assert logits.shape == (2, 5, 13)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    np.testing.assert_array_equal(mask_of(logits), TARGET != 0)
    assert model.output_shape == (None, None, 13)


def test_weight_sharing_options():
    separate = small_model()
    shared = Transformer(11, 11, share_embeddings=True, tie_output_embedding=True, **SMALL)
    assert shared.source_embedding is shared.target_embedding
    assert shared.output_projection is None
    # The separate model also has a target embedding and an output projection.
    extra = 13 * 16 + (16 * 13 + 13)
    assert separate.count_params() - shared.count_params() == extra
    assert shared(INPUTS).shape == (2, 5, 11)


@pytest.mark.parametrize(
    "kwargs", [{"norm_first": True}, {"position_encoding": "learned", "max_length": 8}]
)
def test_options_build_and_run(kwargs):
    model = small_model(**kwargs)
    assert np.isfinite(to_numpy(model(INPUTS))).all()
    if kwargs.get("norm_first"):
        assert model.encoder_norm is not None and model.decoder_norm is not None


def test_a_later_target_token_never_changes_earlier_logits():
    model = small_model()
    before = logits_of(model, SOURCE, TARGET)
    changed = TARGET.copy()
    changed[:, 2] = 10
    after = logits_of(model, SOURCE, changed)
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-5)
    assert not np.allclose(after[:, 2:], before[:, 2:])


def test_extra_padding_never_changes_real_logits():
    model = small_model()
    before = logits_of(model, SOURCE, TARGET)
    longer_source = np.pad(SOURCE, ((0, 0), (0, 4)))
    longer_target = np.pad(TARGET, ((0, 0), (0, 3)))
    after = logits_of(model, longer_source, longer_target)[:, :5]
    real = TARGET != 0
    np.testing.assert_allclose(after[real], before[real], atol=1e-5)


def test_all_padding_source_row_is_finite():
    source = SOURCE.copy()
    source[0] = 0
    assert np.isfinite(logits_of(small_model(), source, TARGET)).all()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    model = small_model(dtype=policy)
    logits = model(INPUTS)
    assert keras.backend.standardize_dtype(logits.dtype) == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in model.weights)
    assert np.isfinite(to_numpy(keras.ops.cast(logits, "float32"))).all()


def test_no_mask_warnings_from_our_layers():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small_model(norm_first=True, tie_output_embedding=True)(INPUTS)
    assert not [w for w in caught if "mask" in str(w.message)]


def test_config_round_trip():
    model = small_model(dropout=0.2, norm_first=True, tie_output_embedding=True, seed=3)
    config = model.get_config()
    clone = Transformer.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def test_keras_file_round_trip(tmp_path):
    model = small_model(share_embeddings=False, tie_output_embedding=True)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is Transformer
    np.testing.assert_allclose(
        logits_of(restored, SOURCE, TARGET), logits_of(model, SOURCE, TARGET), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"source_vocabulary_size": 0}, "source_vocabulary_size"),
        ({"target_vocabulary_size": -1}, "target_vocabulary_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"d_model": 30, "num_heads": 4}, "divisible"),
        ({"ff_dim": 0}, "ff_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"position_encoding": "learned"}, "max_length"),
        ({"share_embeddings": True, "target_vocabulary_size": 12}, "share_embeddings"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    config = {"source_vocabulary_size": 11, "target_vocabulary_size": 11, **SMALL, **kwargs}
    with pytest.raises(ValueError, match=argument):
        Transformer(**config)


def test_the_trained_reverser_reverses_held_out_sequences(trained_reverser):
    test_inputs, test_labels = make_reverse_task(500, seed=1)
    predictions = np.argmax(to_numpy(trained_reverser.predict(test_inputs, verbose=0)), -1)
    real = test_labels != 0
    assert (predictions == test_labels)[real].mean() >= 0.99


NEXT_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}


def test_saved_file_loads_under_the_next_backend(trained_reverser, tmp_path):
    """The next backend (TensorFlow -> JAX -> torch -> TensorFlow, so that
    over the three backends' runs each saves and each loads) loads the file
    in a fresh process: the weights arrive bit for bit, the logits agree up
    to float32 rounding (each backend sums its matrix products in its own
    order), and greedy and beam-search decoding give the same outputs as the
    model that was saved."""
    inputs, _ = make_reverse_task(8, seed=2)
    model_path = os.path.join(tmp_path, "model.keras")
    inputs_path = os.path.join(tmp_path, "inputs.npz")
    trained_reverser.save(model_path)
    np.savez(inputs_path, **inputs)
    expected = to_numpy(trained_reverser(inputs, training=False))
    decoded = {
        sampler: trained_reverser.generate(
            inputs["encoder_inputs"], START_TOKEN_ID, END_TOKEN_ID, 12, sampler=sampler
        )
        for sampler in ("greedy", "beam")
    }
    script = os.path.join(os.path.dirname(__file__), "use_saved_model.py")
    backend = NEXT_BACKEND[keras.backend.backend()]
    run = subprocess.run(
        [sys.executable, script, model_path, inputs_path, os.path.join(tmp_path, backend)],
        env={**os.environ, "KERAS_BACKEND": backend},
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"loading under {backend} failed:\n{run.stderr[-3000:]}"
    loaded = dict(np.load(os.path.join(tmp_path, f"{backend}.npz")))
    for index, original in enumerate(trained_reverser.get_weights()):
        np.testing.assert_array_equal(loaded[f"weight_{index}"], original, err_msg=backend)
    tolerance = {"rtol": 1e-5, "atol": 1e-5 * np.abs(expected).max()}
    np.testing.assert_allclose(loaded["logits"], expected, **tolerance, err_msg=backend)
    for sampler, outputs in decoded.items():
        np.testing.assert_array_equal(loaded[sampler], outputs, err_msg=f"{backend} {sampler}")


def test_attention_scores_cover_every_layer_and_skip_source_padding():
    model = Transformer(20, 30, num_layers=2, d_model=16, num_heads=4, ff_dim=32)
    sources = np.array([[5, 6, 7, 0], [5, 6, 7, 8]], "int32")
    targets = np.array([[1, 9, 0], [1, 9, 10]], "int32")
    scores = model.attention_scores(sources, targets)
    assert [len(scores[name]) for name in ("encoder", "decoder_self", "decoder_cross")] == [2] * 3
    cross = to_numpy(scores["decoder_cross"][-1])  # (batch, heads, target_len, source_len)
    assert cross.shape == (2, 4, 3, 4)
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
    assert np.all(cross[0, :, :, 3] == 0)


def random_sublayer_seeds(model) -> list[int]:
    """The seeds of every dropout of `model`: its embeddings', and each
    block's on attention probabilities and on sublayer outputs."""
    seeds = [model.source_embedding.seed, model.target_embedding.seed]
    for block in (*model.encoder_blocks, *model.decoder_blocks):
        attentions = [block.self_attention, getattr(block, "cross_attention", None)]
        dropouts = [
            block.self_attention_dropout,
            getattr(block, "cross_attention_dropout", None),
            block.feed_forward_dropout,
        ]
        seeds += [layer.seed for layer in (*attentions, *dropouts) if layer is not None]
    return seeds


def test_every_random_sublayer_has_its_own_seed_at_any_depth():
    model = Transformer(20, 20, num_layers=12, d_model=8, num_heads=2, ff_dim=16, seed=3)
    seeds = random_sublayer_seeds(model)
    assert len(seeds) == 2 + 12 * 3 + 12 * 5  # an encoder block has no cross-attention
    assert len(set(seeds)) == len(seeds)
    again = Transformer(20, 20, num_layers=12, d_model=8, num_heads=2, ff_dim=16, seed=3)
    assert random_sublayer_seeds(again) == seeds
    other = Transformer(20, 20, num_layers=12, d_model=8, num_heads=2, ff_dim=16, seed=4)
    assert not set(random_sublayer_seeds(other)) & set(seeds)
