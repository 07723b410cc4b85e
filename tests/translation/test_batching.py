import os

import numpy as np
import pytest

from keras_transformer.translation.batching import (
    TokenBatches,
    TokenCorpus,
    length_buckets,
)
from keras_transformer.translation.tokenizers import (
    END_ID,
    START_ID,
    detokenize,
    tokenize,
    train_tokenizer,
)

# Pairs of widely varying lengths: 1 to 40 words on the source side.
WORDS = "un deux trois quatre cinq six sept huit neuf dix onze douze".split()


def varied_pairs(count=300, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for index in range(count):
        words = list(rng.choice(WORDS, rng.integers(1, 40)))
        pairs.append((f"{index} " + " ".join(words), " ".join(reversed(words[:12]))))
    return pairs


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([text for pair in varied_pairs() for text in pair], "character")


@pytest.fixture
def corpus(tmp_path, tokenizer):
    return TokenCorpus.build(tmp_path / "tokens", tokenizer, tokenizer, varied_pairs(), 256)


@pytest.fixture
def make_batches(corpus):
    return lambda *args, **kwargs: TokenBatches(corpus, *args, **kwargs)


def pair_ids(batches, index, tokenizer):
    """The indices of the pairs in batch `index`, read from their sources
    (which start with it); rows of padding are left out."""
    sources = detokenize(tokenizer, batches[index][0]["encoder_inputs"])
    return [int(source.split()[0]) for source in sources if source]


def read_back(corpus, indices):
    return [[row.tolist() for row in side] for side in corpus.read(indices)]


def test_buckets_end_at_the_longest_length():
    assert list(length_buckets(100)) == [8, 16, 32, 64, 100]
    assert list(length_buckets(16)) == [8, 16]
    assert list(length_buckets(5)) == [5]


@pytest.mark.parametrize("batch_tokens", [256, 1000, 4096])
def test_batches_stay_within_the_token_budget_and_hold_each_pair_once(
    corpus, make_batches, tokenizer, batch_tokens
):
    batches = make_batches(batch_tokens, 256, seed=3)
    for epoch in range(2):
        batches.set_epoch(epoch)
        seen = []
        for index in range(batches.num_batches):
            inputs, labels = batches[index]
            for array in (inputs["encoder_inputs"], inputs["decoder_inputs"], labels):
                assert array.size <= batch_tokens
            seen += list(pair_ids(batches, index, tokenizer))
        assert sorted(seen) == list(range(len(corpus)))


def test_each_epoch_has_its_own_order_and_a_seed_repeats_it(make_batches, tokenizer):
    batches = make_batches(512, 256, seed=3)
    first = [pair_ids(batches, i, tokenizer) for i in range(batches.num_batches)]
    batches.set_epoch(1)
    second = [pair_ids(batches, i, tokenizer) for i in range(batches.num_batches)]
    again = make_batches(512, 256, seed=3)
    again.set_epoch(1)
    assert second != first
    assert second == [pair_ids(again, i, tokenizer) for i in range(again.num_batches)]
    unshuffled = make_batches(512, 256)
    unshuffled.set_epoch(1)
    assert [pair_ids(unshuffled, i, tokenizer) for i in range(unshuffled.num_batches)] == [
        pair_ids(make_batches(512, 256), i, tokenizer) for i in range(unshuffled.num_batches)
    ]


def test_rows_hold_the_pairs_framed_and_padded(make_batches, tokenizer):
    pairs = varied_pairs()
    batches = make_batches(1024, 256)
    inputs, labels = batches[0]
    for row, pair_index in enumerate(pair_ids(batches, 0, tokenizer)):
        source, target = tokenize(tokenizer, pairs[pair_index])
        encoder = inputs["encoder_inputs"][row]
        assert list(encoder[: len(source)]) == source and not encoder[len(source) :].any()
        decoder = inputs["decoder_inputs"][row]
        assert list(decoder[: len(target) + 1]) == [START_ID, *target]
        assert list(labels[row][: len(target) + 1]) == [*target, END_ID]
        assert not labels[row][len(target) + 1 :].any()


def test_rows_divide_by_the_devices_and_grouping_saves_padding(corpus, make_batches):
    batches = make_batches(1024, 256, row_multiple=4)
    assert all(len(batches[i][1]) % 4 == 0 for i in range(batches.num_batches))
    real = padded = 0
    for index in range(batches.num_batches):
        inputs, labels = batches[index]
        real += np.count_nonzero(inputs["encoder_inputs"]) + np.count_nonzero(labels)
        padded += inputs["encoder_inputs"].size + labels.size
    assert batches.padding_share() == pytest.approx(1 - real / padded)
    longest_rows = len(corpus) * (corpus.source_lengths.max() + corpus.target_lengths.max() + 1)
    assert batches.padding_share() < 1 - real / longest_rows


def test_each_process_reads_its_rows_of_the_same_global_batches(make_batches):
    """Two processes, each given half of every global batch's rows, read
    together what one process reads, in the same order."""

    def half(process):
        return lambda rows: slice(process * rows // 2, (process + 1) * rows // 2)

    whole = make_batches(1024, 256, seed=3, row_multiple=2)
    halves = [make_batches(1024, 256, seed=3, row_multiple=2, local_rows=half(p)) for p in (0, 1)]
    for batches in (whole, *halves):
        batches.set_epoch(1)
    for index in range(whole.num_batches):
        inputs, labels = whole[index]
        (first, first_labels), (second, second_labels) = (part[index] for part in halves)
        np.testing.assert_array_equal(np.concatenate([first_labels, second_labels]), labels)
        for name, rows in inputs.items():
            np.testing.assert_array_equal(np.concatenate([first[name], second[name]]), rows)


def test_a_budget_below_the_longest_pair_is_refused(corpus):
    longest = length_buckets(256)[np.searchsorted(length_buckets(256), corpus.source_lengths.max())]
    with pytest.raises(ValueError, match=f"`batch_tokens`=40 is smaller.*{longest} tokens"):
        TokenBatches(corpus, 40, 256)


def test_the_cache_is_reused_and_rebuilt_when_stale_or_damaged(tmp_path, tokenizer, corpus):
    pairs = varied_pairs()
    directory = corpus.directory
    lengths_written = os.path.getmtime(os.path.join(directory, "lengths.npy"))
    again = TokenCorpus.build(directory, tokenizer, tokenizer, pairs, 256)
    assert os.path.getmtime(os.path.join(directory, "lengths.npy")) == lengths_written
    with open(os.path.join(directory, "source.bin"), "r+b") as file:
        file.seek(8)
        file.write(b"\xff\xff\xff\x7f")
    with pytest.raises(ValueError, match="source.bin does not match"):
        TokenCorpus(directory)
    rebuilt = TokenCorpus.build(directory, tokenizer, tokenizer, pairs, 256)
    assert read_back(rebuilt, [0, 5, 299]) == read_back(again, [0, 5, 299])
    assert read_back(rebuilt, [5])[0][0] == tokenize(tokenizer, [pairs[5][0]])[0]
    fewer = TokenCorpus.build(directory, tokenizer, tokenizer, pairs[:10], 256)
    assert len(fewer) == 10


def test_pairs_longer_than_the_limit_are_counted_and_left_out(tmp_path, tokenizer):
    pairs = varied_pairs()
    corpus = TokenCorpus.build(tmp_path, tokenizer, tokenizer, pairs, 64)
    sources = tokenize(tokenizer, [source for source, _ in pairs])
    targets = tokenize(tokenizer, [target for _, target in pairs])
    too_long = sum(
        len(source) > 64 or len(target) + 1 > 64
        for source, target in zip(sources, targets, strict=True)
    )
    assert too_long > 0 and corpus.skipped == too_long and len(corpus) == len(pairs) - too_long
    assert corpus.source_lengths.max() <= 64


def test_buckets_too_small_to_fill_batches_join_the_square_bucket(tmp_path):
    rng = np.random.default_rng(0)

    def word(length):
        return "".join(rng.choice(list("abcdef"), length))

    short_short = [(word(5), word(5)) for _ in range(300)]  # bucket (8, 8)
    long_short = [(word(25), word(5)) for _ in range(300)]  # (32, 8): 37 batches of 8
    short_long = [(word(5), word(25)) for _ in range(5)]  # (8, 32): under one batch
    pairs = short_short + long_short + short_long
    tokenizer = train_tokenizer([text for pair in pairs for text in pair], "character")
    corpus = TokenCorpus.build(tmp_path / "tokens", tokenizer, tokenizer, pairs, 64)
    batches = TokenBatches(corpus, 256, 64)
    shapes = {}
    for index in range(batches.num_batches):
        inputs, _ = batches[index]
        shape = (inputs["encoder_inputs"].shape[1], inputs["decoder_inputs"].shape[1])
        sources = detokenize(tokenizer, inputs["encoder_inputs"])
        shapes.setdefault(shape, set()).update(source for source in sources if source)
    assert set(shapes) == {(8, 8), (32, 8), (32, 32)}
    assert shapes[(32, 32)] == {source for source, _ in short_long}
