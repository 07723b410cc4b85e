"""Trains `keras-transformer train` with its default options on every task of
`benchmarks/tasks.py` and writes the table to docs/tasks.md (and the figures
to docs/tasks_results.json):

    KERAS_BACKEND=jax python -m benchmarks.suite [--tasks dates,morphology]
        [--pairs 20000] [-- extra train options, e.g. --average-checkpoints 5]

Each task's pairs are split 80/10/10 by the command; the test split is held
out from training and from the vocabulary.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import keras

from benchmarks.tasks import TASKS, task_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
EPOCHS = 5


def run_task(name: str, pairs: int, directory: str, extra: list[str]) -> dict:
    data = os.path.join(directory, f"{name}.tsv")
    with open(data, "w", encoding="utf-8") as file:
        file.writelines(f"{s}\t{t}\n" for s, t in task_pairs(name, pairs))
    out = os.path.join(directory, name)
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", data]
    command += ["--out", out, "--epochs", str(EPOCHS), "--no-pictures", *extra]
    started = time.time()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if run.returncode:
        sys.exit(f"{name} failed:\n{run.stderr[-3000:]}")
    seconds = time.time() - started
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    return {"task": name, "seconds": round(seconds), **metrics, "greedy": greedy_scores(out)}


def greedy_scores(out: str) -> dict:
    """Exact match, BLEU and chrF of greedy decoding on the run's test split."""
    test = os.path.join(out, "training_state", "splits", "test.tsv")
    command = [sys.executable, "-m", "keras_transformer", "evaluate", "--model", out]
    run = subprocess.run(
        [*command, "--data", test, "--beams", "1"], capture_output=True, text=True, cwd=ROOT
    )
    if run.returncode:
        sys.exit(f"evaluate failed:\n{run.stderr[-3000:]}")
    line = run.stdout.strip().splitlines()[-1].split()
    return {"exact_match": float(line[2]), "bleu": float(line[4]), "chrf": float(line[6])}


def table(results: list[dict]) -> str:
    lines = [
        "| task | example | exact match | BLEU | chrF | greedy: exact, chrF | epochs (best) "
        "| whole run | padding |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        source, target = task_pairs(result["task"], 1, seed=1)[0]
        lines.append(
            f"| {result['task']} | `{source}` -> `{target}` | {result['exact_match']:.4f} "
            f"| {result['bleu']:.2f} | {result['chrf']:.2f} "
            f"| {result['greedy']['exact_match']:.4f}, {result['greedy']['chrf']:.2f} "
            f"| {result['epochs']} ({result['best_epoch']}) | {result['seconds']} s "
            f"| {result['padding_share']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--directory", default=os.path.join(ROOT, "runs", "suite"))
    parser.add_argument("--save", action="store_true", help="write docs/tasks_results.json")
    parser.add_argument("extra", nargs="*", help="options passed to every train command")
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    results = []
    for name in args.tasks.split(","):
        results.append(run_task(name, args.pairs, args.directory, args.extra))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "options"}), flush=True)
    print(table(results))
    if args.save:
        summary = {
            "backend": keras.backend.backend(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "pairs": args.pairs,
            "max_epochs": EPOCHS,
            "extra_options": args.extra,
            "results": results,
        }
        with open(os.path.join(DOCS, "tasks_results.json"), "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
