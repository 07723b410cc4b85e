"""Dynamic batching: the sentences of many concurrent requests merged into
few decoding calls of few shapes, one call at a time."""

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from keras_transformer.translation.translator import SOURCE_LENGTH_STEP, padded_source_length
from keras_transformer.validation import check_non_negative, check_positive_int

_LOG = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds too many sentences to take a request now; it may be
    sent again later."""


class DeadlineExceeded(Exception):
    """A request's deadline passed before all of its sentences were decoded;
    the sentences still waiting were dropped undecoded."""


class BatcherStopped(Exception):
    """The batcher is stopping (or stopped) and takes no new request."""


@dataclasses.dataclass(frozen=True)
class BatcherStats:
    """What a `DynamicBatcher` has done so far, and what waits in it now.

    Attributes:
        queued_sentences: sentences waiting to be decoded.
        queued_requests: requests with sentences waiting.
        submitted_requests: requests taken into the queue.
        rejected_requests: requests refused because the queue was full.
        expired_requests: requests dropped at their deadline.
        batches: decoding calls made.
        decoded_sentences: sentences decoded, the filler rows not counted.
        decoding: whether a decoding call is running now.
    """

    queued_sentences: int
    queued_requests: int
    submitted_requests: int
    rejected_requests: int
    expired_requests: int
    batches: int
    decoded_sentences: int
    decoding: bool


class _Request:
    """One submitted request: its sentences, where their translations go,
    and how many are still missing."""

    def __init__(self, sentences, beams, deadline):
        self.sentences = list(sentences)
        self.beams = beams
        self.deadline = deadline
        self.future: Future = Future()
        self.translations: list[str | None] = [None] * len(self.sentences)
        self.missing = len(self.sentences)
        self.started = False


@dataclasses.dataclass
class _Item:
    """One sentence of a request, waiting in the queue."""

    request: _Request
    index: int
    tokens: int
    arrived: float


def padded_length(tokens: int, step: int = SOURCE_LENGTH_STEP) -> int:
    """`tokens` rounded up to a multiple of `step` (at least one step): the
    source length `Translator` pads a batch to.

    Example:

    >>> from keras_transformer.serving import padded_length
    >>> padded_length(1), padded_length(16), padded_length(17)
    (16, 16, 32)
    """
    return int(padded_source_length(tokens, step))


class DynamicBatcher:
    """Merges the sentences of concurrent translation requests into batches
    for one decoding worker.

    Requests (a list of sentences, a beam width and a deadline) come from any
    number of threads or event loops through `submit`, which returns a
    `concurrent.futures.Future` of the translations in the request's order
    (`asyncio.wrap_future` awaits it). One worker thread makes one decoding
    call at a time. Each batch is anchored on the oldest waiting sentence:
    its source length, padded to a multiple of `length_step` tokens, is the
    batch's length `L`, and the batch takes the waiting sentences with the
    same `beams` whose padded length is at most `L`, longest first (the
    waiting sentences sorted by token count), up to `rows_for(L)` of them.
    The worker waits up to `max_wait_ms` after the oldest sentence arrived
    for a batch to fill; a full batch, or a stopping batcher, goes at once.
    The sentences of one request may be decoded in several batches.

    Few shapes, so compiled decoders are reused: `translate_batch` receives
    a row count `rows = row_count(sentences, L)`, the smallest power of two
    that holds the batch's sentences, at most `rows_for(L)`, and fills the
    batch up to it (`TranslatorModel` repeats a sentence). The decoder then
    only sees shapes `(rows, L)` with `rows` in 1, 2, 4, ... `rows_for(L)`
    and `L` a multiple of 16 as `Translator` pads it: a few per length step
    and beam width, the shortest step's compiled by a warm-up before the
    first request. A lone request is decoded alone, not padded to a full
    batch; filler rows are at most as many as real ones. `rows_for(L)` is
    `max_batch_size`, fewer when `max_batch_size * L` tokens would pass
    `max_batch_tokens`.

    A request is refused at once with `QueueFull` when its sentences would
    take the queue past `max_queue`; a request still waiting at its deadline
    is dropped before it is decoded and its future fails with
    `DeadlineExceeded` (a cancelled future is dropped too). `stop` refuses
    new requests and returns when everything waiting is decoded.

    Args:
        translate_batch: `translate_batch(sentences, beams, rows)`: the
            translations of `sentences`, in their order; `rows >=
            len(sentences)` is the row count to fill the batch to.
        count_tokens: `count_tokens(sentences)`: the source token count of
            each sentence, for requests submitted without `lengths`.
            Defaults to the character counts.
        max_batch_tokens: int. Most padded source tokens in a batch, rows
            times length (a single longer sentence still goes, alone).
            Defaults to 4096.
        max_batch_size: int. Most sentences in a batch. Defaults to 64.
        max_wait_ms: float. Longest wait for a batch to fill after its oldest
            sentence arrived. Defaults to 0: what waits is decoded as soon
            as the worker is free, and batches form from what arrives while
            it decodes.
        max_queue: int. Most sentences waiting. Defaults to 1024.
        length_step: int. Source lengths are padded to a multiple of this.
            Defaults to 16, as `Translator` pads them.
        on_batch: optional `on_batch(sentences, rows, seconds)`, called after
            each decoding call, for metrics.

    Example:

    >>> from keras_transformer.serving import DynamicBatcher
    >>> def shout(sentences, beams, rows):
    ...     return [sentence.upper() for sentence in sentences]
    >>> with DynamicBatcher(shout, max_batch_size=8) as batcher:
    ...     first = batcher.submit(["one", "two"])
    ...     second = batcher.submit(["three"])
    ...     first.result(), second.result()
    (['ONE', 'TWO'], ['THREE'])
    """

    def __init__(
        self,
        translate_batch: Callable[[list[str], int, int], list[str]],
        count_tokens: Callable[[list[str]], list[int]] | None = None,
        max_batch_tokens: int = 4096,
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 1024,
        length_step: int = SOURCE_LENGTH_STEP,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        self.translate_batch = translate_batch
        self.count_tokens = count_tokens or (lambda sentences: [len(s) for s in sentences])
        self.max_batch_tokens = check_positive_int("max_batch_tokens", max_batch_tokens)
        self.max_batch_size = check_positive_int("max_batch_size", max_batch_size)
        self.max_wait_ms = check_non_negative("max_wait_ms", max_wait_ms)
        self.max_queue = check_positive_int("max_queue", max_queue)
        self.length_step = check_positive_int("length_step", length_step)
        self.on_batch = on_batch
        self._items: list[_Item] = []
        self._condition = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._counts = collections.Counter()
        self._decoding = False
        self._batch_seconds = 0.0  # a moving average, for `retry_after_s`

    def rows_for(self, length: int) -> int:
        """The most rows of a batch whose sources are padded to `length`."""
        return max(1, min(self.max_batch_size, self.max_batch_tokens // length))

    def row_count(self, sentences: int, length: int) -> int:
        """The rows a batch of `sentences` padded to `length` is decoded
        with: the smallest power of two >= `sentences`, at most
        `rows_for(length)`."""
        return min(self.rows_for(length), 1 << max(0, sentences - 1).bit_length())

    def row_counts(self, length: int) -> list[int]:
        """Every row count of batches padded to `length`, smallest first."""
        return sorted({self.row_count(n, length) for n in range(1, self.rows_for(length) + 1)})

    def start(self) -> "DynamicBatcher":
        """Starts the decoding worker thread; returns the batcher."""
        with self._condition:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="translation-batcher", daemon=True
                )
                self._worker.start()
        return self

    def submit(
        self,
        sentences: Sequence[str],
        beams: int = 1,
        timeout_s: float | None = None,
        lengths: Sequence[int] | None = None,
    ) -> Future:
        """Queues `sentences` for translation with `beams` beams and returns
        the future of their translations, in order.

        Raises `QueueFull` at once when the queue has no room for them, and
        `BatcherStopped` once `stop` was called. The future fails with
        `DeadlineExceeded` when `timeout_s` seconds pass before the
        sentences are decoded. `lengths` are the sentences' token counts
        (default: `count_tokens(sentences)`)."""
        check_positive_int("beams", beams)
        if len(sentences) > self.max_queue:
            raise ValueError(
                f"A request of {len(sentences)} sentences can never fit a queue of "
                f"max_queue={self.max_queue}."
            )
        lengths = list(self.count_tokens(list(sentences)) if lengths is None else lengths)
        if len(lengths) != len(sentences):
            raise ValueError(f"{len(lengths)} lengths for {len(sentences)} sentences.")
        now = time.monotonic()
        request = _Request(sentences, beams, None if timeout_s is None else now + timeout_s)
        if not sentences:
            request.future.set_result([])
            return request.future
        with self._condition:
            self._admit(len(sentences))
            self._items.extend(
                _Item(request, index, tokens, now) for index, tokens in enumerate(lengths)
            )
            self._counts["submitted"] += 1
            self._condition.notify_all()
        return request.future

    def _admit(self, count: int) -> None:
        """Raises unless `count` more sentences may wait now."""
        if self._stopping:
            raise BatcherStopped("The batcher is stopping and takes no new request.")
        if len(self._items) + count > self.max_queue:
            self._counts["rejected"] += 1
            raise QueueFull(
                f"{len(self._items)} sentences wait; {count} more would pass "
                f"max_queue={self.max_queue}."
            )

    def translate(
        self, sentences: Sequence[str], beams: int = 1, timeout_s: float | None = None
    ) -> list[str]:
        """`submit(...)` and wait for its result."""
        return self.submit(sentences, beams, timeout_s).result()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Refuses new requests, decodes every waiting one and stops the
        worker. Returns whether the worker finished within `timeout_s`."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            worker = self._worker
        if worker is None:
            self._fail_waiting(BatcherStopped("The batcher stopped before it started."))
            return True
        worker.join(timeout_s)
        return not worker.is_alive()

    def __enter__(self) -> "DynamicBatcher":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stats(self) -> BatcherStats:
        """A snapshot of the counters and of the queue."""
        with self._condition:
            return BatcherStats(
                queued_sentences=len(self._items),
                queued_requests=len({id(item.request) for item in self._items}),
                submitted_requests=self._counts["submitted"],
                rejected_requests=self._counts["rejected"],
                expired_requests=self._counts["expired"],
                batches=self._counts["batches"],
                decoded_sentences=self._counts["decoded"],
                decoding=self._decoding,
            )

    def retry_after_s(self) -> int:
        """Whole seconds after which the waiting sentences should be decoded,
        from the recent time per batch; at least 1."""
        with self._condition:
            batches = len(self._items) / self.max_batch_size + 1
            return max(1, math.ceil(batches * self._batch_seconds))

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._decode(batch)

    def _next_batch(self) -> list[_Item] | None:
        """Waits for the next batch to fill or for its oldest sentence to
        have waited `max_wait_ms`; None once stopping with nothing left."""
        with self._condition:
            while True:
                self._drop_finished(time.monotonic())
                if not self._items:
                    if self._stopping:
                        return None
                    self._condition.wait()
                    continue
                batch, full = self._candidates()
                wait = self._items[0].arrived + self.max_wait_ms / 1000 - time.monotonic()
                if full or wait <= 0 or self._stopping:
                    batch = self._start(batch)
                    if batch:
                        return batch
                    continue
                self._condition.wait(wait)

    def _candidates(self) -> tuple[list[_Item], bool]:
        """The batch anchored on the oldest sentence, and whether it is full."""
        oldest = self._items[0]
        length = padded_length(oldest.tokens, self.length_step)
        rows = self.rows_for(length)
        fitting = [
            item
            for item in self._items
            if item.request.beams == oldest.request.beams
            and padded_length(item.tokens, self.length_step) <= length
        ]
        fitting.sort(key=lambda item: (item is not oldest, -item.tokens, item.arrived))
        return fitting[:rows], len(fitting) >= rows

    def _start(self, batch: list[_Item]) -> list[_Item]:
        """Takes `batch` out of the queue and marks its requests running;
        the items of requests cancelled meanwhile are dropped."""
        taken = {id(item) for item in batch}
        self._items = [item for item in self._items if id(item) not in taken]
        for request in _requests_of(batch):
            if not request.started:
                request.started = request.future.set_running_or_notify_cancel()
        batch = [item for item in batch if item.request.started]
        self._decoding = bool(batch)
        return batch

    def _drop_finished(self, now: float) -> None:
        """Drops the waiting sentences of cancelled, failed or expired
        requests; an expired request's future fails with `DeadlineExceeded`."""
        kept = []
        for item in self._items:
            request = item.request
            if not request.future.done() and request.deadline is not None:
                if request.deadline <= now:
                    self._counts["expired"] += 1
                    request.future.set_exception(
                        DeadlineExceeded("The request's deadline passed before it was decoded.")
                    )
            if not request.future.done():
                kept.append(item)
        self._items = kept

    def _decode(self, batch: list[_Item]) -> None:
        """One decoding call; its translations go to their requests."""
        started = time.monotonic()
        sentences = [item.request.sentences[item.index] for item in batch]
        length = padded_length(max(item.tokens for item in batch), self.length_step)
        rows = self.row_count(len(batch), length)
        try:
            translations = list(self.translate_batch(sentences, batch[0].request.beams, rows))
            if len(translations) != len(batch):
                raise ValueError(f"{len(translations)} translations of {len(batch)} sentences.")
            error = None
        except Exception as exception:  # each request of the batch fails with it
            translations, error = [None] * len(batch), exception
        seconds = time.monotonic() - started
        with self._condition:
            self._decoding = False
            self._counts["batches"] += 1
            self._counts["decoded"] += len(batch) if error is None else 0
            first = self._counts["batches"] == 1
            self._batch_seconds = seconds if first else 0.8 * self._batch_seconds + 0.2 * seconds
        for item, translation in zip(batch, translations, strict=True):
            _deliver(item, translation, error)
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), rows, seconds)
            except Exception:  # a broken metric must not stop the decoding
                _LOG.exception("on_batch failed")

    def _fail_waiting(self, error: Exception) -> None:
        with self._condition:
            items, self._items = self._items, []
        for request in _requests_of(items):
            if not request.future.done():
                request.future.set_exception(error)


def _requests_of(items: list[_Item]) -> list[_Request]:
    """The distinct requests of `items`, in their first item's order."""
    return list({id(item.request): item.request for item in items}.values())


def _deliver(item: _Item, translation: str | None, error: Exception | None) -> None:
    """Puts one translation (or the batch's error) into its request, and
    completes the request's future when nothing is missing."""
    future = item.request.future
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
        return
    item.request.translations[item.index] = translation
    item.request.missing -= 1
    if item.request.missing == 0:
        future.set_result(list(item.request.translations))
