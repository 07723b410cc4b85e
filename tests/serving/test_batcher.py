"""DynamicBatcher with a fake decoder: merging, limits, routing, deadlines,
the bounded queue and the graceful stop; no model, no HTTP."""

import random
import threading
import time

import pytest

from keras_transformer.serving.batcher import (
    BatcherStopped,
    DeadlineExceeded,
    DynamicBatcher,
    QueueFull,
    padded_length,
)


class FakeDecoder:
    """Records every batch it decodes, translates a sentence to its upper
    case, and blocks while `gate` is closed."""

    def __init__(self, delay_s: float = 0.0):
        self.batches = []  # (sentences, beams, rows) per call
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.delay_s = delay_s
        self.active = 0
        self.most_active = 0
        self.fail = False
        self._lock = threading.Lock()

    def __call__(self, sentences, beams, rows):
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.started.set()
        self.gate.wait(10)
        time.sleep(self.delay_s * random.random())
        with self._lock:
            self.active -= 1
            self.batches.append((list(sentences), beams, rows))
        if self.fail:
            raise RuntimeError("decoding failed")
        return [sentence.upper() for sentence in sentences]

    @property
    def decoded(self):
        return [sentence for sentences, _, _ in self.batches for sentence in sentences]


def wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_padded_length_rounds_up_to_the_step():
    assert [padded_length(n) for n in (0, 1, 16, 17, 33)] == [16, 16, 16, 32, 48]
    assert padded_length(5, step=4) == 8


def test_rows_for_keeps_rows_times_length_within_max_batch_tokens():
    batcher = DynamicBatcher(FakeDecoder(), max_batch_tokens=64, max_batch_size=8)
    assert [batcher.rows_for(length) for length in (4, 16, 32, 48, 128)] == [8, 4, 2, 1, 1]


def test_row_counts_are_powers_of_two_up_to_the_rows_of_the_length():
    batcher = DynamicBatcher(FakeDecoder(), max_batch_tokens=96, max_batch_size=32)
    assert batcher.row_counts(1) == [1, 2, 4, 8, 16, 32]
    assert batcher.row_counts(16) == [1, 2, 4, 6]  # 96 // 16 = 6 rows at most
    assert [batcher.row_count(n, 1) for n in (1, 2, 3, 5, 17, 32)] == [1, 2, 4, 8, 32, 32]


def test_requests_waiting_together_are_merged_into_one_batch():
    decoder = FakeDecoder()
    batcher = DynamicBatcher(decoder, max_batch_size=8, max_wait_ms=0)
    futures = [batcher.submit([f"s{i}a", f"s{i}b"]) for i in range(4)]
    with batcher:
        results = [future.result(10) for future in futures]
    assert results == [[f"S{i}A", f"S{i}B"] for i in range(4)]
    assert len(decoder.batches) == 1 and sorted(decoder.batches[0][0]) == sorted(
        f"s{i}{part}" for i in range(4) for part in "ab"
    )
    assert decoder.batches[0][2] == 8  # rows: 8 sentences fill a power of two


def test_a_lone_request_is_decoded_alone_not_filled_to_a_full_batch():
    decoder = FakeDecoder()
    with DynamicBatcher(decoder, max_batch_size=32, max_wait_ms=0) as batcher:
        assert batcher.translate(["alone"]) == ["ALONE"]
        assert batcher.translate(["a", "b", "c"]) == ["A", "B", "C"]
    assert [rows for _, _, rows in decoder.batches] == [1, 4]


