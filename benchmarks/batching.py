"""Padding and training speed of two ways to batch the same pairs, with the
trainer's default model and tokenizers:

- rows: 64 pairs a batch, every array padded to the longest pair of the
  corpus (`training_arrays`);
- tokens: `TokenBatches` of about `--batch-tokens` tokens, pairs grouped by
  length.

    KERAS_BACKEND=jax python -m benchmarks.batching [--tasks numbers,morphology]

Prints one JSON line per task and way: the padding share of the batches, the
seconds of the first epoch (compiles included) and the real target tokens per
second of the second.
"""

import argparse
import json
import tempfile
import time

import keras
import numpy as np

from benchmarks.tasks import task_pairs
from keras_transformer.data import number_pairs
from keras_transformer.translation.batching import TokenBatches, TokenCorpus
from keras_transformer.translation.options import TrainingOptions
from keras_transformer.translation.run import build_transformer
from keras_transformer.translation.tokenizers import train_tokenizers, training_arrays


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.started]


def pairs_of(task: str, count: int):
    if task == "numbers":
        return number_pairs(count, seed=0)
    return task_pairs(task, count)


def measure(task: str, count: int, batch_tokens: int) -> list[dict]:
    options = TrainingOptions(batch_tokens=batch_tokens)
    pairs = pairs_of(task, count)
    tokenizers = train_tokenizers(*zip(*pairs, strict=True))
    inputs, labels, _ = training_arrays(*tokenizers, pairs, options.max_length)
    real_targets = int(np.count_nonzero(labels))
    real = int(np.count_nonzero(inputs["encoder_inputs"])) + real_targets
    with tempfile.TemporaryDirectory() as directory:
        corpus = TokenCorpus.build(directory, *tokenizers, pairs, options.max_length)
        batches = TokenBatches(corpus, batch_tokens, options.max_length, seed=0)
        ways = {
            "rows": (
                (inputs, labels),
                {"batch_size": 64},
                1 - real / (inputs["encoder_inputs"].size + labels.size),
            ),
            "tokens": ((batches.fit_input(),), {}, batches.padding_share()),
        }
        results = []
        for way, (data, fit_arguments, padding) in ways.items():
            keras.utils.set_random_seed(0)
            model = build_transformer(options, *tokenizers, steps_per_epoch=batches.num_batches)
            times = EpochTimes()
            model.fit(*data, **fit_arguments, epochs=2, callbacks=[times], verbose=0)
            results.append(
                {
                    "task": task,
                    "way": way,
                    "backend": keras.backend.backend(),
                    "pairs": count,
                    "padding_share": round(padding, 3),
                    "first_epoch_seconds": round(times.seconds[0], 1),
                    "target_tokens_per_second": round(real_targets / times.seconds[1]),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="numbers,spelled_digits,transliteration,morphology")
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--batch-tokens", type=int, default=TrainingOptions.batch_tokens)
    args = parser.parse_args()
    for task in args.tasks.split(","):
        for result in measure(task, args.pairs, args.batch_tokens):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
