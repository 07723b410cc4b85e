"""The HTTP contract of the server, through uvicorn on a loopback port, with
a fake model whose decoding the tests can hold back."""

import threading
import time

import pytest

from keras_transformer.serving import ServerOptions, create_app
from tests.serving.conftest import running, wait_for

TOKEN_LIMIT = 20


class FakeModel:
    """Reverses each sentence; records what it decoded; blocks while `gate`
    is closed. A sentence has one token per character."""

    source_token_limit = TOKEN_LIMIT

    def __init__(self):
        self.decoded = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def hold(self):
        """Holds the next decoding call back until `gate.set()`;
        `started` is set once it has begun."""
        self.gate.clear()
        self.started.clear()

    def count_tokens(self, sentences):
        return [len(sentence) for sentence in sentences]

    def translate_batch(self, sentences, beams, rows):
        self.started.set()
        self.gate.wait(30)
        self.decoded.extend(sentences)
        return [sentence[::-1] + "!" * (beams - 1) for sentence in sentences]


OPTIONS = ServerOptions(max_queue=64, max_sentences=4, max_characters=30, beams_limit=3)


@pytest.fixture(scope="module")
def server():
    model = FakeModel()
    with running(create_app(lambda: model, OPTIONS)) as server:
        server.model = model
        yield server


def test_translations_come_back_in_order(server):
    status, _, body = server.translate({"sentences": ["abc", "hello there"], "beams": 2})
    assert status == 200 and body == {"translations": ["cba!", "ereht olleh!"]}
    status, _, body = server.translate({"sentences": ["xy"]})  # beams defaults to 1
    assert (status, body) == (200, {"translations": ["yx"]})


