"""Sentence pairs: reading tab-separated files and splitting them."""

import os
import random
from collections.abc import Sequence

Pair = tuple[str, str]


class PairsFileError(ValueError):
    """A file of sentence pairs that cannot be read; the message says where."""


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Reads `source<TAB>target` lines (the Anki/Tatoeba format).

    Columns after the second are ignored, as are blank lines. Raises
    `FileNotFoundError` for a missing file and `PairsFileError` for a file
    that is not UTF-8, holds no pairs, or has a line without a tab or with an
    empty source or target (the message gives the line number).
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
    except UnicodeDecodeError as error:
        raise PairsFileError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    pairs = [_parse_line(path, number, line) for number, line in enumerate(lines, 1)]
    pairs = [pair for pair in pairs if pair is not None]
    if not pairs:
        raise PairsFileError(f"{path}: no sentence pairs (expected source<TAB>target lines)")
    return pairs


def _parse_line(path, number: int, line: str) -> Pair | None:
    if not line.strip():
        return None
    columns = line.rstrip("\r").split("\t")
    if len(columns) < 2:
        raise PairsFileError(f"{path}:{number}: no tab between source and target: {line[:60]!r}")
    source, target = columns[0].strip(), columns[1].strip()
    if not source or not target:
        side = "source" if not source else "target"
        raise PairsFileError(f"{path}:{number}: empty {side}")
    return source, target


def as_field(text: str) -> str:
    """`text` fit for one field of a tab-separated line: tabs and every
    character `str.splitlines` breaks lines at (which a model may generate)
    become spaces."""
    return text.translate(_LINE_BREAKS)


_LINE_BREAKS = str.maketrans(dict.fromkeys("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def split_pairs(
    pairs: Sequence[Pair], validation: float = 0.1, test: float = 0.1, seed: int = 0
) -> dict[str, list[Pair]]:
    """Shuffles distinct pairs (with `seed`) into train, validation and test
    splits; a pair that occurs twice lands in one split only."""
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(
            "`validation` and `test` must be fractions summing to less than 1. "
            f"Received: validation={validation}, test={test}"
        )
    unique = sorted(set(pairs))
    random.Random(seed).shuffle(unique)
    test_size = round(len(unique) * test)
    validation_size = round(len(unique) * validation)
    return {
        "test": unique[:test_size],
        "validation": unique[test_size : test_size + validation_size],
        "train": unique[test_size + validation_size :],
    }
