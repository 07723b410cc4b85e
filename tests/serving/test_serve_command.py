"""`keras-transformer serve`: flags, the missing-extra message, and a real
server that serves, logs and returns status 0 on SIGTERM."""

import logging
import os
import signal
import socket
import sys
import threading

import pytest

from keras_transformer_cli import build_parser, main
from tests.serving.conftest import request, wait_for


def test_help_names_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [
        ("--host", "127.0.0.1"),
        ("--port", "8080"),
        ("--max-batch-tokens", "4096"),
        ("--max-batch-size", "64"),
        ("--max-wait-ms", "0"),
        ("--warm-up-tokens", "64"),
        ("--max-queue", "1024"),
        ("--timeout-s", "30"),
        ("--beams-limit", "8"),
        ("--max-sentences", "64"),
        ("--max-characters", "1000"),
    ]:
        assert flag in text and f"(default: {default})" in text, flag
    assert "--model" in text


def test_without_the_serve_extra_one_line_says_what_to_install(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "keras_transformer.serving.server", raising=False)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--model", "nowhere"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and 'pip install "keras-transformer[serve]"' in error


def test_bad_options_are_one_error_line(capsys):
    assert main(["serve", "--model", "nowhere", "--max-sentences", "9", "--max-queue", "4"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "max_sentences" in error


def test_serve_translates_and_returns_0_after_sigterm_with_the_request_logged(tiny_run, caplog):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    caplog.set_level(logging.INFO)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    answers = []

    def client():
        wait_for(url, "/readyz")
        answers.append(request(url, "POST", "/v1/translate", {"sentences": ["one", "two"]}))
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    arguments = ["--max-batch-size", "2", "--max-wait-ms", "1"]
    assert main(["serve", "--model", tiny_run, "--port", str(port), *arguments]) == 0
    thread.join(10)
    status, _, body = answers[0]
    assert status == 200 and len(body["translations"]) == 2
    assert "POST /v1/translate 200 sentences=2" in caplog.text
    assert "batcher drained and stopped" in caplog.text


def test_a_missing_run_directory_ends_the_server_with_one_error(tmp_path, capsys):
    port = _free_port()
    missing = str(tmp_path / "missing")
    assert main(["serve", "--model", missing, "--port", str(port)]) == 1
    assert f"{missing}: no such directory" in capsys.readouterr().err


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