def test_concurrent_requests_each_get_their_own_translations(server):
    results = {}

    def client(number):
        sentences = [f"client {number} s{i}" for i in range(1 + number % 4)]
        results[number] = (sentences, server.translate({"sentences": sentences}))

    threads = [threading.Thread(target=client, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sentences, (status, _, body) in results.values():
        assert status == 200 and body["translations"] == [s[::-1] for s in sentences]


BAD_REQUESTS = [
    (b'{"sentences": ["a"', 400, "body"),
    (b'{"sentences": ["\xff\xfe"]}', 400, "body"),
    (b'["a", "b"]', 400, "body"),
    (b"", 400, "body"),
    (b"{}", 422, "sentences"),
    (b'{"sentences": "one sentence"}', 422, "sentences"),
    (b'{"sentences": []}', 422, "sentences"),
    (b'{"sentences": ["fine", 7]}', 422, "sentences[1]"),
    (b'{"sentences": ["fine", null]}', 422, "sentences[1]"),
    (b'{"sentences": ["fine", ""]}', 422, "sentences[1]"),
    (b'{"sentences": ["  \\t "]}', 422, "sentences[0]"),
    (b'{"sentences": ["\\ud800"]}', 422, "sentences[0]"),
    (b'{"sentences": ["a"], "beams": 0}', 422, "beams"),
    (b'{"sentences": ["a"], "beams": -2}', 422, "beams"),
    (b'{"sentences": ["a"], "beams": "2"}', 422, "beams"),
    (b'{"sentences": ["a"], "beams": 1.5}', 422, "beams"),
    (b'{"sentences": ["a"], "beams": true}', 422, "beams"),
    (b'{"sentences": ["a"], "beams": 4}', 422, "beams"),  # above beams_limit
    (b'{"sentences": ["a"], "beam": 2}', 422, "beam"),
    (b'{"sentences": ["a", "b", "c", "d", "e"]}', 413, "sentences"),
    (b'{"sentences": ["a", "%s"]}' % (b"x" * 31), 413, "sentences[1]"),  # characters
    (b'{"sentences": ["%s"]}' % (b"x" * 21), 413, "sentences[0]"),  # tokens
    (b'{"sentences": ["a"], "pad": "%s"}' % (b"x" * 2_000_000), 413, "body"),
]


@pytest.mark.parametrize("body, status, field", BAD_REQUESTS)
def test_a_bad_request_is_refused_naming_the_field_and_the_server_goes_on(
    server, body, status, field
):
    decoded = len(server.model.decoded)
    answer, _, error = server.translate(body)
    assert (answer, error["field"]) == (status, field), error
    assert isinstance(error["error"], str) and error["error"]
    assert len(server.model.decoded) == decoded  # nothing was decoded
    assert server.translate({"sentences": ["still here"]})[2] == {"translations": ["ereh llits"]}


def test_wrong_method_and_path(server):
    assert server.request("GET", "/v1/translate")[0] == 405
    assert server.request("GET", "/nowhere")[0] == 404


def test_health_readiness_and_metrics(server):
    assert server.request("GET", "/healthz")[:3:2] == (200, {"status": "alive"})
    assert server.request("GET", "/readyz")[:3:2] == (200, {"status": "ready"})
    server.translate(b"not json")
    status, headers, text = server.request("GET", "/metrics")
    text = text.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in (
        'translation_requests_total{code="200",path="/v1/translate"}',
        'translation_errors_total{reason="bad_request"}',
        "translation_queue_depth 0.0",
        "translation_queued_requests 0.0",
        "translation_batch_size_bucket",
        "translation_batch_seconds_bucket",
        'translation_request_seconds_bucket{le="0.005",path="/v1/translate"}',
        "translation_sentences_total",
    ):
        assert name in text, name
    assert "python_gc_objects_collected_total" not in text  # not the global registry


def test_a_full_queue_answers_429_with_retry_after_at_once():
    model = FakeModel()
    options = ServerOptions(max_queue=2, max_sentences=2, max_wait_ms=0)
    with running(create_app(lambda: model, options)) as server:
        model.hold()
        answers = []
        first = _in_thread(lambda: answers.append(server.translate({"sentences": ["first"]})))
        model.started.wait(10)
        second = _in_thread(lambda: answers.append(server.translate({"sentences": ["a", "b"]})))
        _wait_until(lambda: server.service.batcher.stats().queued_sentences == 2)
        started = time.monotonic()
        status, headers, error = server.translate({"sentences": ["refused"]})
        assert time.monotonic() - started < 5
        assert status == 429 and int(headers["retry-after"]) >= 1 and error["field"] is None
        model.gate.set()
        first.join(30), second.join(30)
        assert sorted(status for status, _, _ in answers) == [200, 200]
        assert "refused" not in model.decoded
        assert server.translate({"sentences": ["again"]})[0] == 200
        assert 'translation_errors_total{reason="queue_full"} 1.0' in _metrics(server)


def test_a_request_past_its_deadline_answers_504_and_is_not_decoded():
    model = FakeModel()
    options = ServerOptions(timeout_s=0.5, max_wait_ms=0)
    with running(create_app(lambda: model, options)) as server:
        model.hold()
        answers = []
        first = _in_thread(lambda: answers.append(server.translate({"sentences": ["first"]})))
        model.started.wait(10)
        status, _, error = server.translate({"sentences": ["too late"]})
        assert status == 504 and "0.5 s" in error["error"]
        model.gate.set()
        first.join(30)
        assert answers[0][0] == 504  # decoded, but after its deadline
        assert "too late" not in model.decoded
        assert server.translate({"sentences": ["in time"]})[0] == 200
        assert 'translation_errors_total{reason="timeout"} 2.0' in _metrics(server)


def test_readyz_answers_503_until_the_model_is_loaded_and_warmed():
    model, loading = FakeModel(), threading.Event()

    def load():
        loading.wait(30)
        return model

    with running(create_app(load, OPTIONS), ready=False) as server:
        assert server.request("GET", "/readyz")[:3:2] == (503, {"status": "loading"})
        status, headers, _ = server.translate({"sentences": ["early"]})
        assert status == 503 and headers["retry-after"] == "1"
        assert model.decoded == []
        loading.set()
        wait_for(server.url, "/readyz")
        # The warm-up: a batch of each row count, 1, 2, 4, ... 64, for sources of
        # each length step up to the model's 20 tokens (characters here).
        assert model.decoded == ["Hello, world."] * 7
        assert server.translate({"sentences": ["ready"]})[0] == 200


def test_a_model_that_fails_to_load_keeps_the_server_unready_and_says_so():
    failures = []

    def load():
        raise ValueError("no model here")

    app = create_app(load, OPTIONS, on_load_failure=failures.append)
    with running(app, ready=False) as server:
        wait_for(server.url, "/readyz", status=503)
        _wait_until(lambda: failures)
        assert server.request("GET", "/readyz")[2] == {"status": "failed"}
    assert str(failures[0]) == "no model here"


def test_a_shutdown_finishes_the_request_in_flight_then_drains_the_batcher():
    model = FakeModel()
    with running(create_app(lambda: model, OPTIONS)) as server:
        model.hold()
        answers = []
        client = _in_thread(lambda: answers.append(server.translate({"sentences": ["flying"]})))
        model.started.wait(10)
        server.server.should_exit = True
        threading.Timer(0.2, model.gate.set).start()
        client.join(30)
        server.thread.join(30)
        assert answers == [(200, answers[0][1], {"translations": ["gniylf"]})]
        assert not server.thread.is_alive()
        assert server.service.batcher.stats().queued_sentences == 0
        assert server.service.batcher.stop(timeout_s=0)  # the worker has finished


def test_server_options_are_checked():
    with pytest.raises(ValueError, match="max_sentences"):
        ServerOptions(max_sentences=10, max_queue=5)
    with pytest.raises(ValueError, match="max_batch_size"):
        ServerOptions(max_batch_size=0)
    with pytest.raises(ValueError, match="timeout_s"):
        ServerOptions(timeout_s=-1)


def _in_thread(function):
    thread = threading.Thread(target=function)
    thread.start()
    return thread


def _wait_until(condition, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def _metrics(server):
    return server.request("GET", "/metrics")[2].decode()


def test_the_warm_up_compiles_each_length_step_up_to_its_tokens():
    model = FakeModel()
    model.source_token_limit = 1000
    options = ServerOptions(max_batch_size=4, warm_up_tokens=48)
    with running(create_app(lambda: model, options)):
        # 13, 27 and 41 characters: length steps 16, 32 and 48; rows 1, 2, 4 each.
        sentences = [" ".join(["Hello, world."] * repeats) for repeats in (1, 2, 3)]
        assert model.decoded == [sentence for sentence in sentences for _ in range(3)]
