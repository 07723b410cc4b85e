"""Tokenized corpora on disk and batches of about N tokens grouped by length.

`TokenCorpus.build` tokenizes sentence pairs once, in chunks, into three files
of a directory: the source and target ids one after another (int32), and an
index of lengths. `TokenBatches` reads them back batch by batch, so training
holds the index and one batch in memory, never the corpus.
"""

import collections
import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import keras
import numpy as np

from keras_transformer.data.pairs import Pair
from keras_transformer.saving import write_text_atomically
from keras_transformer.translation.tokenizers import fits, nothing_fits, seq2seq_arrays, tokenize
from keras_transformer.validation import check_positive_int

_MANIFEST = "manifest.json"
_FILES = ("source.bin", "target.bin", "lengths.npy")
_CHUNK_PAIRS = 8192
_ID_BYTES = np.dtype("int32").itemsize


class TokenCorpusError(ValueError):
    """A token cache that does not match its manifest."""


def length_buckets(max_length: int) -> np.ndarray:
    """Padded lengths a batch can have: powers of two from 8 (8, 16, 32, 64,
    ...), the last one `max_length`. Each pair of source and target lengths
    is one batch shape, and each shape one compiled training step (seconds
    to tens of seconds each on a CPU): few buckets keep that cost small,
    while no side is padded to more than twice its length."""
    check_positive_int("max_length", max_length)
    buckets = [8]
    while buckets[-1] < max_length:
        buckets.append(buckets[-1] * 2)
    return np.array([b for b in buckets if b < max_length] + [max_length])


class TokenCorpus:
    """Source and target ids of sentence pairs, cached in a directory.

    Each kept pair has source ids and target ids (without start or end id);
    a pair whose source is longer than `max_length` ids, or whose target is
    with its end id, is left out and counted in `skipped`.

    Attributes:
        directory: where the files lie.
        source_lengths, target_lengths: int32 arrays, one entry per kept pair.
        skipped: pairs left out for their length.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        manifest = self._read_manifest()
        lengths = np.load(os.path.join(self.directory, "lengths.npy"))
        self.source_lengths, self.target_lengths = lengths[:, 0], lengths[:, 1]
        self.skipped = manifest["skipped"]
        self.fingerprint = manifest["fingerprint"]
        self._source_offsets = _offsets(self.source_lengths)
        self._target_offsets = _offsets(self.target_lengths)

    @classmethod
    def build(
        cls,
        directory: str | os.PathLike,
        source_tokenizer,
        target_tokenizer,
        pairs: Sequence[Pair],
        max_length: int,
    ) -> "TokenCorpus":
        """The corpus of `pairs` in `directory`: read back if the cache there
        was built from the same pairs, tokenizers and `max_length` and is
        intact, else tokenized afresh (a stale or damaged cache is
        replaced)."""
        fingerprint = corpus_fingerprint(source_tokenizer, target_tokenizer, pairs, max_length)
        try:
            corpus = cls(directory)
            if corpus.fingerprint == fingerprint:
                return corpus
        except (OSError, ValueError, KeyError):
            pass  # no cache yet, or one that cannot be read: build it
        os.makedirs(directory, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # invalid until rewritten
            os.remove(os.path.join(directory, _MANIFEST))
        # One (kept pairs, 2) int32 array of lengths per chunk.
        chunk_lengths, skipped = [np.zeros((0, 2), "int32")], 0
        paths = [os.path.join(directory, name) for name in _FILES[:2]]
        with open(paths[0], "wb") as sources, open(paths[1], "wb") as targets:
            for chunk in _chunks(pairs, _CHUNK_PAIRS):
                source_rows = tokenize(source_tokenizer, [s for s, _ in chunk])
                target_rows = tokenize(target_tokenizer, [t for _, t in chunk])
                kept = []  # (source length, target length) of the chunk's kept pairs
                for source, target in zip(source_rows, target_rows, strict=True):
                    if not fits(source, target, max_length):
                        skipped += 1
                        continue
                    sources.write(np.asarray(source, "int32").tobytes())
                    targets.write(np.asarray(target, "int32").tobytes())
                    kept.append((len(source), len(target)))
                chunk_lengths.append(np.array(kept, "int32").reshape(-1, 2))
        lengths = np.concatenate(chunk_lengths)  # (kept pairs, 2)
        if not len(lengths):
            raise nothing_fits(max_length)
        np.save(os.path.join(directory, "lengths.npy"), lengths)
        manifest = {
            "fingerprint": fingerprint,
            "skipped": skipped,
            "checksums": {name: _checksum(os.path.join(directory, name)) for name in _FILES},
        }
        write_text_atomically(os.path.join(directory, _MANIFEST), json.dumps(manifest))
        return cls(directory)

    def __len__(self) -> int:
        return len(self.source_lengths)

    def read(self, indices: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`(source_rows, target_rows)` of the pairs at `indices`."""
        return (
            self._read_rows("source.bin", self._source_offsets, self.source_lengths, indices),
            self._read_rows("target.bin", self._target_offsets, self.target_lengths, indices),
        )

    def _read_rows(self, name, offsets, lengths, indices):
        with open(os.path.join(self.directory, name), "rb") as file:
            descriptor = file.fileno()
            return [
                np.frombuffer(
                    os.pread(descriptor, int(lengths[i]) * _ID_BYTES, int(offsets[i]) * _ID_BYTES),
                    "int32",
                )
                for i in indices
            ]

    def _read_manifest(self) -> dict:
        path = os.path.join(self.directory, _MANIFEST)
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        for name in _FILES:
            if _checksum(os.path.join(self.directory, name)) != manifest["checksums"][name]:
                raise TokenCorpusError(f"{self.directory}: {name} does not match {_MANIFEST}")
        return manifest