def test_a_batch_keeps_within_the_sentence_and_token_limits():
    decoder = FakeDecoder()
    batcher = DynamicBatcher(decoder, max_batch_tokens=64, max_batch_size=3, max_wait_ms=0)
    rng = random.Random(0)
    futures = []
    for request in range(20):
        sentences = [
            f"r{request}-{i}" + "x" * rng.randrange(40) for i in range(rng.randrange(1, 4))
        ]
        futures.append((sentences, batcher.submit(sentences)))
    with batcher:
        for sentences, future in futures:
            assert future.result(10) == [sentence.upper() for sentence in sentences]
    for sentences, _, rows in decoder.batches:
        length = padded_length(max(len(sentence) for sentence in sentences))
        assert len(sentences) <= rows <= batcher.rows_for(length) <= 3
        assert rows < 2 * len(sentences)  # fewer filler rows than sentences
        assert rows * length <= 64 or rows == 1
    assert len(decoder.decoded) == sum(len(sentences) for sentences, _ in futures)


def test_batches_group_sentences_by_length_and_never_mix_beams():
    decoder = FakeDecoder()
    batcher = DynamicBatcher(decoder, max_batch_size=3, max_wait_ms=0)
    lengths = [3, 40, 5, 35, 4, 38]
    futures = [batcher.submit(["x" * n], beams=1, lengths=[n]) for n in lengths]
    futures += [batcher.submit(["y" * n], beams=2, lengths=[n]) for n in (2, 6)]
    with batcher:
        for future in futures:
            future.result(10)
    batches = [
        (sorted(len(s) for s in sentences), beams) for sentences, beams, _ in decoder.batches
    ]
    # Anchored on the oldest: the short ones, then the long ones, then beams=2.
    assert batches == [([3, 4, 5], 1), ([35, 38, 40], 1), ([2, 6], 2)]


