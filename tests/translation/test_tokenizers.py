import numpy as np
import pytest

from keras_transformer.translation.tokenizers import (
    END_ID,
    PADDING_ID,
    RESERVED_TOKENS,
    START_ID,
    UNKNOWN_ID,
    detokenize,
    load_tokenizer,
    pack,
    save_tokenizer,
    tokenize,
    train_tokenizer,
    training_arrays,
)

TEXTS = [
    "soixante et onze",
    "quatre-vingt-dix-neuf mille",
    "Va, vite !",
    "deux cent vingt-deux",
    "J'ai vu l'été.",
]


@pytest.fixture(scope="module")
def word_pieces():
    return train_tokenizer(TEXTS, "wordpiece", vocabulary_size=200)


@pytest.mark.parametrize("kind", ["wordpiece", "character"])
def test_texts_come_back_exactly(kind):
    tokenizer = train_tokenizer(TEXTS, kind, vocabulary_size=200)
    ids = tokenize(tokenizer, TEXTS)
    assert all(min(row) > UNKNOWN_ID for row in ids)
    assert detokenize(tokenizer, ids) == TEXTS


def test_special_ids_are_the_reserved_tokens(word_pieces):
    for token_id, token in enumerate(RESERVED_TOKENS):
        assert word_pieces.id_to_token(token_id) == token
    assert (PADDING_ID, START_ID, END_ID, UNKNOWN_ID) == (0, 1, 2, 3)


def test_unseen_word_is_unknown_or_pieces(word_pieces):
    [ids] = tokenize(word_pieces, ["quinze €"])
    assert UNKNOWN_ID in ids


def test_detokenize_stops_at_end_and_drops_framing(word_pieces):
    [ids] = tokenize(word_pieces, ["deux cent"])
    row = [START_ID, *ids, END_ID, *ids, PADDING_ID]
    assert detokenize(word_pieces, [row]) == ["deux cent"]


def test_character_ids_are_code_points():
    tokenizer = train_tokenizer(["été"], "character")
    assert tokenize(tokenizer, ["été"]) == [[ord("é"), ord("t"), ord("é")]]
    assert tokenizer.vocabulary_size() == ord("é") + 2


@pytest.mark.parametrize("kind", ["wordpiece", "character"])
def test_save_and_load_give_the_same_ids(kind, tmp_path):
    tokenizer = train_tokenizer(TEXTS, kind, vocabulary_size=200)
    save_tokenizer(tokenizer, tmp_path / "tokenizer")
    restored = load_tokenizer(tmp_path / "tokenizer")
    assert tokenize(restored, TEXTS) == tokenize(tokenizer, TEXTS)
    assert restored.vocabulary_size() == tokenizer.vocabulary_size()


def test_training_arrays_shift_the_target_by_one(word_pieces):
    pairs = [(text, text) for text in TEXTS]
    inputs, labels, skipped = training_arrays(word_pieces, word_pieces, pairs, max_length=64)
    targets = tokenize(word_pieces, TEXTS)
    assert skipped == 0
    assert labels.shape == inputs["decoder_inputs"].shape
    assert labels.shape[1] == max(map(len, targets)) + 1
    for row, target in enumerate(targets):
        n = len(target)
        assert list(inputs["decoder_inputs"][row, : n + 1]) == [START_ID, *target]
        assert list(labels[row, : n + 1]) == [*target, END_ID]
        assert not labels[row, n + 1 :].any() and not inputs["decoder_inputs"][row, n + 1 :].any()
        assert list(inputs["encoder_inputs"][row, :n]) == target


def test_training_arrays_leave_out_long_pairs(word_pieces):
    pairs = [(text, text) for text in TEXTS]
    lengths = [len(ids) for ids in tokenize(word_pieces, TEXTS)]
    limit = sorted(lengths)[2] + 1
    _, labels, skipped = training_arrays(word_pieces, word_pieces, pairs, max_length=limit)
    assert skipped == sum(length + 1 > limit for length in lengths)
    assert len(labels) == len(pairs) - skipped and labels.shape[1] <= limit


def test_pack_frames_and_rejects_rows_that_do_not_fit():
    np.testing.assert_array_equal(
        pack([[5, 6], [7]], 4, start=True, end=True), [[1, 5, 6, 2], [1, 7, 2, 0]]
    )
    with pytest.raises(ValueError, match="Row 0 has 5 ids"):
        pack([[5, 6, 7]], 4, start=True, end=True)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        train_tokenizer(TEXTS, "bytes")
    with pytest.raises(ValueError, match="vocabulary_size"):
        train_tokenizer(TEXTS, vocabulary_size=0)
    with pytest.raises(ValueError, match="at least one sentence"):
        train_tokenizer([])
