"""Data for training and testing seq2seq models."""

from keras_transformer.data.numbers import number_pairs, number_splits
from keras_transformer.data.pairs import (
    PairsFile,
    PairsFileError,
    iter_pairs,
    read_pairs,
    split_pairs,
    split_pairs_file,
)
from keras_transformer.data.synthetic import (
    END_TOKEN_ID,
    PADDING_TOKEN_ID,
    START_TOKEN_ID,
    make_reverse_task,
)

__all__ = [
    "END_TOKEN_ID",
    "PADDING_TOKEN_ID",
    "START_TOKEN_ID",
    "PairsFile",
    "PairsFileError",
    "iter_pairs",
    "make_reverse_task",
    "number_pairs",
    "number_splits",
    "read_pairs",
    "split_pairs",
    "split_pairs_file",
]