def test_results_reach_their_request_in_order_under_concurrency_one_decode_at_a_time():
    decoder = FakeDecoder(delay_s=0.002)
    results = {}
    with DynamicBatcher(decoder, max_batch_size=8, max_wait_ms=1, max_queue=10_000) as batcher:

        def client(number):
            rng = random.Random(number)
            for request in range(10):
                count = rng.randrange(1, 12)  # some requests span several batches
                sentences = [
                    f"c{number}r{request}s{i}" + "z" * rng.randrange(30) for i in range(count)
                ]
                results[number, request] = (sentences, batcher.translate(sentences))

        threads = [threading.Thread(target=client, args=(number,)) for number in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(results) == 160
    for sentences, translations in results.values():
        assert translations == [sentence.upper() for sentence in sentences]
    assert decoder.most_active == 1
    assert len(decoder.batches) < sum(len(sentences) for sentences, _ in results.values())
    stats = batcher.stats()
    assert stats.submitted_requests == 160 and stats.batches == len(decoder.batches)
    assert stats.decoded_sentences == len(decoder.decoded) and stats.queued_sentences == 0


def test_a_request_past_its_deadline_is_dropped_before_it_is_decoded():
    decoder = FakeDecoder()
    decoder.gate.clear()
    with DynamicBatcher(decoder, max_wait_ms=0) as batcher:
        first = batcher.submit(["first"])
        decoder.started.wait(10)
        late = batcher.submit(["late one", "late two"], timeout_s=0.05)
        patient = batcher.submit(["patient"], timeout_s=60)
        time.sleep(0.1)  # past the late request's deadline
        decoder.gate.set()
        with pytest.raises(DeadlineExceeded):
            late.result(10)
        assert first.result(10) == ["FIRST"] and patient.result(10) == ["PATIENT"]
    assert "late one" not in decoder.decoded and "late two" not in decoder.decoded
    assert batcher.stats().expired_requests == 1


def test_a_cancelled_request_is_not_decoded():
    decoder = FakeDecoder()
    decoder.gate.clear()
    with DynamicBatcher(decoder, max_wait_ms=0) as batcher:
        batcher.submit(["first"])
        decoder.started.wait(10)
        cancelled = batcher.submit(["cancelled"])
        assert cancelled.cancel()
        kept = batcher.submit(["kept"])
        decoder.gate.set()
        assert kept.result(10) == ["KEPT"]
    assert "cancelled" not in decoder.decoded


def test_a_full_queue_refuses_at_once_and_serves_again_once_drained():
    decoder = FakeDecoder()
    decoder.gate.clear()
    with DynamicBatcher(decoder, max_wait_ms=0, max_queue=3) as batcher:
        first = batcher.submit(["first"])
        decoder.started.wait(10)  # taken out of the queue, being decoded
        waiting = batcher.submit(["a", "b", "c"])
        started = time.monotonic()
        with pytest.raises(QueueFull):
            batcher.submit(["refused"])
        assert time.monotonic() - started < 1
        stats = batcher.stats()
        assert (stats.queued_sentences, stats.rejected_requests, stats.decoding) == (3, 1, True)
        assert batcher.retry_after_s() >= 1
        decoder.gate.set()
        assert first.result(10) == ["FIRST"] and waiting.result(10) == ["A", "B", "C"]
        assert batcher.submit(["again"]).result(10) == ["AGAIN"]
    assert "refused" not in decoder.decoded
    with pytest.raises(ValueError, match="max_queue"):
        batcher.submit(["1", "2", "3", "4"])


def test_a_lone_sentence_waits_max_wait_for_company_a_full_batch_goes_at_once():
    decoder = FakeDecoder()
    with DynamicBatcher(decoder, max_batch_size=4, max_wait_ms=600) as batcher:
        started = time.monotonic()
        lone = batcher.submit(["lone"])
        time.sleep(0.05)
        company = batcher.submit(["company"])
        assert lone.result(10) == ["LONE"] and company.result(10) == ["COMPANY"]
        assert time.monotonic() - started >= 0.6
        assert decoder.batches[0][0] == ["lone", "company"]
        started = time.monotonic()
        assert batcher.translate(["a", "b", "c", "d"]) == ["A", "B", "C", "D"]
        assert time.monotonic() - started < 0.5


def test_stop_refuses_new_requests_and_finishes_the_waiting_ones():
    decoder = FakeDecoder()
    decoder.gate.clear()
    batcher = DynamicBatcher(decoder, max_batch_size=2, max_wait_ms=10_000).start()
    futures = [batcher.submit([f"s{i}"]) for i in range(5)]
    decoder.started.wait(10)
    stopping = threading.Thread(target=batcher.stop)
    stopping.start()
    wait_until(lambda: batcher._stopping)
    with pytest.raises(BatcherStopped):
        batcher.submit(["too late"])
    decoder.gate.set()
    stopping.join(10)
    assert not stopping.is_alive()
    assert [future.result(0) for future in futures] == [[f"S{i}"] for i in range(5)]
    assert batcher.stats().queued_sentences == 0


def test_a_failed_decode_fails_its_requests_and_the_worker_goes_on():
    decoder = FakeDecoder()
    with DynamicBatcher(decoder, max_wait_ms=0) as batcher:
        decoder.fail = True
        with pytest.raises(RuntimeError, match="decoding failed"):
            batcher.translate(["doomed"])
        decoder.fail = False
        assert batcher.translate(["fine"]) == ["FINE"]


def test_on_batch_reports_each_decoding_call():
    calls = []
    decoder = FakeDecoder()
    with DynamicBatcher(decoder, max_batch_size=4, on_batch=lambda *call: calls.append(call)) as b:
        b.translate(["a", "b", "c"])
    assert [(sentences, rows) for sentences, rows, _ in calls] == [(3, 4)]
    assert calls[0][2] >= 0


def test_an_empty_request_needs_no_decoding():
    decoder = FakeDecoder()
    batcher = DynamicBatcher(decoder)
    assert batcher.submit([]).result(0) == [] and decoder.batches == []


@pytest.mark.parametrize(
    "argument", ["max_batch_tokens", "max_batch_size", "max_queue", "length_step"]
)
def test_bad_limits_raise_naming_the_argument(argument):
    with pytest.raises(ValueError, match=argument):
        DynamicBatcher(FakeDecoder(), **{argument: 0})


def test_stop_before_start_fails_what_waits():
    batcher = DynamicBatcher(FakeDecoder())
    future = batcher.submit(["never"])
    assert batcher.stop()
    with pytest.raises(BatcherStopped):
        future.result(0)
