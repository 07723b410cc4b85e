"""The trainer's defaults on real language, beside other recipes given the
same pairs and the same training seconds:

    python -m benchmarks.real_text [--languages fr,es,it,pt_BR] [--seconds 600]
        [--systems copy,ours,keras_io,sockeye] [--backend jax] [--save]
        [-- extra train options, e.g. --beams 4]

The pairs are English -> French, Spanish, Italian and Brazilian Portuguese
software messages from the gettext catalogs installed on the machine
(`benchmarks/gettext_pairs.py`). Each language's pairs are split 80/10/10
exactly as `keras-transformer train` splits them (the same function and
seed), and every system trains on the training split, may watch the
validation split, and translates the held-out test split:

- `copy`: the English source, unchanged (the floor: names, options and
  placeholders are often left as they are);
- `ours`: `keras-transformer train --data pairs.tsv --time-budget SECONDS`,
  every other option at its default;
- `keras_io`: the keras.io "English-to-Spanish translation with KerasHub"
  recipe (`benchmarks/keras_io_recipe.py`), which lowercases its text;
- `sockeye`: Sockeye 3.1.34's Transformer at our model's size, in its own
  virtual environment (`benchmarks/sockeye_peer.py`), once with its
  training defaults and once as set for a short budget; the better counts.

Scores: chrF (the main one), BLEU and exact match from sacrebleu, and chrF
of the lowercased texts beside them for the recipe that lowercases, on the
first `--test-pairs` pairs of the test split (decoding all of it takes the
peers on a CPU longer than training).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from benchmarks.gettext_pairs import LANGUAGES, language_pairs, write_pairs
from keras_transformer.data.pairs import split_pairs_file
from keras_transformer.translation.evaluation import score_translations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
SYSTEMS = ("copy", "ours", "keras_io", "sockeye")


def prepare(language: str, directory: str, test_pairs: int) -> dict[str, list[tuple[str, str]]]:
    """Writes `directory/pairs.tsv`, its splits (`directory/splits`) and the
    splits the other systems read (`directory/scored_splits`: the test split
    cut to its first `test_pairs` pairs); returns the latter."""
    os.makedirs(directory, exist_ok=True)
    write_pairs(language_pairs(language), os.path.join(directory, "pairs.tsv"))
    splits = split_pairs_file(
        os.path.join(directory, "pairs.tsv"), os.path.join(directory, "splits"), seed=0
    )
    splits = {name: list(pairs) for name, pairs in splits.items()}
    splits["test"] = splits["test"][:test_pairs]
    os.makedirs(os.path.join(directory, "scored_splits"), exist_ok=True)
    for name, pairs in splits.items():
        write_pairs(pairs, os.path.join(directory, "scored_splits", f"{name}.tsv"))
    return splits


def score(translations: list[str], references: list[str]) -> dict:
    scores = score_translations(translations, references)
    lowercased = score_translations(
        [text.lower() for text in translations], [text.lower() for text in references]
    )
    return {**scores, "chrf_lowercased": lowercased["chrf"]}


def run_ours(
    directory: str, seconds: float, extra: list[str], test_pairs, reuse: bool, backend: str
) -> dict:
    """Our command's run in `directory/ours` on `backend`, trained now, or
    with `reuse` read back from a finished run there."""
    out = os.path.join(directory, "ours")
    command = [sys.executable, "-m", "keras_transformer", "train", "--backend", backend, "--data"]
    command += [os.path.join(directory, "pairs.tsv"), "--out", out, "--no-pictures"]
    command += ["--time-budget", str(seconds), *extra]
    if not (reuse and os.path.exists(os.path.join(out, "metrics.json"))):
        shutil.rmtree(out, ignore_errors=True)
        run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if run.returncode:
            sys.exit(f"train failed:\n{run.stderr[-3000:]}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    with open(os.path.join(out, "test_translations.tsv"), encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file]
    if [(source, target) for source, target, _ in rows[: len(test_pairs)]] != test_pairs:
        sys.exit("train held out other test pairs than the suite's split")
    return {
        "translations": [translation for _, _, translation in rows[: len(test_pairs)]],
        "backend": metrics["backend"],
        "training_seconds": metrics["training_seconds"],
        "epochs": metrics["epochs"],
        "beams": metrics["options"]["beams"],
        "options": metrics["options"],
    }


def run_system(name: str, directory: str, splits, args) -> list:
    """`[(label, result)]` for one system: its translations and what else it
    reports, run as the command-line `args` say."""
    seconds = args.seconds
    splits_directory = os.path.join(directory, "scored_splits")
    if name == "copy":
        return [("copy", {"translations": [source for source, _ in splits["test"]]})]
    if name == "ours":
        test_pairs = splits["test"]
        return [
            ("ours", run_ours(directory, seconds, args.extra, test_pairs, args.reuse, args.backend))
        ]
    if name == "keras_io":
        from benchmarks.keras_io_recipe import recipe_translations

        work = os.path.join(directory, "keras_io")
        return [("keras_io", recipe_translations(splits_directory, work, seconds))]
    if name == "sockeye":
        from benchmarks.sockeye_peer import sockeye_translations

        return [
            (
                f"sockeye_{setting}",
                sockeye_translations(
                    splits_directory,
                    os.path.join(directory, f"sockeye_{setting}"),
                    seconds,
                    setting,
                ),
            )
            for setting in args.sockeye_settings.split(",")
        ]
    raise ValueError(f"`systems` must be among {SYSTEMS}. Received: {name!r}")


def table(results: list[dict]) -> str:
    lines = [
        "| language | system | chrF | lowercased chrF | BLEU | exact match | training |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        seconds = result.get("training_seconds")
        lines.append(
            f"| {result['language']} | {result['system']} | {result['chrf']:.1f} "
            f"| {result['chrf_lowercased']:.1f} | {result['bleu']:.1f} "
            f"| {result['exact_match']:.3f} | {'-' if seconds is None else f'{seconds:.0f} s'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--seconds", type=float, default=600.0, help="training seconds")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--test-pairs", type=int, default=1000, help="test pairs scored (the first of the split)"
    )
    parser.add_argument("--sockeye-settings", default="defaults,tuned")
    parser.add_argument(
        "--reuse", action="store_true", help="score our finished runs again instead of training"
    )
    parser.add_argument("--directory", default=os.path.join(ROOT, "runs", "real_text"))
    parser.add_argument("--backend", default="jax", help="Keras backend of our runs")
    parser.add_argument("--save", action="store_true", help="write docs/real_text_results.json")
    parser.add_argument("extra", nargs="*", help="options passed to our train command")
    args = parser.parse_args()
    results = []
    for language in args.languages.split(","):
        directory = os.path.join(args.directory, language)
        splits = prepare(language, directory, args.test_pairs)
        references = [target for _, target in splits["test"]]
        for name in args.systems.split(","):
            for label, result in run_system(name, directory, splits, args):
                translations = result.pop("translations")
                row = {"language": language, "system": label, **score(translations, references)}
                row.update(result)
                row["date"] = time.strftime("%Y-%m-%d")
                row["extra_options"] = args.extra if name == "ours" else []
                results.append(row)
                print(json.dumps(row), flush=True)
    print(table(results))
    if args.save:
        save(results, args)


def save(results: list[dict], args) -> None:
    """Adds `results` to docs/real_text_results.json, replacing the rows of
    the same language and system (runs of some languages or systems add up)."""
    path = os.path.join(DOCS, "real_text_results.json")
    kept = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            kept = json.load(file)["results"]
    replaced = {(row["language"], row["system"]) for row in results}
    rows = [row for row in kept if (row["language"], row["system"]) not in replaced] + results
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": args.seconds,
        "test_pairs": args.test_pairs,
        "results": rows,
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
