"""An exported SavedModel translates as the `Translator` it came from, for
models trained on each backend:

    python -m benchmarks.export [--run tensorflow=RUN --run jax=RUN ...]
        [--backends tensorflow,jax,torch] [--language fr] [--seconds 180]
        [--sentences 1000] [--save]

Each backend's model is a finished run given with `--run BACKEND=DIR`, or
else `keras-transformer train --backend B` trains one for `--seconds` on
the real-text suite's English -> `--language` software messages
(`benchmarks/gettext_pairs.py`). `keras-transformer translate --beams 1`
translates the first `--sentences` sources of the run's test split under
that backend, and `keras-transformer export` writes the SavedModel (under
TensorFlow), which `benchmarks/exported_translate.py` loads in a process
with TensorFlow and TensorFlow Text only and translates the same sources
in batches of 1, 7 and 64. The lines are compared one by one; the figures
go to docs/export_results.json with `--save`.
"""

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from benchmarks.gettext_pairs import language_pairs, write_pairs
from keras_transformer.data.pairs import as_field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZES = (1, 7, 64)


def command(*arguments: str, stdin: str | None = None) -> str:
    """Runs `keras-transformer ARGUMENTS` and returns its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "keras_transformer", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        sys.exit(f"keras-transformer {arguments[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def trained_run(backend: str, directory: str, language: str, seconds: float) -> str:
    """A run trained on `backend` for `seconds` under `directory` (kept and
    reused once finished)."""
    run = os.path.join(directory, backend)
    if not os.path.exists(os.path.join(run, "metrics.json")):
        shutil.rmtree(run, ignore_errors=True)
        pairs = os.path.join(directory, f"{language}.tsv")
        write_pairs(language_pairs(language), pairs)
        command("train", "--backend", backend, "--data", pairs, "--out", run, "--no-pictures",
                "--time-budget", str(seconds), "--beams", "1")  # fmt: skip
    return run


def test_sources(run: str, count: int) -> list[str]:
    """The first `count` sources of the run's test split, stripped as
    `translate` strips the lines it reads."""
    with open(os.path.join(run, "training_state", "splits", "test.tsv"), encoding="utf-8") as file:
        return [line.split("\t")[0].strip() for line in itertools.islice(file, count)]


def check_backend(backend: str, run: str, sources: list[str], directory: str) -> dict:
    """How many of the export's translations, in batches of each size,
    equal those of `translate` under `backend`, and which differ."""
    expected = command(
        "translate", "--backend", backend, "--model", run, "--beams", "1",
        stdin="".join(f"{source}\n" for source in sources),
    ).splitlines()  # fmt: skip
    export = os.path.join(directory, f"{backend}_export")
    shutil.rmtree(export, ignore_errors=True)
    command("export", "--model", run, "--out", export)
    outputs = exported_translations(export, sources, directory)
    result = {"backend": backend, "sentences": len(sources)}
    for batch_size, translations in outputs["translations"].items():
        different = [
            index
            for index, (ours, theirs) in enumerate(zip(expected, translations, strict=True))
            if as_field(theirs) != ours
        ]
        result[f"batch_{batch_size}"] = {
            "identical": len(sources) - len(different),
            "different": [
                {"source": sources[i], "keras": expected[i], "export": translations[i]}
                for i in different[:10]
            ],
        }
    return result


def exported_translations(export: str, sources: list[str], directory: str) -> dict:
    sentences = os.path.join(directory, "sentences.json")
    with open(sentences, "w", encoding="utf-8") as file:
        json.dump(sources, file)
    out = os.path.join(directory, "exported.json")
    script = os.path.join(ROOT, "benchmarks", "exported_translate.py")
    batch_sizes = [str(size) for size in BATCH_SIZES]
    done = subprocess.run(
        [sys.executable, script, export, sentences, out, "--batch-sizes", *batch_sizes],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"the export failed to translate:\n{done.stderr[-3000:]}")
    with open(out, encoding="utf-8") as file:
        return json.load(file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="BACKEND=DIR, a finished run")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--language", default="fr", help="of the runs trained here")
    parser.add_argument("--seconds", type=float, default=180.0, help="training seconds")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--directory", default=os.path.join(ROOT, "runs", "export"))
    parser.add_argument("--save", action="store_true", help="write docs/export_results.json")
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    given = dict(run.split("=", 1) for run in args.run)
    results = []
    for backend in args.backends.split(","):
        run = given.get(backend) or trained_run(
            backend, args.directory, args.language, args.seconds
        )
        with open(os.path.join(run, "metrics.json"), encoding="utf-8") as file:
            metrics = json.load(file)
        sources = test_sources(run, args.sentences)
        result = check_backend(backend, run, sources, args.directory)
        result.update(run=os.path.relpath(run, ROOT), chrf=metrics["chrf"])
        results.append(result)
        print(json.dumps(results[-1]), flush=True)
    if args.save:
        # The backends not checked now keep their earlier results.
        path = os.path.join(ROOT, "docs", "export_results.json")
        saved = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                saved = json.load(file)
        earlier = saved.get("results", [])
        checked = {result["backend"] for result in results}
        arguments = sys.argv[1:]
        summary = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"),
            "commands": {
                **(saved.get("commands") or {}),
                ", ".join(sorted(checked)): " ".join(["python -m benchmarks.export", *arguments]),
            },
            "results": [r for r in earlier if r["backend"] not in checked] + results,
        }
        with open(path, "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)
            file.write("\n")


if __name__ == "__main__":
    main()
