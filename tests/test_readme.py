"""The README's Python snippets run as written."""

import os
import re
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        return re.findall(r"```python\n(.*?)```", readme.read(), flags=re.S)


def test_quickstart_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert os.path.exists(tmp_path / "reverser.keras")


def run_example(name, *args, monkeypatch, capsys):
    """Runs `examples/name` in this process with `args` and returns what it printed."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(os.path.join(ROOT, "examples", name), run_name="__main__")
    return capsys.readouterr().out


def test_translation_demo_trains_scores_and_saves(tmp_path, monkeypatch, capsys):
    printed = run_example(
        "translate_numbers.py",
        *("--out", str(tmp_path), "--pairs", "142", "--epochs", "1"),  # 2 batches of 64
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert "Test: exact match" in printed and "BLEU" in printed
    assert os.path.exists(tmp_path / "model.keras")


def test_classification_example_runs(monkeypatch, capsys):
    printed = run_example(
        "classify_language.py",
        *("--numbers", "100", "--epochs", "1"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert "Test accuracy" in printed


def test_language_model_example_runs(monkeypatch, capsys):
    printed = run_example(
        "count_with_a_language_model.py",
        *("--numbers", "60", "--epochs", "1"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert printed.count("'three hundred and twelve, ") == 1
