"""The `keras-transformer` command, end to end on tiny data."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_transformer.data import number_pairs
from keras_transformer.translation.options import TrainingOptions
from keras_transformer_cli import main
from tests.cli_runs import DISTRIBUTED_BACKENDS, TINY, run, write_pairs
from tests.helpers import BACKEND


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run trained in this process on a small pairs file, with a time
    budget longer than its epochs."""
    root = tmp_path_factory.mktemp("cli")
    data = write_pairs(root / "pairs.tsv", number_pairs(count=300, max_number=1000, seed=5))
    out = str(root / "run")
    args = ["train", "--data", data, "--out", out, "--no-pictures", "--shared-vocabulary"]
    assert main([*args, "--time-budget", "1h", *TINY]) == 0
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


def test_a_time_budget_longer_than_the_epochs_keeps_them_and_records_the_time(trained_run):
    _, out = trained_run
    state = os.path.join(out, "training_state")
    with open(os.path.join(state, "budget.json"), encoding="utf-8") as file:
        plan = json.load(file)
    with open(os.path.join(state, "history.csv"), encoding="utf-8") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 2  # --epochs 2 stays the maximum
    assert plan["seconds"] == 3600 and plan["step_seconds"] > 0
    seconds = [float(row["training_seconds"]) for row in history]
    assert 0 < seconds[0] < seconds[1] < 3600


def test_a_shared_vocabulary_shares_the_embeddings(trained_run):
    _, out = trained_run
    transformer = keras.saving.load_model(os.path.join(out, "model.keras")).transformer
    assert transformer.share_embeddings and transformer.tie_output_embedding
    names = {weight.path for weight in transformer.weights}
    assert not any("target_embedding" in name or "output_projection" in name for name in names)


def test_translate_in_a_new_process_matches_training(trained_run):
    _, out = trained_run
    with open(os.path.join(out, "test_translations.tsv"), encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file]
    sources = "\n".join(source for source, _, _ in rows) + "\n"
    result = run("translate", "--model", out, "--beams", "1", input=sources, check=True)
    assert result.stderr == ""  # no start-up lines of TensorFlow or SentencePiece
    # Each translation ends with "\n" (a model may generate characters that
    # str.splitlines also takes for line ends).
    assert result.stdout.split("\n")[:-1] == [translation for _, _, translation in rows]


def test_evaluate_scores_a_pairs_file(trained_run, capsys):
    data, out = trained_run
    assert main(["evaluate", "--model", out, "--data", data, "--beams", "1"]) == 0
    printed = capsys.readouterr().out
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    # The file holds the test split and more; its scores are computed afresh.
    assert printed.startswith("exact match ") and "BLEU" in printed and "chrF" in printed
    assert "(300 sentences)" in printed and metrics["sentences"] == 30


def test_translate_reads_a_file_and_keeps_its_order_and_blank_lines(trained_run, tmp_path, capsys):
    _, out = trained_run
    with open(os.path.join(out, "test_translations.tsv"), encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file][::-1]
    lines = [source for source, _, _ in rows]
    lines.insert(3, "")
    path = tmp_path / "sources.txt"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    assert main(["translate", "--model", out, "--input", str(path), "--beams", "1"]) == 0
    expected = [translation for _, _, translation in rows]
    expected.insert(3, "")
    assert capsys.readouterr().out.split("\n")[:-1] == expected


def test_long_inputs_show_progress_and_blank_lines_stay(trained_run, tmp_path, capsys):
    _, out = trained_run
    lines = ["twelve" if i % 50 else "" for i in range(300)]
    (tmp_path / "input.txt").write_text("\n".join(lines) + "\n")
    command = ["translate", "--model", out, "--beams", "1", "--input", str(tmp_path / "input.txt")]
    assert main(command) == 0
    captured = capsys.readouterr()
    translations = captured.out.splitlines()
    assert [bool(t) for t in translations] == [bool(line) for line in lines]
    assert len(set(translations) - {""}) == 1
    progress = captured.err.splitlines()
    assert progress[-1] == "keras-transformer: 294/294 sentences translated" and len(progress) == 5
    assert main(["translate", "--model", out, "--beams", "1", *lines[1:50]]) == 0
    assert capsys.readouterr().err == ""


def test_translate_takes_sentences_as_arguments_and_plots_attention(trained_run, tmp_path, capsys):
    _, out = trained_run
    picture = tmp_path / "attention.png"
    assert main(["translate", "--model", out, "--attention", str(picture), "twelve", "ten"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model-axis-size", "2"], "--model-axis-size needs --distribute model"),
        (
            ["--distribute", "data", "--pairs", "300", "--batch-tokens", "64"],
            "in batches of 4 rows",
        ),
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
    saved = TrainingOptions(epochs=3, shared_vocabulary=False)
    (out / "training_state" / "options.json").write_text(json.dumps(dataclasses.asdict(saved)))
    command = ["train", "--out", str(out), "--no-shared-vocabulary", "--epochs", "4"]
    assert main(command) == 1
    error = capsys.readouterr().err
    assert "unfinished run with other options (epochs: 3 -> 4);" in error


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


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--d-model", "30", "--num-heads", "4"], "`d_model` must be divisible by `num_heads`"),
        (["--vocabulary-size", "40"], "`vocabulary_size`=40 is too small"),
        (["--batch-tokens", "20"], "`batch_tokens`=20 is smaller than the longest pair"),
        (["--dtype-policy", "float8"], "`dtype_policy` must be one of"),
    ],
)
def test_bad_options_are_reported_on_one_line(tmp_path, capsys, flags, message):
    model = tmp_path / "model.keras"
    model.write_bytes(b"a model trained before")
    assert main(["train", "--out", str(tmp_path), "--pairs", "300", *flags]) == 1
    error = capsys.readouterr().err
    assert error.startswith("keras-transformer: error: ") and message in error
    assert error.count("\n") == 1
    assert model.read_bytes() == b"a model trained before"


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
        "args": [sys.executable, "-m", "keras_transformer_cli", *args],
        "backend": other,
    }


def test_a_bad_time_budget_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path / "run"), "--time-budget", "ten minutes"])
    assert exit_info.value.code == 2
    assert "--time-budget: A duration must be a number of seconds" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_train_help_reads_in_sections_with_a_default_for_every_option():
    from keras_transformer.translation.options import OPTION_GROUPS
    from keras_transformer_cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    groups = {group.title: group._group_actions for group in train._action_groups}
    assert set(OPTION_GROUPS) <= set(groups)
    for field in dataclasses.fields(TrainingOptions):
        flag = "--" + field.name.replace("_", "-")
        (action,) = [a for a in groups[field.metadata["group"]] if flag in a.option_strings]
        assert action.help and "(default: " in action.help, flag
    text = train.format_help()
    assert all(f"\n{title}:\n" in text for title in OPTION_GROUPS)


@pytest.mark.parametrize("command", ["train", "translate", "evaluate", "export", "serve"])
def test_help_answers_without_importing_keras_or_a_backend(command):
    code = (
        "import sys\n"
        "from keras_transformer_cli import main\n"
        "try:\n"
        f"    main([{command!r}, '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'keras', 'jax', 'torch', 'tensorflow', 'keras_nlp', 'keras_hub', 'sacrebleu'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"
    assert "--model" in result.stdout or "--time-budget" in result.stdout
    assert result.stderr == ""
