"""Tokenizers for translation: keras-nlp tokenizers with a fixed set of
special ids, and the packing of token ids into padded training arrays."""

import collections
import io
import json
import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

from keras_transformer.data.special_ids import (
    END_ID,
    PADDING_ID,
    RESERVED_TOKENS,
    START_ID,
    UNKNOWN_ID,
)
from keras_transformer.translation.options import TOKENIZER_KINDS
from keras_transformer.validation import check_choice, check_positive_int

# Byte fallback spells any character the vocabulary lacks as its UTF-8 bytes.
_BYTE_PIECES = 256
# SentencePiece learns its pieces from at most this many sentences.
_SENTENCEPIECE_SAMPLE = 1_000_000
_WORDPIECE_DEFAULT_SIZE = 8000
# Learned pieces that shorten a corpus less than this (characters per piece)
# are not worth their ids: the vocabulary is then the characters alone.
_MIN_SHORTENING = 1.5
_SHORTENING_SAMPLE = 2000
# A word seen this often can be learned as a piece of its own; a corpus with
# more than `_NATURAL_LANGUAGE_WORDS` such words has the long tail of a
# natural language, and its vocabulary learns twice that many pieces.
_FREQUENT_WORD_COUNT = 30
_NATURAL_LANGUAGE_WORDS = 500
# Both sides of a corpus are written in the same characters when at least
# this share of each side's characters (spaces aside, with repeats) occur on
# the other.
_SAME_CHARACTERS_SHARE = 0.9


def train_tokenizer(
    texts: Sequence[str], kind: str = "sentencepiece", vocabulary_size: int | None = None
):
    """A keras-nlp tokenizer fitted to `texts`, with ids 0-3 reserved for
    padding, start, end and unknown.

    `"sentencepiece"` (the default) trains a unigram SentencePiece model
    (Kudo, 2018) with the `sentencepiece` package and wraps it in keras-nlp's
    `SentencePieceTokenizer`: digits are split into single digits, text is
    not normalised, and characters outside the vocabulary fall back to their
    UTF-8 bytes, so `detokenize(tokenize(s)) == s` for any text.
    `"wordpiece"` computes a WordPiece vocabulary; words are split on
    whitespace only, so punctuation stays attached and decoding restores the
    text exactly (unseen characters become unknown).
    `"character"` gives one id per Unicode code point up to the largest one
    in `texts` (larger ones map to the last id).

    `vocabulary_size` is an upper bound; by default it is 8000 for
    WordPiece, and for SentencePiece it grows with the corpus
    (`default_vocabulary_size`), unless the pieces learned at that size
    shorten the texts less than 1.5 times (characters per piece): then they
    would add ids to learn without saving much length, and the vocabulary is
    the characters (and bytes) alone, which compose any word.
    """
    check_choice("kind", kind, TOKENIZER_KINDS)
    if vocabulary_size is not None:
        check_positive_int("vocabulary_size", vocabulary_size)
    if not texts:
        raise ValueError("`texts` must hold at least one sentence to fit a tokenizer to.")
    trainers = {
        "sentencepiece": _train_sentencepiece,
        "wordpiece": _train_wordpiece,
        "character": _character_tokenizer,
    }
    return trainers[kind](texts, vocabulary_size)


def train_tokenizers(
    source_texts: Sequence[str],
    target_texts: Sequence[str],
    kind: str = "sentencepiece",
    vocabulary_size: int | None = None,
    shared: bool = False,
) -> tuple:
    """`(source_tokenizer, target_tokenizer)` fitted to the two sides; with
    `shared`, one tokenizer fitted to both (the paper's shared vocabulary),
    returned twice."""
    if shared:
        tokenizer = train_tokenizer([*source_texts, *target_texts], kind, vocabulary_size)
        return tokenizer, tokenizer
    return (
        train_tokenizer(source_texts, kind, vocabulary_size),
        train_tokenizer(target_texts, kind, vocabulary_size),
    )


def default_vocabulary_size(texts: Iterable[str]) -> int:
    """The SentencePiece vocabulary size for a corpus: the pieces it must
    hold (reserved ids, the 256 bytes, every character seen) and learned
    pieces, at most 8000. A natural-language corpus (more than 500 distinct
    words seen at least 30 times each) learns twice as many pieces as it
    has such words, or a quarter of the square root of its size in
    characters if that is more; any other corpus the latter alone, so a
    small or repetitive one gets a vocabulary close to its characters, which
    composes unseen words and numbers from their parts."""
    characters, total, words = set(), 0, collections.Counter()
    for text in texts:
        characters.update(text)
        total += len(text)
        words.update(text.split())
    learned = int(math.sqrt(total) / 4)
    frequent = sum(count >= _FREQUENT_WORD_COUNT for count in words.values())
    if frequent > _NATURAL_LANGUAGE_WORDS:
        learned = max(learned, 2 * frequent)
    return _sentencepiece_minimum(characters) + min(_WORDPIECE_DEFAULT_SIZE, learned)


