import numpy as np
import pytest

from keras_transformer.translation.run import TrainingOptions, build_transformer, tokenizer_sample
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
    model = build_transformer(
        TrainingOptions(**SMALL, shared_vocabulary=True), tokenizer, tokenizer, steps_per_epoch=1
    )
    assert model.share_embeddings and model.tie_output_embedding


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
