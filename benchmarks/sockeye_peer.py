"""Trains Sockeye 3 (PyTorch), an established NMT toolkit, on a benchmark's
sentence pairs for a given number of seconds and translates its test split,
as the peer our translation trainer is compared with:

    python -m benchmarks.sockeye_peer --splits DIR --work DIR --seconds 60 --setting tuned

`DIR` of `--splits` holds `train.tsv`, `validation.tsv` and `test.tsv`
(`english<TAB>translation` per line, UTF-8). The command prints a JSON summary
and the first translations; `sockeye_translations` returns them all.

Sockeye is no dependency of the package: it is installed on first use into its
own virtual environment, `runs/real_text/sockeye-venv`, and everything that
imports sockeye or sentencepiece runs as a subprocess with that environment's
python (so this module imports the standard library only).

Text is split into pieces by one joint unigram SentencePiece model trained on
both sides of the training split (one vocabulary for both sides, as Sockeye's
`--shared-vocab` wants); Sockeye trains with `--shared-vocab` and tied
source, target and output embeddings, then translates the test sources with
its default decoding (beam search, beam 5), and the pieces are joined back into
text. The model has our model's size (2 + 2 layers, d_model 128, 4 heads, a
512-wide feed-forward), so that the comparison is of recipes, not of sizes.

Two settings: `defaults` keeps Sockeye's own batch size (4096 target words),
optimizer (Adam) and learning rate (0.0002, reduced on plateaus); `tuned` sets
them as for a short budget (`TUNED_FLAGS`). Flags beyond the model and the
settings, each with its reason:

- `--max-seconds` is the budget rounded to whole seconds: Sockeye takes an int.
- `--checkpoint-interval` is `CHECKPOINT_TARGET_WORDS` target words in updates
  (25 for `defaults`, 100 for `tuned`): Sockeye checks `--max-seconds` only at
  checkpoints, so they come after equal work in both settings and training
  stops within one short interval of the budget. Each checkpoint also
  computes the validation perplexity (Sockeye keeps the best parameters by
  it), time that counts in the budget.
- `--decode-and-evaluate 0`: otherwise every checkpoint decodes 500 validation
  sentences with beam search on the CPU, time taken from the training budget
  for metrics that do not steer training (early stopping watches perplexity).
- `--max-num-checkpoint-not-improved` is left at Sockeye's default, None, which
  never stops training early, so the whole budget is spent training.
- `--keep-last-params 1`: bounds the disk the frequent checkpoints take;
  Sockeye keeps the best one (used for translation) regardless.
- `--overwrite-output`: each call trains from scratch instead of resuming a
  model left in the work directory.
- the validation split is cut to its first `VALIDATION_PAIRS` pairs: each
  checkpoint computes its perplexity within the budget.
- `--seed 0`, `--use-cpu`; the CPU threads are left at PyTorch's default (one
  per core), as our trainer leaves its backend's.

Pieces are handed to Sockeye as their SentencePiece ids: Sockeye splits tokens
at every Unicode whitespace character, which pieces may hold (no-break spaces
of French typography, for one).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = os.path.join(ROOT, "runs", "real_text", "sockeye-venv")
REQUIREMENTS = ("sockeye==3.1.34", "sentencepiece")
# Written into the environment after a successful install of REQUIREMENTS.
_INSTALLED_MARKER = "installed-requirements.txt"

SETTINGS = ("defaults", "tuned")
SPLITS = ("train", "validation", "test")
# A joint unigram SentencePiece vocabulary of at most 8000 pieces: enough for
# ~30k pairs of ~40-character messages (2.4M characters), and a soft limit, so
# a smaller corpus gets the fewer pieces it supports.
VOCABULARY_SIZE = 8000

MODEL_FLAGS = (
    "--num-layers", "2:2",
    "--transformer-model-size", "128",
    "--transformer-attention-heads", "4",
    "--transformer-feed-forward-num-hidden", "512",
    "--shared-vocab",
    "--weight-tying-type", "src_trg_softmax",
)  # fmt: skip
# The Transformer paper's schedule: with Sockeye's inv-sqrt-decay the rate is
# 0.088 * min(t / 500, 1) / sqrt(max(t, 500)), 0.088 being d_model ** -0.5 for
# d_model 128; it peaks at 0.088 / sqrt(500) = 0.0039 at update 500.
TUNED_FLAGS = (
    "--batch-size", "1024",
    "--batch-type", "word",
    "--learning-rate-scheduler-type", "inv-sqrt-decay",
    "--learning-rate-warmup", "500",
    "--initial-learning-rate", "0.088",
    "--optimizer-betas", "0.9:0.98",
)  # fmt: skip
# Target words per update: Sockeye's default batch, and the tuned one.
_BATCH_WORDS = {"defaults": 4096, "tuned": 1024}
# Target words trained between checkpoints, where Sockeye checks --max-seconds.
CHECKPOINT_TARGET_WORDS = 102_400
# Validation pairs: Sockeye computes the validation perplexity at every
# checkpoint, in the budget; a dev set of this size (the first pairs of the
# validation split) keeps that to seconds.
VALIDATION_PAIRS = 1000
# Sentences per batch when translating the test split.
TRANSLATION_BATCH_SIZE = 64

_CHECKPOINT_UPDATES = re.compile(r"Checkpoint \[\d+\]\s+Updates=(\d+)")


def sockeye_translations(
    splits_directory: str, work_directory: str, seconds: float, setting: str
) -> dict:
    """Trains Sockeye on the splits of `splits_directory` for `seconds` with
    the flags of `setting` (one of `SETTINGS`), working in `work_directory`.

    Returns `{"translations": [one per line of test.tsv, in order],
    "training_seconds": the training command's wall time, "updates": the
    updates it made, "setting": setting, "command": the training command}`.
    The wall time holds Sockeye's start-up (reading the data, tracing the
    model), which `--max-seconds` does not count, and the updates up to the
    first checkpoint past the budget.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting={setting!r}: expected one of {SETTINGS}")
    python = sockeye_python()
    splits_directory, work_directory = map(os.path.abspath, (splits_directory, work_directory))
    pieces = os.path.join(work_directory, "pieces")
    model = os.path.join(work_directory, f"model-{setting}")
    _run_in_environment(python, "write_piece_files", splits_directory, pieces)
    command = train_command(pieces, model, seconds, setting)
    training_seconds = _run(command)
    return {
        "translations": _translate(python, pieces, model),
        "training_seconds": training_seconds,
        "updates": trained_updates(model),
        "setting": setting,
        "command": command,
    }


