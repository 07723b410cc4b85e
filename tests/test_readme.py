"""The README's Python snippets run as written."""

import os
import re
import subprocess
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


def test_demo_script_trains_and_saves(tmp_path):
    script = os.path.join(ROOT, "examples", "reverse_sequence.py")
    run = subprocess.run(
        [sys.executable, script, "--out", str(tmp_path), "--samples", "256", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Held-out token accuracy" in run.stdout
    assert os.path.exists(tmp_path / "model.keras")
