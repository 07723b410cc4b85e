"""The trainer's defaults on real language, beside other recipes given the
same pairs and the same training seconds:

    KERAS_BACKEND=jax python -m benchmarks.real_text [--languages fr,es,it,pt_BR]
        [--seconds 600] [--systems copy,ours,keras_io,sockeye] [--save]
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
of the lowercased texts beside them for the recipe that lowercases.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from benchmarks.gettext_pairs import LANGUAGES, language_pairs, write_pairs
from keras_transformer.data.pairs import split_pairs_file
from keras_transformer.translation.evaluation import score_translations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
SYSTEMS = ("copy", "ours", "keras_io", "sockeye")


def prepare(language: str, directory: str) -> dict[str, list[tuple[str, str]]]:
    """Writes `directory/pairs.tsv` and its splits (`directory/splits`);
    returns the splits."""
    os.makedirs(directory, exist_ok=True)
    write_pairs(language_pairs(language), os.path.join(directory, "pairs.tsv"))
    splits = split_pairs_file(
        os.path.join(directory, "pairs.tsv"), os.path.join(directory, "splits"), seed=0
    )
    return {name: list(pairs) for name, pairs in splits.items()}


def score(translations: list[str], references: list[str]) -> dict:
    scores = score_translations(translations, references)
    lowercased = score_translations(
        [text.lower() for text in translations], [text.lower() for text in references]
    )
    return {**scores, "chrf_lowercased": lowercased["chrf"]}


def run_ours(directory: str, seconds: float, extra: list[str], test_pairs) -> dict:
    out = os.path.join(directory, "ours")
    command = [sys.executable, "-m", "keras_transformer", "train", "--data"]
    command += [os.path.join(directory, "pairs.tsv"), "--out", out, "--no-pictures"]
    command += ["--time-budget", str(seconds), *extra]
    started = time.time()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if run.returncode:
        sys.exit(f"train failed:\n{run.stderr[-3000:]}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    with open(os.path.join(out, "test_translations.tsv"), encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file]
    if [(source, target) for source, target, _ in rows] != test_pairs:
        sys.exit("train held out other test pairs than the suite's split")
    return {
        "translations": [translation for _, _, translation in rows],
        "training_seconds": metrics["training_seconds"],
        "whole_run_seconds": round(time.time() - started),
        "epochs": metrics["epochs"],
        "log": run.stdout[-4000:],
    }


def run_system(name: str, language: str, directory: str, seconds: float, extra, splits) -> list:
    """`[(label, result)]` for one system: its translations and what else it
    reports."""
    splits_directory = os.path.join(directory, "splits")
    if name == "copy":
        return [("copy", {"translations": [source for source, _ in splits["test"]]})]
    if name == "ours":
        return [("ours", run_ours(directory, seconds, extra, splits["test"]))]
    if name == "keras_io":
        from benchmarks.keras_io_recipe import recipe_translations

        work = os.path.join(directory, "keras_io")
        return [("keras_io", recipe_translations(splits_directory, work, seconds))]
    if name == "sockeye":
        from benchmarks.sockeye_peer import SETTINGS, sockeye_translations

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
            for setting in SETTINGS
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
    parser.add_argument("--directory", default=os.path.join(ROOT, "runs", "real_text"))
    parser.add_argument("--save", action="store_true", help="write docs/real_text_results.json")
    parser.add_argument("extra", nargs="*", help="options passed to our train command")
    args = parser.parse_args()
    results = []
    for language in args.languages.split(","):
        directory = os.path.join(args.directory, language)
        splits = prepare(language, directory)
        references = [target for _, target in splits["test"]]
        for name in args.systems.split(","):
            for label, result in run_system(
                name, language, directory, args.seconds, args.extra, splits
            ):
                translations = result.pop("translations")
                row = {"language": language, "system": label, **score(translations, references)}
                row.update({k: v for k, v in result.items() if k != "log"})
                results.append(row)
                print(json.dumps(row), flush=True)
    print(table(results))
    if args.save:
        summary = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "seconds": args.seconds,
            "extra_options": args.extra,
            "results": results,
        }
        with open(os.path.join(DOCS, "real_text_results.json"), "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