def sockeye_python() -> str:
    """The python of Sockeye's virtual environment, created and installed
    first unless a previous install of `REQUIREMENTS` completed."""
    python = os.path.join(ENVIRONMENT, "bin", "python")
    marker = os.path.join(ENVIRONMENT, _INSTALLED_MARKER)
    wanted = "\n".join(REQUIREMENTS)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as file:
            if file.read() == wanted:
                return python
    # The install's progress goes to stderr, leaving stdout to the results.
    subprocess.run([sys.executable, "-m", "venv", ENVIRONMENT], check=True, stdout=sys.stderr)
    subprocess.run([python, "-m", "pip", "install", *REQUIREMENTS], check=True, stdout=sys.stderr)
    with open(marker, "w", encoding="utf-8") as file:
        file.write(wanted)
    return python


def train_command(
    pieces_directory: str, model_directory: str, seconds: float, setting: str
) -> list[str]:
    """The `sockeye-train` command line for `setting`."""
    data = []
    for flag, split in (("--source", "train"), ("--validation-source", "validation")):
        data += [flag, os.path.join(pieces_directory, f"{split}.source")]
        data += [
            flag.replace("source", "target"),
            os.path.join(pieces_directory, f"{split}.target"),
        ]
    return [
        _console_script("sockeye-train"),
        *data,
        "--output", model_directory,
        "--overwrite-output",
        *MODEL_FLAGS,
        *(TUNED_FLAGS if setting == "tuned" else ()),
        "--max-seconds", str(max(1, round(seconds))),
        "--checkpoint-interval", str(CHECKPOINT_TARGET_WORDS // _BATCH_WORDS[setting]),
        "--decode-and-evaluate", "0",
        "--keep-last-params", "1",
        "--seed", "0",
        "--use-cpu",
    ]  # fmt: skip


def trained_updates(model_directory: str) -> int:
    """The updates Sockeye had made at its last checkpoint, from its log;
    training stops right after a checkpoint, so these are all of them."""
    with open(os.path.join(model_directory, "log"), encoding="utf-8") as file:
        updates = _CHECKPOINT_UPDATES.findall(file.read())
    return int(updates[-1]) if updates else 0


def _translate(python: str, pieces_directory: str, model_directory: str) -> list[str]:
    """Sockeye's translations of the test sources, as text, one per source."""
    translated = os.path.join(model_directory, "test.translated")
    decoded = os.path.join(model_directory, "test.translations.json")
    command = [
        _console_script("sockeye-translate"),
        "--models", model_directory,
        "--input", os.path.join(pieces_directory, "test.source"),
        "--output", translated,
        "--batch-size", str(TRANSLATION_BATCH_SIZE),
        "--use-cpu",
    ]  # fmt: skip
    _run(command)
    _run_in_environment(python, "write_decoded_translations", pieces_directory, translated, decoded)
    with open(decoded, encoding="utf-8") as file:
        translations = json.load(file)
    sources = _read_lines(os.path.join(pieces_directory, "test.source"))
    if len(translations) != len(sources):
        raise RuntimeError(
            f"Sockeye returned {len(translations)} translations for {len(sources)} test sources"
        )
    return translations


def _console_script(name: str) -> str:
    return os.path.join(ENVIRONMENT, "bin", name)


def _run(command: list[str]) -> float:
    """Runs `command`, raising with the end of its output if it fails; its
    wall seconds."""
    start = time.perf_counter()
    # From the repository root, where Sockeye's environment imports this module.
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode:
        raise RuntimeError(f"{os.path.basename(command[0])} failed:\n{run.stderr[-3000:]}")
    return seconds


def _run_in_environment(python: str, function: str, *arguments: str) -> None:
    """Calls `function` of this module with `arguments` under Sockeye's
    environment's `python`."""
    call = f"import sys; from benchmarks.sockeye_peer import {function}; {function}(*sys.argv[1:])"
    _run([python, "-c", call, *arguments])


def write_piece_files(splits_directory: str, pieces_directory: str) -> None:
    """Trains the joint SentencePiece model (`pieces.model`) on both sides of
    the training split and writes every split's sides as lines of piece ids
    (`train.source`, `train.target`, ...). Runs under Sockeye's environment."""
    import sentencepiece

    os.makedirs(pieces_directory, exist_ok=True)
    pairs = {split: _read_pairs(os.path.join(splits_directory, f"{split}.tsv")) for split in SPLITS}
    pairs["validation"] = pairs["validation"][:VALIDATION_PAIRS]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([text for pair in pairs["train"] for text in pair]),
        model_prefix=os.path.join(pieces_directory, "pieces"),
        model_type="unigram",
        vocab_size=VOCABULARY_SIZE,
        hard_vocab_limit=False,
        # Every character and its exact spelling kept: translations are
        # scored against the references' characters.
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(pieces_directory, "pieces.model")
    )
    for split, split_pairs in pairs.items():
        for index, side in enumerate(("source", "target")):
            pieces = processor.encode([pair[index] for pair in split_pairs])
            path = os.path.join(pieces_directory, f"{split}.{side}")
            with open(path, "w", encoding="utf-8") as file:
                file.writelines(" ".join(map(str, ids)) + "\n" for ids in pieces)


