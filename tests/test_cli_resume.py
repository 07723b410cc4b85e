"""The `keras-transformer` command resumes interrupted runs."""

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from benchmarks.distribution import backed_up_epochs
from keras_transformer.data import number_pairs
from keras_transformer.translation import run as run_module
from keras_transformer_cli import main
from tests.cli_runs import TINY, command, write_pairs
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


def test_a_killed_run_resumes_where_it_stopped_on_other_devices(tmp_path, capsys, one_shape):
    """Killed (no clean-up) once its first epoch is backed up, then resumed
    by the same command; on JAX the second epoch runs data parallel over 4
    devices (TensorFlow's data parallel training, whose compiling takes this
    CPU a minute, is tested in `tests/training/test_distribution.py`)."""
    out = str(tmp_path / "run")
    args = ["train", "--out", out, *one_shape]
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    process = subprocess.Popen(
        command(*args), env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if backed_up_epochs(out) == 1:
            process.send_signal(signal.SIGKILL)
        time.sleep(0.01)
    process.wait()
    assert epochs_logged(out) == [0], "the run was not stopped after its first epoch"
    distributed = BACKEND == "jax"
    assert main([*args, *(["--distribute", "data"] if distributed else [])]) == 0
    assert epochs_logged(out) == [0, 1]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in printed if line.startswith("Epoch ")] == ["2/2"]
    assert ("Training on 4 devices (data parallel)" in printed) == distributed
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        assert json.load(file)["devices"] == (4 if distributed else 1)


def test_an_interrupted_run_exits_with_130_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "train_translator", interrupted)
    assert main(["train", "--out", str(tmp_path), "--pairs", "300"]) == 130
    assert capsys.readouterr().err == (
        "keras-transformer: interrupted; run the same command again to resume\n"
    )
