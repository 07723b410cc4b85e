import numpy as np
import pytest

from keras_transformer.translation.tokenizers import (
    END_ID,
    PADDING_ID,
    RESERVED_TOKENS,
    START_ID,
    UNKNOWN_ID,
    default_vocabulary_size,
    detokenize,
    load_tokenizer,
    pack,
    same_characters,
    save_tokenizer,
    tokenize,
    train_tokenizer,
    train_tokenizers,
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


# Text a tokenizer must give back unchanged: accents, digits and punctuation
# glued to words, non-breaking and repeated spaces, emoji, another script,
# a tab, and characters that the training texts never held.
AWKWARD = [
    "Ça coûte 12,50 €, n'est-ce pas ?",
    "naïve café\u00a0au lait (1998)",
    "AB-12-34/x7  double  space",
    "emoji 😀 and 🇫🇷 flags",
    "日本語とEnglish",
    " leading and trailing ",
    "a\tb",
]


@pytest.fixture(scope="module")
def sentence_pieces():
    return train_tokenizer(TEXTS * 20 + AWKWARD[:3] * 20, "sentencepiece")


def test_sentencepiece_gives_back_any_text_exactly(sentence_pieces):
    ids = tokenize(sentence_pieces, AWKWARD + TEXTS)
    assert all(UNKNOWN_ID not in row and PADDING_ID not in row for row in ids)
    assert detokenize(sentence_pieces, ids) == AWKWARD + TEXTS


def test_sentencepiece_splits_digits_and_reserves_the_special_ids(sentence_pieces):
    for token_id, token in enumerate(RESERVED_TOKENS):
        assert sentence_pieces.id_to_token(token_id) == token
    [ids] = tokenize(sentence_pieces, ["12345"])
    assert [str(sentence_pieces.id_to_token(i)).lstrip("\u2581") for i in ids][-5:] == list("12345")


def test_the_default_vocabulary_grows_with_the_corpus():
    small, large = TEXTS * 10, [f"{text} {i}" for i in range(2000) for text in TEXTS]
    assert default_vocabulary_size(small) < default_vocabulary_size(large)
    tokenizer = train_tokenizer(small, "sentencepiece")
    assert tokenizer.vocabulary_size() <= default_vocabulary_size(small)


def test_a_natural_language_corpus_learns_twice_its_frequent_words():
    """Words seen at least 30 times: 600 of them (more than 500) set the
    learned pieces to 1200; 400 leave the square-root rule."""

    def corpus(frequent_words):
        words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(frequent_words)]
        return [" ".join(words[i : i + 6]) for i in range(0, frequent_words, 6)] * 30

    natural, repetitive = corpus(600), corpus(400)
    minimum = len(RESERVED_TOKENS) + 256 + len(set("".join(natural)) - {" "}) + 1
    assert default_vocabulary_size(natural) == minimum + 1200
    characters = sum(map(len, repetitive))
    assert default_vocabulary_size(repetitive) == minimum + int(characters**0.5 / 4)


def test_sides_in_the_same_characters_are_told_from_sides_in_others():
    assert same_characters(
        ["option --force is not valid here"], ["l'option --force n'est pas valide ici"]
    )
    assert not same_characters(["one hundred and five", "seven"], ["105", "7"])
    assert not same_characters(["Tochyatyukles"], ["Точятюклес"])
    # 90% of each side's characters must occur on the other.
    assert same_characters(["abcdefghij"], ["abcdefghi\u00e9"])
    assert not same_characters(["abcdefghij"], ["abcdefgh\u00e9\u00e8"])


def test_pieces_that_barely_shorten_the_texts_give_way_to_characters():
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrst")
    random_words = ["".join(rng.choice(letters, 6)) for _ in range(9000)]
    random_words = [" ".join(random_words[i : i + 3]) for i in range(0, 9000, 3)]
    characters_only = len(RESERVED_TOKENS) + 256 + len(letters) + 1  # and the space
    assert train_tokenizer(random_words, "sentencepiece").vocabulary_size() == characters_only
    lexicon = ["".join(rng.choice(letters, 10)) for _ in range(30)]
    sentences = [" ".join(rng.choice(lexicon, 3)) for _ in range(20000)]  # words recur
    tokenizer = train_tokenizer(sentences, "sentencepiece")
    pieces = sum(len(row) for row in tokenize(tokenizer, sentences[:1000]))
    assert sum(map(len, sentences[:1000])) / pieces >= 1.5  # learned pieces kept


def test_a_vocabulary_too_small_for_the_reserved_pieces_is_refused():
    with pytest.raises(ValueError, match=r"`vocabulary_size`=100 is too small.*at least 2\d\d"):
        train_tokenizer(TEXTS, "sentencepiece", vocabulary_size=100)


def test_a_shared_vocabulary_is_one_tokenizer_for_both_sides():
    sources, targets = ["one two", "three"], ["un deux", "trois"]
    source, target = train_tokenizers(sources, targets, "sentencepiece", shared=True)
    assert source is target
    assert detokenize(source, tokenize(source, sources + targets)) == sources + targets
    apart = train_tokenizers(sources, targets, "sentencepiece")
    assert apart[0] is not apart[1]


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "character"])
def test_texts_come_back_exactly(kind):
    tokenizer = train_tokenizer(TEXTS, kind, vocabulary_size=400)
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


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "character"])
def test_save_and_load_give_the_same_ids(kind, tmp_path):
    tokenizer = train_tokenizer(TEXTS, kind, vocabulary_size=400)
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
