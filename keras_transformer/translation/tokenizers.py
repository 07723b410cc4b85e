"""Tokenizers for translation: keras-nlp tokenizers with a fixed set of
special ids, and the packing of token ids into padded training arrays."""

import json
import os
from collections.abc import Sequence

import numpy as np

PADDING_ID, START_ID, END_ID, UNKNOWN_ID = 0, 1, 2, 3
RESERVED_TOKENS = ("[PAD]", "[START]", "[END]", "[UNK]")
TOKENIZER_KINDS = ("wordpiece", "character")


def train_tokenizer(texts: Sequence[str], kind: str = "wordpiece", vocabulary_size: int = 8000):
    """A keras-nlp tokenizer fitted to `texts`, with ids 0-3 reserved for
    padding, start, end and unknown.

    `"wordpiece"` computes a WordPiece vocabulary of at most
    `vocabulary_size` entries; words are split on whitespace only, so
    punctuation stays attached and decoding restores the text exactly.
    `"character"` gives one id per Unicode code point up to the largest one
    in `texts` (larger ones map to the last id).
    """
    import keras_nlp

    from keras_transformer.validation import check_choice, check_positive_int

    check_choice("kind", kind, TOKENIZER_KINDS)
    check_positive_int("vocabulary_size", vocabulary_size)
    if not texts:
        raise ValueError("`texts` must hold at least one sentence to fit a tokenizer to.")
    if kind == "character":
        largest = max(max(map(ord, text), default=0) for text in texts)
        return keras_nlp.tokenizers.UnicodeCodepointTokenizer(
            lowercase=False, vocabulary_size=max(largest, UNKNOWN_ID) + 2
        )
    import tensorflow as tf

    words = [word for text in texts for word in text.split()]
    vocabulary = keras_nlp.tokenizers.compute_word_piece_vocabulary(
        # Batched, the word counting takes seconds rather than minutes.
        tf.data.Dataset.from_tensor_slices(words).batch(4096),
        vocabulary_size=max(vocabulary_size, len(RESERVED_TOKENS) + 1),
        split=False,
        reserved_tokens=list(RESERVED_TOKENS),
    )
    return keras_nlp.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        split=False,
        oov_token=RESERVED_TOKENS[UNKNOWN_ID],
        special_tokens=list(RESERVED_TOKENS[:UNKNOWN_ID]),
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


def tokens_of(tokenizer, token_ids: Sequence[int]) -> list[str]:
    """The token strings of one row of ids, for labelling plots."""
    return [str(tokenizer.id_to_token(int(token))) for token in token_ids]


def pack(rows: Sequence[Sequence[int]], length: int, start: bool = False, end: bool = False):
    """Rows of ids, framed by the start and/or end id, padded with 0 to
    `(len(rows), length)` int32; a row that does not fit raises."""
    packed = np.zeros((len(rows), length), "int32")
    for index, row in enumerate(rows):
        framed = [START_ID] * start + list(row) + [END_ID] * end
        if len(framed) > length:
            raise ValueError(f"Row {index} has {len(framed)} ids; `length` is {length}.")
        packed[index, : len(framed)] = framed
    return packed


def training_arrays(source_tokenizer, target_tokenizer, pairs, max_length: int):
    """`(inputs, labels, skipped)` for `model.fit` from (source, target)
    text pairs: encoder inputs are the source ids, decoder inputs the target
    ids after a start id, labels the target ids followed by an end id. Pairs
    with a side longer than `max_length` ids (framing included) are left out
    and counted in `skipped`; the arrays are padded to the longest kept
    pair."""
    sources = tokenize(source_tokenizer, [source for source, _ in pairs])
    targets = tokenize(target_tokenizer, [target for _, target in pairs])
    kept = [
        (source, target)
        for source, target in zip(sources, targets, strict=True)
        if len(source) <= max_length and len(target) + 1 <= max_length
    ]
    if not kept:
        raise ValueError(f"No pair fits in `max_length`={max_length} tokens.")
    source_length = max(len(source) for source, _ in kept)
    target_length = max(len(target) for _, target in kept) + 1
    inputs = {
        "encoder_inputs": pack([source for source, _ in kept], source_length),
        "decoder_inputs": pack([target for _, target in kept], target_length, start=True),
    }
    labels = pack([target for _, target in kept], target_length, end=True)
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
