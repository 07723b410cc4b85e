import dataclasses

import numpy as np
import pytest

from keras_transformer.data.pairs import fingerprint_pairs
from keras_transformer.translation.options import DEFAULT_EPOCHS, TrainingOptions
from keras_transformer.translation.run import (
    STATE_DIRECTORY,
    RunDirectoryError,
    build_transformer,
    tokenizer_sample,
)
from keras_transformer.translation.run import _RunState as RunState
from keras_transformer.translation.tokenizers import train_tokenizer, training_arrays

PAIRS = [("one two", "un deux"), ("three", "trois"), ("two one", "deux un")] * 4
SMALL = {"num_layers": 1, "d_model": 16, "num_heads": 2, "ff_dim": 32}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([text for pair in PAIRS for text in pair], "character")


def test_mixed_precision_and_accumulation_reach_the_model(tokenizer):
    options = TrainingOptions(**SMALL, dtype_policy="mixed_bfloat16", accumulate_steps=2)
    model = build_transformer(options, tokenizer, tokenizer, steps_per_epoch=10)
    assert model.get_layer("encoder_block_0").compute_dtype == "bfloat16"
    assert {weight.dtype for weight in model.trainable_weights} == {"float32"}
    assert model.optimizer.gradient_accumulation_steps == 2
    inputs, labels, _ = training_arrays(tokenizer, tokenizer, PAIRS, 16)
    losses = [float(model.train_on_batch(inputs, labels)[0]) for _ in range(4)]
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("decay, total", [(True, 50), (False, None)])
def test_the_schedule_ends_at_the_last_epoch_unless_asked_not_to(tokenizer, decay, total):
    options = TrainingOptions(**SMALL, epochs=5, decay_to_zero=decay)
    model = build_transformer(options, tokenizer, tokenizer, steps_per_epoch=10)
    schedule = model.optimizer.get_config()["learning_rate"]["config"]
    assert schedule["total_steps"] == total
    assert schedule["d_model"] == 16 and schedule["warmup_steps"] == options.warmup_steps


def test_a_shared_vocabulary_shares_embedding_and_output(tokenizer):
    def token_matrices(shared):
        """The number of (vocabulary, d_model) and (d_model, vocabulary)
        weight matrices: embeddings and output projections."""
        options = TrainingOptions(**SMALL, shared_vocabulary=shared)
        model = build_transformer(options, tokenizer, tokenizer, steps_per_epoch=1)
        vocabulary, width = tokenizer.vocabulary_size(), options.d_model
        shapes = [tuple(weight.shape) for weight in model.trainable_weights]
        return shapes.count((vocabulary, width)), shapes.count((width, vocabulary))

    assert token_matrices(shared=True) == (1, 0)
    assert token_matrices(shared=False) == (2, 1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_tokens": 0}, "batch_tokens"),
        ({"patience": 0}, "patience"),
        ({"average_checkpoints": -1}, "average_checkpoints"),
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"tokenizer": "bpe"}, "tokenizer"),
        ({"dtype_policy": "float16"}, "dtype_policy"),
    ],
)
def test_bad_options_name_themselves(change, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions(**change).check()


def test_tokenizers_see_all_of_a_small_corpus_and_an_even_sample_of_a_large_one():
    pairs = [("s", f"t{i:03}") for i in range(1000)]  # 5 characters a pair
    assert tokenizer_sample(pairs, characters=5000) == pairs
    sample = tokenizer_sample(pairs, characters=1500)
    assert sample == pairs[::4] and len(sample) == 250
    assert tokenizer_sample(pairs[:7], characters=15) == [pairs[0], pairs[3], pairs[6]]


def unfinished_run(directory, options, data):
    """A run directory as an interrupted run leaves it: its options, the
    fingerprint of its pairs and Keras's backup of an epoch."""
    RunState(directory, options, data)
    backup = directory / STATE_DIRECTORY / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')


PAIRS = [("one", "un"), ("two", "deux"), ("three", "trois")]


def fingerprints(train):
    return {
        split: fingerprint_pairs(pairs)
        for split, pairs in (("train", train), ("validation", PAIRS[:1]), ("test", PAIRS[1:]))
    }


def test_a_resumed_run_may_change_only_what_leaves_the_weights_alone(tmp_path):
    options = TrainingOptions(epochs=None, shared_vocabulary=False, beams=4)
    unfinished_run(tmp_path, options, fingerprints(PAIRS))
    RunState(tmp_path, dataclasses.replace(options, beams=1), fingerprints(PAIRS))
    RunState(tmp_path, dataclasses.replace(options, epochs=DEFAULT_EPOCHS), fingerprints(PAIRS))
    with pytest.raises(RunDirectoryError, match=r"other options \(d_model: 128 -> 64\)"):
        RunState(tmp_path, dataclasses.replace(options, d_model=64), fingerprints(PAIRS))
    with pytest.raises(RunDirectoryError, match=r"other options \(epochs: 5 -> 6\)"):
        RunState(tmp_path, dataclasses.replace(options, epochs=6), fingerprints(PAIRS))


def test_a_run_resumed_on_other_pairs_is_refused(tmp_path):
    options = TrainingOptions(shared_vocabulary=False)
    unfinished_run(tmp_path, options, fingerprints(PAIRS))
    RunState(tmp_path, options, fingerprints(list(PAIRS)))  # equal pairs, another list
    changed = [PAIRS[0], ("two", "zwei"), PAIRS[2]]
    with pytest.raises(RunDirectoryError, match=r"other pairs \(train: 3 pairs, sha256 \w+ -> 3"):
        RunState(tmp_path, options, fingerprints(changed))
    with pytest.raises(RunDirectoryError, match=r"train: 3 pairs.* -> 2 pairs"):
        RunState(tmp_path, options, fingerprints(PAIRS[:2]))


def test_fingerprints_tell_pairs_apart_by_content_and_order():
    assert fingerprint_pairs(iter(PAIRS)) == fingerprint_pairs(list(PAIRS))
    assert fingerprint_pairs(PAIRS) != fingerprint_pairs(PAIRS[::-1])
    assert fingerprint_pairs([("a b", "c")]) != fingerprint_pairs([("a", "b c")])


def test_a_run_saved_with_its_vocabulary_sharing_undecided_resumes(tmp_path):
    options = TrainingOptions(shared_vocabulary=True)
    unfinished_run(tmp_path, options, fingerprints(PAIRS))
    saved = tmp_path / STATE_DIRECTORY / "options.json"
    saved.write_text(
        saved.read_text().replace('"shared_vocabulary": true', '"shared_vocabulary": null')
    )
    RunState(tmp_path, options, fingerprints(PAIRS))
    with pytest.raises(RunDirectoryError, match="d_model"):
        RunState(tmp_path, dataclasses.replace(options, d_model=64), fingerprints(PAIRS))
