"""The `keras-transformer` command resumes interrupted runs."""

import csv
import json
import os
import signal
import subprocess
import time

import keras
import pytest

from keras_transformer.cli import main
from keras_transformer.data import number_pairs
from keras_transformer.translation import run as run_module
from tests.cli_runs import DISTRIBUTED_BACKENDS, TINY, command, write_pairs
from tests.helpers import BACKEND


@pytest.fixture(scope="module")
def one_shape(tmp_path_factory):
    """Train options on numbers below 100 with pairs of at most 8 tokens a
    side, in batches of 8 rows: every batch has one shape, so each backend
    compiles one training step."""
    path = tmp_path_factory.mktemp("numbers") / "pairs.tsv"
    data = write_pairs(path, number_pairs(count=100, max_number=100, seed=5))
    one_shape = ["--max-length", "8", "--batch-tokens", "64", "--no-pictures"]
    return ["--data", data, "--tokenizer", "wordpiece", *TINY, *one_shape]


def epochs_logged(out):
    with open(os.path.join(out, "training_state", "history.csv"), encoding="utf-8") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def epochs_backed_up(out):
    """The epochs Keras's backup holds, or None before the first one ends."""
    path = os.path.join(out, "training_state", "backup", "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)["epoch"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_killed_run_resumes_where_it_stopped(tmp_path, capsys, one_shape):
    out = str(tmp_path / "run")
    args = ["train", "--out", out, *one_shape]
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    process = subprocess.Popen(
        command(*args), env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Killed as soon as the backup of the first epoch is written.
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if epochs_backed_up(out) == 1:
            process.send_signal(signal.SIGKILL)
        time.sleep(0.01)
    process.wait()
    assert epochs_logged(out) == [0], "the run was not stopped after its first epoch"
    assert main(args) == 0  # the same command again, here in this process
    assert epochs_logged(out) == [0, 1]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in printed if line.startswith("Epoch ")] == ["2/2"]


class InterruptAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.skipif(BACKEND not in DISTRIBUTED_BACKENDS, reason=f"{BACKEND}: one device only")
def test_a_distributed_run_resumes_on_one_device(tmp_path, capsys, monkeypatch, one_shape):
    out = str(tmp_path / "run")
    args = ["train", "--out", out, *one_shape]
    callbacks = run_module._RunState.callbacks
    monkeypatch.setattr(
        run_module._RunState,
        "callbacks",
        lambda state, checkpoints: [*callbacks(state, checkpoints), InterruptAtSecondEpoch()],
    )
    assert main([*args, "--distribute", "data"]) == 130
    assert "Training on 4 devices (data parallel)" in capsys.readouterr().out
    assert epochs_logged(out) == [0]
    monkeypatch.setattr(run_module._RunState, "callbacks", callbacks)
    assert main(args) == 0  # the same run, now on one device
    assert epochs_logged(out) == [0, 1]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in printed if line.startswith("Epoch ")] == ["2/2"]
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        assert json.load(file)["devices"] == 1
