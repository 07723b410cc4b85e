"""Runs a benchmark under every backend, each in its own process, and writes
its table to docs/benchmarks.md:

    python -m benchmarks [generation] [--backends jax,torch] [-- extra arguments]
"""

import argparse
import json
import os
import subprocess
import sys

BENCHMARKS = ("generation",)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_backend(benchmark, backend, extra_arguments):
    command = [sys.executable, "-m", f"benchmarks.{benchmark}", *extra_arguments]
    env = {**os.environ, "KERAS_BACKEND": backend}
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"{benchmark} failed under {backend}:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def generation_table(summaries):
    lines = [
        "| backend | cached greedy (tokens/s) | cached beam 4 (tokens/s) "
        "| full recomputation (tokens/s) | cached greedy / recomputation |",
        "| --- | --- | --- | --- | --- |",
    ]
    for summary in summaries:
        results = summary["results"]
        greedy = results["cached greedy"]["tokens_per_second"]
        beam = results["cached beam 4"]["tokens_per_second"]
        full = results["full recomputation greedy"]["tokens_per_second"]
        lines.append(
            f"| {summary['backend']} | {greedy:.0f} | {beam:.0f} | {full:.0f} "
            f"| {greedy / full:.1f}x |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", nargs="?", default="generation", choices=BENCHMARKS)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args, extra_arguments = parser.parse_known_args()
    summaries = []
    for backend in args.backends.split(","):
        print(f"running {args.benchmark} under {backend} ...", flush=True)
        summaries.append(run_backend(args.benchmark, backend, extra_arguments))
    table = generation_table(summaries)
    print(table)
    with open(os.path.join(ROOT, "docs", f"{args.benchmark}_results.json"), "w") as f:
        json.dump(summaries, f, indent=1)


if __name__ == "__main__":
    main()