def _chunks(pairs: Iterable[Pair], size: int) -> Iterator[list[Pair]]:
    """`pairs` in lists of `size` (the last one shorter), read as they come."""
    iterator = iter(pairs)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def corpus_fingerprint(source_tokenizer, target_tokenizer, pairs, max_length: int) -> str:
    """A digest of everything a token cache depends on."""
    digest = hashlib.sha256(f"{max_length}\n".encode())
    for tokenizer in (source_tokenizer, target_tokenizer):
        digest.update(json.dumps(keras.saving.serialize_keras_object(tokenizer)).encode())
        digest.update(_tokenizer_assets(tokenizer))
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()


def _tokenizer_assets(tokenizer) -> bytes:
    proto = getattr(tokenizer, "proto", None)
    if proto is not None:
        return bytes(proto)
    vocabulary = getattr(tokenizer, "vocabulary", None)
    return "\n".join(vocabulary).encode() if vocabulary else b""


class TokenBatches(keras.utils.PyDataset):
    """Batches of about `batch_tokens` tokens for `model.fit`, grouped by
    length.

    Pairs are put in buckets by the padded lengths of their source and their
    target (`length_buckets`). Every shape costs a compilation on JAX and
    TensorFlow, so a bucket with pairs for fewer than `MIN_BATCHES` batches
    is padded up to the square bucket of its longer side, of which there are
    only a few. Each batch of a bucket holds as many pairs as
    fit in `batch_tokens` at the bucket's longer side, rounded down to a
    multiple of `row_multiple` (the devices of a data-parallel run); the last
    batch of a bucket is filled up with rows of padding, which the masked loss
    ignores, so that each bucket has one shape. With `seed`, the pairs of each
    bucket and the order of the batches are shuffled anew for each epoch
    (`set_epoch`); without, the order is fixed. With `local_rows` (several
    processes training together: `TrainingDevices.local_rows`), each item
    holds only the rows of the global batch that this process reads, given
    the global batch's rows; every process plans the same global batches.

    Each item is `(inputs, labels)`: `{"encoder_inputs": (rows, source_len),
    "decoder_inputs": (rows, target_len)}` and labels `(rows, target_len)`;
    the decoder inputs start with the start id, the labels end with the end
    id, and 0 pads.
    """

    MIN_BATCHES = 16

    def __init__(
        self,
        corpus: TokenCorpus,
        batch_tokens: int,
        max_length: int,
        seed: int | None = None,
        row_multiple: int = 1,
        local_rows: Callable[[int], slice] | None = None,
    ):
        super().__init__()
        self.local_rows = local_rows or (lambda rows: slice(0, rows))
        self.corpus = corpus
        self.batch_tokens = check_positive_int("batch_tokens", batch_tokens)
        self.row_multiple = check_positive_int("row_multiple", row_multiple)
        self.seed = seed
        buckets = length_buckets(max_length)
        # Small integers: the plan of a million pairs takes a few megabytes.
        self._source_bucket = np.searchsorted(buckets, corpus.source_lengths).astype("int16")
        self._target_bucket = np.searchsorted(buckets, corpus.target_lengths + 1).astype("int16")
        self._buckets = buckets
        self._fold_small_buckets()
        longest = int(buckets[max(self._source_bucket.max(), self._target_bucket.max())])
        if self.rows_for(longest) == 0:
            raise ValueError(
                f"`batch_tokens`={batch_tokens} is smaller than the longest pair, whose "
                f"padded length is {longest} tokens"
                + (f" in batches of {row_multiple} rows" if row_multiple > 1 else "")
                + f": use at least {longest * row_multiple}."
            )
        self._batches = self._plan(0)

    def _fold_small_buckets(self) -> None:
        """Pads the pairs of the buckets too small for `MIN_BATCHES` batches
        to the square bucket of their longer side."""
        source, target = self._source_bucket, self._target_bucket
        longer = np.maximum(source, target)
        bucket = source.astype("int32") * len(self._buckets) + target
        buckets, inverse, counts = np.unique(bucket, return_inverse=True, return_counts=True)
        lengths = self._buckets[
            np.maximum(buckets // len(self._buckets), buckets % len(self._buckets))
        ]
        rows = np.maximum(self.batch_tokens // lengths, 1)
        small = (counts < self.MIN_BATCHES * rows)[inverse]  # (pairs,)
        self._source_bucket = np.where(small, longer, source).astype("int16")
        self._target_bucket = np.where(small, longer, target).astype("int16")

    def rows_for(self, padded_length: int) -> int:
        """Pairs in a batch whose longer side is `padded_length` tokens."""
        rows = self.batch_tokens // padded_length
        return rows - rows % self.row_multiple

    def set_epoch(self, epoch: int) -> None:
        """Shuffles the batches for `epoch` (a no-op without a seed)."""
        if self.seed is not None:
            self._batches = self._plan(epoch)

    def _plan(self, epoch: int) -> list[tuple[np.ndarray, int, int]]:
        """`(pair indices, source_len, target_len)` of every batch."""
        bucket = self._source_bucket * np.int16(len(self._buckets)) + self._target_bucket
        order = np.arange(len(bucket), dtype="int32")
        rng = None if self.seed is None else np.random.default_rng([self.seed, epoch])
        if rng is not None:
            order = rng.permutation(order)
        order = order[np.argsort(bucket[order], kind="stable").astype("int32")]
        edges = np.flatnonzero(np.diff(bucket[order])) + 1
        batches = []
        for members in np.split(order, edges):
            source_len = int(self._buckets[self._source_bucket[members[0]]])
            target_len = int(self._buckets[self._target_bucket[members[0]]])
            rows = self.rows_for(max(source_len, target_len))
            batches += [
                (members[begin : begin + rows], source_len, target_len)
                for begin in range(0, len(members), rows)
            ]
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    @property
    def num_batches(self) -> int:
        return len(self._batches)

    def __getitem__(self, index: int):
        members, source_len, target_len = self._batches[index]
        rows = self.local_rows(self.rows_for(max(source_len, target_len)))
        sources, targets = self.corpus.read(members[rows])
        return seq2seq_arrays(sources, targets, source_len, target_len, rows=rows.stop - rows.start)

    def shapes(self) -> collections.Counter:
        """Batches of each `(source_len, target_len)` shape in this epoch."""
        return collections.Counter(
            (source_len, target_len) for _, source_len, target_len in self._batches
        )

    def batch_of_shape(self, shape: tuple[int, int]):
        """`(inputs, labels)` of the first batch of this epoch whose shape
        is `(source_len, target_len)`."""
        index = next(i for i, (_, *lengths) in enumerate(self._batches) if tuple(lengths) == shape)
        return self[index]

    def padding_share(self) -> float:
        """Fraction of the positions of an epoch's batches that are padding."""
        real = int(self.corpus.source_lengths.sum() + self.corpus.target_lengths.sum())
        real += len(self.corpus)  # the start id (decoder inputs) or end id (labels)
        padded = sum(self.rows_for(max(s, t)) * (s + t) for _, s, t in self._batches)
        return 1.0 - real / padded

    def fit_input(self, devices=None):
        """What `model.fit` takes: the batches themselves, or on TensorFlow a
        `tf.data.Dataset` of them whose signature leaves every length open
        (Keras would fix it from the first two batches), spread as
        `devices` (a `TrainingDevices`) need it."""
        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        ids = tf.TensorSpec((None, None), tf.int32)
        signature = ({"encoder_inputs": ids, "decoder_inputs": ids}, ids)
        dataset = tf.data.Dataset.from_generator(
            lambda: (self[index] for index in range(self.num_batches)),
            output_signature=signature,
        )
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(self.num_batches))
        dataset = dataset.prefetch(2)
        return dataset if devices is None else devices.distribute_dataset(dataset)


class EpochShuffle(keras.callbacks.Callback):
    """Tells `TokenBatches` which epoch begins, so that a resumed run
    shuffles its batches as an uninterrupted one would."""

    def __init__(self, batches: TokenBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype="int64")[:-1]])


def _checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