def same_characters(source_texts: Iterable[str], target_texts: Iterable[str]) -> bool:
    """Whether the two sides are written in the same characters: at least
    90% of each side's characters (spaces aside, counted with their
    repeats) also occur on the other side. English and French sentences
    share theirs (and the names, numbers and placeholders copied across);
    English number words and digits, or Latin and Cyrillic letters, do not,
    and neither do two small alphabets of one script that differ (English
    and French number words: the y of "twenty", the q of "cinq")."""
    sides = [collections.Counter(), collections.Counter()]
    for counter, texts in zip(sides, (source_texts, target_texts), strict=True):
        for text in texts:
            counter.update(text)
        counter.pop(" ", None)
    for counter, other in ((sides[0], sides[1]), (sides[1], sides[0])):
        shared = sum(count for character, count in counter.items() if character in other)
        if shared < _SAME_CHARACTERS_SHARE * max(sum(counter.values()), 1):
            return False
    return True


def _sentencepiece_minimum(characters: set) -> int:
    # A space is written as the piece "▁", which stands for it.
    return len(RESERVED_TOKENS) + _BYTE_PIECES + len(characters - {" "}) + 1


def _train_sentencepiece(texts, vocabulary_size):
    import keras_nlp

    try:
        import sentencepiece
    except ImportError as error:
        raise ImportError(
            "SentencePiece vocabularies need the sentencepiece package: "
            "pip install 'keras-transformer[translate]'"
        ) from error
    characters = set().union(*map(set, texts))
    minimum = _sentencepiece_minimum(characters)
    if vocabulary_size is None:
        proto = _sentencepiece_proto(sentencepiece, texts, default_vocabulary_size(texts))
        if _shortening(sentencepiece, proto, texts) < _MIN_SHORTENING:
            proto = _sentencepiece_proto(sentencepiece, texts, minimum)
    elif vocabulary_size < minimum:
        raise ValueError(
            f"`vocabulary_size`={vocabulary_size} is too small for a SentencePiece vocabulary "
            f"of these texts: it needs at least {minimum} pieces ({len(RESERVED_TOKENS)} "
            f"reserved, {_BYTE_PIECES} bytes and the {minimum - _BYTE_PIECES - 4} characters "
            "seen)."
        )
    else:
        proto = _sentencepiece_proto(sentencepiece, texts, vocabulary_size)
    return keras_nlp.tokenizers.SentencePieceTokenizer(proto=proto)


def _sentencepiece_proto(sentencepiece, texts, vocabulary_size) -> bytes:
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=proto,
        vocab_size=vocabulary_size,
        hard_vocab_limit=False,  # a small corpus may support fewer pieces
        model_type="unigram",
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        input_sentence_size=_SENTENCEPIECE_SAMPLE,
        shuffle_input_sentence=True,
        **_sentencepiece_special_pieces(),
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    return proto.getvalue()


def _shortening(sentencepiece, proto, texts) -> float:
    """Characters per piece over (a sample of) `texts`."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    sample = texts[:: max(1, len(texts) // _SHORTENING_SAMPLE)]
    pieces = sum(map(len, processor.encode(list(sample))))
    return sum(map(len, sample)) / max(pieces, 1)


def _sentencepiece_special_pieces() -> dict:
    names = ("pad", "bos", "eos", "unk")
    return {
        **{f"{name}_id": token_id for token_id, name in enumerate(names)},
        **{f"{name}_piece": token for name, token in zip(names, RESERVED_TOKENS, strict=True)},
    }


def _train_wordpiece(texts, vocabulary_size):
    import keras_nlp
    import tensorflow as tf

    words = [word for text in texts for word in text.split()]
    vocabulary = keras_nlp.tokenizers.compute_word_piece_vocabulary(
        # Batched, the word counting takes seconds rather than minutes.
        tf.data.Dataset.from_tensor_slices(words).batch(4096),
        vocabulary_size=max(vocabulary_size or _WORDPIECE_DEFAULT_SIZE, len(RESERVED_TOKENS) + 1),
        split=False,
        reserved_tokens=list(RESERVED_TOKENS),
    )
    return keras_nlp.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        split=False,
        oov_token=RESERVED_TOKENS[UNKNOWN_ID],
        special_tokens=list(RESERVED_TOKENS[:UNKNOWN_ID]),
    )


def _character_tokenizer(texts, vocabulary_size):
    import keras_nlp

    largest = max(max(map(ord, text), default=0) for text in texts)
    return keras_nlp.tokenizers.UnicodeCodepointTokenizer(
        lowercase=False, vocabulary_size=max(largest, UNKNOWN_ID) + 2
    )


def tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without start or end ids."""
    import keras_nlp

    if isinstance(tokenizer, keras_nlp.tokenizers.WordPieceTokenizer) and not tokenizer.split:
        rows = tokenizer([text.split() for text in texts])
    else:
        rows = tokenizer(list(texts))
    return [[int(token) for token in row] for row in rows]