def write_decoded_translations(pieces_directory: str, translated: str, decoded: str) -> None:
    """Writes Sockeye's translations `translated` (lines of piece ids) as a
    JSON list of texts to `decoded`; tokens that are no ids (`<unk>`) are
    left out. Runs under Sockeye's environment."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(pieces_directory, "pieces.model")
    )
    translations = [
        processor.decode([int(token) for token in line.split() if token.isdigit()])
        for line in _read_lines(translated)
    ]
    with open(decoded, "w", encoding="utf-8") as file:
        json.dump(translations, file, ensure_ascii=False)


def _read_pairs(path: str) -> list[tuple[str, str]]:
    """`(english, translation)` per line of a split file."""
    return [line.partition("\t")[::2] for line in _read_lines(path)]


def _read_lines(path: str) -> list[str]:
    """The lines of a file, split at newlines only."""
    with open(path, encoding="utf-8", newline="") as file:
        lines = file.read().split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", required=True, help="folder of train/validation/test.tsv")
    parser.add_argument("--work", required=True, help="folder for pieces and models")
    parser.add_argument("--seconds", type=float, required=True, help="training budget")
    parser.add_argument("--setting", choices=SETTINGS, default="tuned")
    args = parser.parse_args()
    result = sockeye_translations(args.splits, args.work, args.seconds, args.setting)
    translations = result.pop("translations")
    print(json.dumps({**result, "test_sentences": len(translations)}, indent=2))
    for translation in translations[:5]:
        print(translation)


if __name__ == "__main__":
    main()
