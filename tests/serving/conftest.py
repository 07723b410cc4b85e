"""A tiny untrained translator saved as a run directory, and uvicorn running
an app in this process."""

import contextlib
import http.client
import json
import socket
import threading
import time

import pytest

PAIRS = [("one", "un"), ("two", "deux"), ("three", "trois"), ("four", "quatre")]
MAX_OUTPUT_LENGTH = 12  # also the longest source the server takes, in tokens


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory holding an untrained character-level translator."""
    import keras_transformer
    from keras_transformer.translation import train_tokenizer

    source = train_tokenizer([s for s, _ in PAIRS], "character")
    target = train_tokenizer([t for _, t in PAIRS], "character")
    transformer = keras_transformer.Transformer(
        source.vocabulary_size(),
        target.vocabulary_size(),
        num_layers=1,
        d_model=16,
        num_heads=2,
        ff_dim=32,
    )
    translator = keras_transformer.Translator(
        transformer, source, target, max_output_length=MAX_OUTPUT_LENGTH
    )
    directory = tmp_path_factory.mktemp("run")
    translator.save(directory / "model.keras")
    return str(directory)


def request(url, method, path, body=None, headers=None, timeout_s=60):
    """`(status, headers, body)` of one HTTP request; a dict or list body
    is sent as JSON, and a JSON answer is decoded."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        data = json.loads(data)
    return response.status, dict(response.getheaders()), data


def wait_for(url, path, status=200, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if request(url, "GET", path, timeout_s=5)[0] == status:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{path} did not answer {status}"
        time.sleep(0.02)


class RunningServer:
    """uvicorn serving `app` on a free loopback port from a thread."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def service(self):
        return self.app.state.service

    def request(self, method, path, body=None, headers=None):
        return request(self.url, method, path, body, headers)

    def translate(self, body):
        return self.request("POST", "/v1/translate", body)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive()


@contextlib.contextmanager
def running(app, ready=True):
    """A `RunningServer` of `app`, once `/readyz` (or, with `ready=False`,
    `/healthz`) answers 200; stopped on exit."""
    server = RunningServer(app)
    server.thread.start()
    try:
        wait_for(server.url, "/readyz" if ready else "/healthz")
        yield server
    finally:
        server.stop()
        server.socket.close()