def detokenize(tokenizer, token_ids: Sequence[Sequence[int]]) -> list[str]:
    """Texts of rows of token ids; each row stops at its first end id, and
    padding and start ids are dropped."""
    rows = []
    for row in token_ids:
        row = [int(token) for token in row]
        if END_ID in row:
            row = row[: row.index(END_ID)]
        rows.append([token for token in row if token not in (PADDING_ID, START_ID)])
    return [str(text) for text in tokenizer.detokenize(rows)] if rows else []


def tokenize_graph(tokenizer, texts):
    """`tokenize` in TensorFlow ops, for a `tf.function`: `(batch,)` strings
    -> ragged int32 ids `(batch, None)`.

    keras-nlp's SentencePiece tokenizer runs TensorFlow Text's ops here, and
    the Python SentencePiece library in `tokenize`: the two can choose
    differently between equally likely pieces (in runs of spaces), and a
    text detokenized by TensorFlow Text loses its leading spaces."""
    import keras_nlp
    import tensorflow as tf

    if isinstance(tokenizer, keras_nlp.tokenizers.WordPieceTokenizer) and not tokenizer.split:
        texts = tf.strings.split(texts)  # (batch, words) ragged
    token_ids = tokenizer.tokenize(texts)
    if token_ids.ragged_rank > 1:
        token_ids = token_ids.merge_dims(1, -1)  # the pieces of every word, in a row
    return tf.cast(token_ids, tf.int32)


def tokens_of(tokenizer, token_ids: Sequence[int]) -> list[str]:
    """The token strings of one row of ids, for labelling plots."""
    return [str(tokenizer.id_to_token(int(token))) for token in token_ids]


def pack(
    rows: Sequence[Sequence[int]],
    length: int,
    start: bool = False,
    end: bool = False,
    count: int | None = None,
):
    """Rows of ids, framed by the start and/or end id, padded with 0 to
    `(count, length)` int32 (`count` defaults to `len(rows)`; the rows past
    `len(rows)` are all padding); a row that does not fit raises."""
    packed = np.zeros((len(rows) if count is None else count, length), "int32")
    for index, row in enumerate(rows):
        framed = [START_ID] * start + list(row) + [END_ID] * end
        if len(framed) > length:
            raise ValueError(f"Row {index} has {len(framed)} ids; `length` is {length}.")
        packed[index, : len(framed)] = framed
    return packed


def fits(source: Sequence[int], target: Sequence[int], max_length: int) -> bool:
    """Whether a pair of source and target ids (without start or end id)
    fits in `max_length`: its source, and its target with one added id."""
    return len(source) <= max_length and len(target) + 1 <= max_length


def nothing_fits(max_length: int) -> ValueError:
    return ValueError(f"No pair fits in `max_length`={max_length} tokens.")


def seq2seq_arrays(sources, targets, source_length: int, target_length: int, rows=None):
    """`(inputs, labels)` for `model.fit` from rows of source and target ids:
    encoder inputs are the source ids, decoder inputs the target ids after a
    start id, labels the target ids followed by an end id; padded with 0 to
    `source_length` / `target_length` and to `rows` rows."""
    inputs = {
        "encoder_inputs": pack(sources, source_length, count=rows),  # (rows, source_length)
        "decoder_inputs": pack(targets, target_length, start=True, count=rows),
    }
    return inputs, pack(targets, target_length, end=True, count=rows)  # (rows, target_length)


def training_arrays(source_tokenizer, target_tokenizer, pairs, max_length: int):
    """`(inputs, labels, skipped)` for `model.fit` from (source, target)
    text pairs, as `seq2seq_arrays` makes them. Pairs that do not `fit` in
    `max_length` ids are left out and counted in `skipped`; the arrays are
    padded to the longest kept pair."""
    sources = tokenize(source_tokenizer, [source for source, _ in pairs])
    targets = tokenize(target_tokenizer, [target for _, target in pairs])
    kept = [pair for pair in zip(sources, targets, strict=True) if fits(*pair, max_length)]
    if not kept:
        raise nothing_fits(max_length)
    sources, targets = [source for source, _ in kept], [target for _, target in kept]
    source_length = max(len(source) for source in sources)
    target_length = max(len(target) for target in targets) + 1
    inputs, labels = seq2seq_arrays(sources, targets, source_length, target_length)
    return inputs, labels, len(pairs) - len(kept)


def save_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Writes `tokenizer` (its config and its vocabulary files) to `directory`."""
    import keras

    os.makedirs(directory, exist_ok=True)
    if hasattr(tokenizer, "save_assets"):  # vocabulary files; character tokenizers have none
        tokenizer.save_assets(directory)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(keras.saving.serialize_keras_object(tokenizer), file)


def load_tokenizer(directory: str | os.PathLike):
    """The tokenizer that `save_tokenizer` wrote to `directory`."""
    import keras

    with open(os.path.join(directory, "config.json"), encoding="utf-8") as file:
        tokenizer = keras.saving.deserialize_keras_object(json.load(file))
    if hasattr(tokenizer, "load_assets"):
        tokenizer.load_assets(directory)
    return tokenizer
