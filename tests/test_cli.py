"""The `keras-transformer` command, end to end on tiny data."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from keras_transformer.cli import main
from keras_transformer.data import number_pairs
from keras_transformer.translation import run as run_module
from tests.helpers import BACKEND

TINY_MODEL = ["--num-layers", "1", "--d-model", "16", "--ff-dim", "32"]
# 300 pairs split 240 / 30 / 30: batches of 48 make every training batch the
# same shape, so each backend compiles one training step.
TINY = ["--epochs", "2", "--batch-size", "48", *TINY_MODEL]


def command(*args):
    return [sys.executable, "-m", "keras_transformer", *args]


def run(*args, **kwargs):
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    return subprocess.run(command(*args), capture_output=True, text=True, env=environment, **kwargs)


def write_pairs(path, pairs):
    path.write_text("".join(f"{source}\t{target}\n" for source, target in pairs), "utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run trained in this process on a small pairs file."""
    root = tmp_path_factory.mktemp("cli")
    data = write_pairs(root / "pairs.tsv", number_pairs(count=300, max_number=1000, seed=5))
    out = str(root / "run")
    assert main(["train", "--data", data, "--out", out, "--no-pictures", *TINY]) == 0
    return data, out


def test_train_writes_model_and_metrics(trained_run):
    _, out = trained_run
    for name in ("model.keras", "metrics.json", "test_translations.tsv"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert not os.path.exists(os.path.join(out, "training_curves.png"))  # --no-pictures
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    assert metrics["backend"] == BACKEND and metrics["sentences"] == 30
    assert 0 <= metrics["exact_match"] <= 1 and 0 <= metrics["chrf"] <= 100
    assert not os.path.exists(os.path.join(out, "training_state", "backup"))


def test_translate_in_a_new_process_matches_training(trained_run):
    _, out = trained_run
    with open(os.path.join(out, "test_translations.tsv"), encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file]
    sources = "\n".join(source for source, _, _ in rows) + "\n"
    result = run("translate", "--model", out, input=sources, check=True)
    assert result.stdout.splitlines() == [translation for _, _, translation in rows]


def test_evaluate_scores_a_pairs_file(trained_run, capsys):
    data, out = trained_run
    assert main(["evaluate", "--model", out, "--data", data]) == 0
    printed = capsys.readouterr().out
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    # The file holds the test split and more; its scores are computed afresh.
    assert printed.startswith("exact match ") and "BLEU" in printed and "chrF" in printed
    assert "(300 sentences)" in printed and metrics["sentences"] == 30


def test_translate_takes_sentences_as_arguments_and_plots_attention(trained_run, tmp_path, capsys):
    _, out = trained_run
    picture = tmp_path / "attention.png"
    assert main(["translate", "--model", out, "--attention", str(picture), "twelve", "ten"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def epochs_logged(out):
    with open(os.path.join(out, "training_state", "history.csv"), encoding="utf-8") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_a_killed_run_resumes_where_it_stopped(tmp_path, capsys):
    out = str(tmp_path / "run")
    # Epochs of 450 small steps: seconds long, so the kill lands inside the second.
    args = ["train", "--out", out, "--pairs", "2000", "--batch-size", "4", "--epochs", "2"]
    args += [*TINY_MODEL, "--no-pictures"]
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    process = subprocess.Popen(
        command(*args), env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    history = os.path.join(out, "training_state", "history.csv")
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(history) and len(epochs_logged(out)) >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = epochs_logged(out)
    assert finished_before == [0], "the run was not stopped inside the second epoch"
    assert main(args) == 0  # the same command again, here in this process
    assert epochs_logged(out) == [0, 1]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in printed if line.startswith("Epoch ")] == ["2/2"]


DISTRIBUTED_BACKENDS = ("jax", "tensorflow")


class InterruptAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.skipif(BACKEND not in DISTRIBUTED_BACKENDS, reason=f"{BACKEND}: one device only")
def test_a_distributed_run_resumes_on_one_device(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    args = ["train", "--out", out, "--pairs", "300", *TINY, "--no-pictures"]
    callbacks = run_module._RunState.callbacks
    monkeypatch.setattr(
        run_module._RunState,
        "callbacks",
        lambda state: [*callbacks(state), InterruptAtSecondEpoch()],
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


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model-axis-size", "2"], "--model-axis-size needs --distribute model"),
        (["--distribute", "data", "--batch-size", "30"], "divisible by the 4 devices"),
        (["--distribute", "model", "--d-model", "18", "--num-heads", "2"], "d_model=18"),
        (["--distribute", "data", "--model-axis-size", "2"], "distribute='model' only"),
    ],
)
def test_distribution_requests_that_cannot_work_are_reported(tmp_path, capsys, flags, message):
    if BACKEND not in DISTRIBUTED_BACKENDS:
        message = f"not available on the {BACKEND} backend: Keras 3 spreads"
        if not flags[0].startswith("--distribute"):
            message = "--model-axis-size needs --distribute model"
    elif BACKEND == "tensorflow" and "model" in flags:
        message = "`distribute='model'` needs the jax backend"
    assert main(["train", "--out", str(tmp_path), *flags]) == 1
    error = capsys.readouterr().err
    assert error.startswith("keras-transformer: error: ") and message in error


def test_resuming_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    backup = out / "training_state" / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (out / "training_state" / "options.json").write_text(json.dumps({"epochs": 3}))
    assert main(["train", "--out", str(out), "--epochs", "4"]) == 1
    error = capsys.readouterr().err
    assert "unfinished run with other options" in error and "epochs: 3 -> 4" in error


def bad_files(tmp_path):
    missing = tmp_path / "missing.tsv"
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    no_tab = tmp_path / "no_tab.tsv"
    no_tab.write_text("one\tun\ntwo deux\n")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("été\tsummer\n".encode("latin-1"))
    empty_target = tmp_path / "empty_target.tsv"
    empty_target.write_text("one\tun\ntwo\t \n")
    return [
        (missing, "missing.tsv: No such file or directory"),
        (empty, "no sentence pairs"),
        (no_tab, "no_tab.tsv:2: no tab between source and target"),
        (latin, "not UTF-8"),
        (empty_target, "empty_target.tsv:2: empty target"),
    ]


def test_bad_data_files_give_one_line_and_status_1(tmp_path, capsys):
    for path, message in bad_files(tmp_path):
        assert main(["train", "--data", str(path), "--out", str(tmp_path / "run")]) == 1
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error


def test_a_directory_without_a_model_is_reported(tmp_path, capsys):
    assert main(["translate", "--model", str(tmp_path), "one"]) == 1
    assert "does not hold a model (model.keras is missing)" in capsys.readouterr().err
    (tmp_path / "model.keras").write_text("not a zip file")
    assert main(["translate", "--model", str(tmp_path), "one"]) == 1
    assert "cannot be loaded as a model" in capsys.readouterr().err


def test_bad_options_are_reported(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--d-model", "30", "--num-heads", "4"]) == 1
    assert "`d_model` must be divisible by `num_heads`" in capsys.readouterr().err


def test_errors_in_a_new_process_have_no_traceback(tmp_path):
    result = run("evaluate", "--model", str(tmp_path), "--data", "x.tsv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "keras-transformer: error: x.tsv: No such file or directory"
    )


def test_backend_flag_reruns_the_command_under_that_backend(monkeypatch):
    launched = {}

    class FakeProcess:
        def __init__(self, args, env):
            launched.update(args=args, backend=env["KERAS_BACKEND"])

        def wait(self):
            return 7

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    other = next(name for name in ("tensorflow", "jax", "torch") if name != BACKEND)
    args = ["translate", "--backend", other, "--model", "runs/x", "one"]
    assert main(args) == 7
    assert launched == {
        "args": [sys.executable, "-m", "keras_transformer", *args],
        "backend": other,
    }
