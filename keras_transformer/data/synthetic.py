"""A synthetic seq2seq task, generated on the fly: reverse a random sequence."""

import numpy as np

from keras_transformer.data.special_ids import END_ID as END_TOKEN_ID
from keras_transformer.data.special_ids import PADDING_ID as PADDING_TOKEN_ID
from keras_transformer.data.special_ids import START_ID as START_TOKEN_ID

FIRST_WORD_ID = END_TOKEN_ID + 1  # the task has no unknown words


def make_reverse_task(
    num_samples: int,
    vocabulary_size: int = 20,
    min_length: int = 4,
    max_length: int = 10,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random token sequences and their reversals, as a seq2seq data set.

    Each source is `min_length..max_length` random word ids in
    `[3, vocabulary_size)`, padded with 0. Its target is the reversed source
    followed by the end token 2; the decoder reads the target shifted right
    behind the start token 1 (teacher forcing).

    Returns:
        `(inputs, labels)`: `inputs` is `{"encoder_inputs": (n, max_length),
        "decoder_inputs": (n, max_length + 1)}` and `labels` is
        `(n, max_length + 1)`, all int32 with 0 as padding.
    """
    if vocabulary_size <= FIRST_WORD_ID:
        raise ValueError(
            f"`vocabulary_size` must exceed {FIRST_WORD_ID} (padding, start and "
            f"end ids come first). Received: vocabulary_size={vocabulary_size}"
        )
    if not 1 <= min_length <= max_length:
        raise ValueError(
            "Expected 1 <= min_length <= max_length. Received: "
            f"min_length={min_length}, max_length={max_length}"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, num_samples)
    words = rng.integers(FIRST_WORD_ID, vocabulary_size, (num_samples, max_length))
    positions = np.arange(max_length)
    sources = np.where(positions < lengths[:, None], words, PADDING_TOKEN_ID)
    labels = np.zeros((num_samples, max_length + 1), np.int64)
    decoder_inputs = np.zeros_like(labels)
    decoder_inputs[:, 0] = START_TOKEN_ID
    for row, length in enumerate(lengths):
        target = np.append(sources[row, :length][::-1], END_TOKEN_ID)
        labels[row, : length + 1] = target
        decoder_inputs[row, 1 : length + 1] = target[:-1]
    inputs = {
        "encoder_inputs": sources.astype("int32"),
        "decoder_inputs": decoder_inputs.astype("int32"),
    }
    return inputs, labels.astype("int32")
