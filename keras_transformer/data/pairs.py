"""Sentence pairs: reading tab-separated files and splitting them."""

import contextlib
import hashlib
import itertools
import os
import random
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from keras_transformer.saving import replacing

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
    pairs = list(iter_pairs(path))
    if not pairs:
        raise _no_pairs(path)
    return pairs


def _no_pairs(path) -> PairsFileError:
    return PairsFileError(f"{path}: no sentence pairs (expected source<TAB>target lines)")


def iter_pairs(path: str | os.PathLike) -> Iterator[Pair]:
    """The pairs of `read_pairs`, read one line at a time; an empty file
    yields nothing."""
    with open(path, "rb") as file:
        for number, raw_line in enumerate(file, 1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise PairsFileError(
                    f"{path}:{number}: not UTF-8 text ({error.reason} at byte {error.start} "
                    "of the line)"
                ) from None
            pair = _parse_line(path, number, line.rstrip("\n"))
            if pair is not None:
                yield pair


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
    _check_fractions(validation, test)
    unique = sorted(set(pairs))
    random.Random(seed).shuffle(unique)
    splits, begin = {}, 0
    for name, size in _split_sizes(len(unique), validation, test).items():
        splits[name] = unique[begin : begin + size]
        begin += size
    return splits


def _check_fractions(validation: float, test: float) -> None:
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(
            "`validation` and `test` must be fractions summing to less than 1. "
            f"Received: validation={validation}, test={test}"
        )


def _split_sizes(count: int, validation: float, test: float) -> dict[str, int]:
    """Pairs per split, in the order the splits take the shuffled pairs."""
    test_size = round(count * test)
    validation_size = round(count * validation)
    return {
        "test": test_size,
        "validation": validation_size,
        "train": count - test_size - validation_size,
    }


def split_pairs_file(
    path: str | os.PathLike,
    directory: str | os.PathLike,
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
) -> dict[str, "PairsFile"]:
    """Splits the pairs of a `source<TAB>target` file into train, validation
    and test files in `directory` (`train.tsv`, ...) without holding its text
    in memory: the file is read twice, line by line. The first reading keeps
    a 64-bit hash of each pair (8 bytes, and about 24 more while the repeats
    are found); the second keeps 1 byte per pair, its split.

    As in `split_pairs`, a pair that occurs more than once is kept once, and
    the distinct pairs are shuffled with `seed` into splits of
    `round(test * n)` and `round(validation * n)` pairs; two pairs whose
    hashes collide count as one (about one chance in 10^7 for a million
    pairs). The splits keep the pairs' order in the file. Raises like
    `read_pairs` for a file that cannot be read.
    """
    _check_fractions(validation, test)
    hashes = np.fromiter(
        (_pair_hash(pair) for pair in iter_pairs(path)), dtype=np.uint64
    )  # (pairs,)
    if not len(hashes):
        raise _no_pairs(path)
    split_of_pair, sizes = _assign_splits(hashes, validation, test, seed)
    del hashes
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"{name}.tsv") for name in sizes]
    with contextlib.ExitStack() as stack:
        files = [
            stack.enter_context(
                open(stack.enter_context(replacing(p)), "w", encoding="utf-8", newline="\n")
            )
            for p in paths
        ]
        for (source, target), split in zip(iter_pairs(path), split_of_pair, strict=True):
            if split >= 0:
                files[split].write(f"{source}\t{target}\n")
    return {name: PairsFile(p, size) for (name, size), p in zip(sizes.items(), paths, strict=True)}


def read_split_files(directory: str | os.PathLike) -> dict[str, "PairsFile"]:
    """The split files that `split_pairs_file` wrote to `directory`, read
    back (each counted once, a line at a time)."""
    paths = {name: os.path.join(directory, f"{name}.tsv") for name in _split_sizes(0, 0, 0)}
    return {name: PairsFile(path, sum(1 for _ in iter_pairs(path))) for name, path in paths.items()}


class PairsFile(Sequence):
    """The pairs of a split file of `split_pairs_file`, read from disk at
    each pass, so that a split of any size costs no memory. Indexing reads
    up to the index."""

    def __init__(self, path: str | os.PathLike, count: int):
        self.path = os.fspath(path)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Pair]:
        with open(self.path, encoding="utf-8", newline="\n") as file:
            for line in file:
                source, target = line[:-1].split("\t")
                yield source, target

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(itertools.islice(self, *index.indices(self.count)))
        if not -self.count <= index < self.count:
            raise IndexError(f"pair {index} of {self.count}")
        return next(itertools.islice(self, index % self.count, None))


def _assign_splits(hashes: np.ndarray, validation: float, test: float, seed: int):
    """The split of each pair as an index into the sizes' order (-1 for a
    repeat of an earlier pair, dropped), and the sizes of the splits."""
    _, first = np.unique(hashes, return_index=True)  # first occurrence of each distinct pair
    sizes = _split_sizes(len(first), validation, test)
    order = np.random.default_rng(seed).permutation(len(first))
    split_of_pair = np.full(len(hashes), -1, np.int8)  # (pairs,)
    begin = 0
    for split, size in enumerate(sizes.values()):
        split_of_pair[first[order[begin : begin + size]]] = split
        begin += size
    return split_of_pair, sizes


def _pair_hash(pair: Pair) -> int:
    digest = hashlib.blake2b("\t".join(pair).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def fingerprint_pairs(pairs: Iterable[Pair]) -> dict:
    """How many pairs and a SHA-256 digest of them in order: equal for
    equal pairs, whichever file or list they come from."""
    digest = hashlib.sha256()
    count = 0
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
        count += 1
    return {"pairs": count, "sha256": digest.hexdigest()}
