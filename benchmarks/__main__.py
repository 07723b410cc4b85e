"""Runs benchmarks under every backend, each in its own process, prints their
tables, saves the results under docs/ and draws the ratio chart:

    python -m benchmarks [training generation attention] [--backends jax,torch]
        [--size base|large] [-- extra arguments for every benchmark]
"""

import argparse
import json
import os
import subprocess
import sys

BENCHMARKS = ("training", "generation", "attention")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def run_backend(benchmark, backend, extra_arguments):
    command = [sys.executable, "-m", f"benchmarks.{benchmark}", *extra_arguments]
    env = {**os.environ, "KERAS_BACKEND": backend}
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"{benchmark} failed under {backend}:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def spread(result, scale=1.0):
    low, high = result["spread"]
    return f"{result['per_second'] * scale:.0f} ({low * scale:.0f}-{high * scale:.0f})"


def training_table(summaries):
    lines = [
        "| backend | size | ours (target tokens/s) | keras-nlp (target tokens/s) "
        "| ours / keras-nlp | MFU ours / keras-nlp | peak memory ours / keras-nlp (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for summary in summaries:
        ours, theirs = summary["results"]["ours"], summary["results"]["keras_nlp"]
        lines.append(
            f"| {summary['backend']} | {summary['config']['size']} | {spread(ours)} "
            f"| {spread(theirs)} | {ours['per_second'] / theirs['per_second']:.2f}x "
            f"| {ours['mfu']:.2f} / {theirs['mfu']:.2f} "
            f"| {ours['peak_memory_mib']:.0f} / {theirs['peak_memory_mib']:.0f} |"
        )
    return "\n".join(lines)


def generation_table(summaries):
    lines = [
        "| backend | cached greedy (tokens/s) | keras-nlp BartSeq2SeqLM greedy (tokens/s) "
        "| ours / Bart | cached beam 4 (tokens/s) | full recomputation (tokens/s) "
        "| cached / recomputation | first call, ours / Bart (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for summary in summaries:
        results, first = summary["results"], summary["first_call_seconds"]
        greedy, bart = results["cached greedy"], results["keras-nlp BartSeq2SeqLM greedy"]
        full = results["full recomputation greedy"]
        lines.append(
            f"| {summary['backend']} | {spread(greedy)} | {spread(bart)} "
            f"| {greedy['per_second'] / bart['per_second']:.2f}x "
            f"| {spread(results['cached beam 4'])} | {spread(full)} "
            f"| {greedy['per_second'] / full['per_second']:.1f}x "
            f"| {first['cached greedy']:.1f} / {first['keras-nlp BartSeq2SeqLM greedy']:.1f} |"
        )
    return "\n".join(lines)


def attention_table(summaries):
    lines = [
        "| backend | length | ours (tokens/s) | keras MultiHeadAttention (tokens/s) "
        "| ours / keras |",
        "| --- | --- | --- | --- | --- |",
    ]
    for summary in summaries:
        for length, results in summary["results"].items():
            ours, theirs = results["ours"], results["keras"]
            lines.append(
                f"| {summary['backend']} | {length} | {spread(ours)} | {spread(theirs)} "
                f"| {ours['per_second'] / theirs['per_second']:.2f}x |"
            )
    return "\n".join(lines)


TABLES = {
    "training": training_table,
    "generation": generation_table,
    "attention": attention_table,
}


def ratios(name, summaries):
    """(label, ours / reference) pairs for the chart."""
    pairs = []
    for summary in summaries:
        backend, results = summary["backend"], summary["results"]
        if name == "training":
            ratio = results["ours"]["per_second"] / results["keras_nlp"]["per_second"]
            pairs.append((f"train {summary['config']['size']}\n{backend}", ratio))
        elif name == "generation":
            ratio = (
                results["cached greedy"]["per_second"]
                / results["keras-nlp BartSeq2SeqLM greedy"]["per_second"]
            )
            pairs.append((f"greedy vs Bart\n{backend}", ratio))
        else:
            for length, by_layer in results.items():
                ratio = by_layer["ours"]["per_second"] / by_layer["keras"]["per_second"]
                pairs.append((f"attention {length}\n{backend}", ratio))
    return pairs


def draw_chart(path):
    """Bar chart of every ratio in the saved results."""
    from matplotlib.figure import Figure

    pairs = []
    for name in BENCHMARKS:
        saved = os.path.join(DOCS, f"{name}_results.json")
        if os.path.exists(saved):
            with open(saved) as file:
                for summaries in json.load(file).values():
                    pairs += ratios(name, summaries)
    if not pairs:
        return
    figure = Figure(figsize=(max(6, 0.7 * len(pairs)), 4.5), layout="constrained")
    axes = figure.add_subplot()
    labels, values = zip(*pairs, strict=True)
    colors = ["tab:green" if value >= 1 else "tab:red" for value in values]
    axes.bar(range(len(values)), values, color=colors)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(values)), labels, rotation=90, fontsize=7)
    axes.set_ylabel("ours / reference (higher is faster)")
    axes.set_title("keras-transformer against keras-nlp and keras, 2-core CPU")
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", default=list(BENCHMARKS), choices=BENCHMARKS)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args, extra_arguments = parser.parse_known_args()
    for benchmark in args.benchmarks:
        key = " ".join(extra_arguments) or "default"
        summaries = []
        for backend in args.backends.split(","):
            print(f"running {benchmark} {key} under {backend} ...", flush=True)
            summaries.append(run_backend(benchmark, backend, extra_arguments))
        saved = os.path.join(DOCS, f"{benchmark}_results.json")
        results = {}
        if os.path.exists(saved):
            with open(saved) as file:
                results = json.load(file)
                results = results if isinstance(results, dict) else {}
        results[key] = summaries
        with open(saved, "w") as file:
            json.dump(results, file, indent=1)
        print(TABLES[benchmark](summaries))
    draw_chart(os.path.join(DOCS, "benchmark_ratios.png"))


if __name__ == "__main__":
    main()
