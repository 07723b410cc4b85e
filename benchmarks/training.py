"""Training speed and memory: our `Transformer` against the same architecture
built from keras-nlp's layers, both trained with `model.fit`.

Runs under the backend in KERAS_BACKEND and prints one JSON line:

    KERAS_BACKEND=jax python -m benchmarks.training [--size base|large]

Both models get the same sizes, dropout (unseeded in both, the default),
optimizer (the paper's Adam and schedule), loss and batches. Their one-epoch
`fit` calls run in turns after a warm-up, and every step of every call is
timed; rates are at the median step time. Peak memory is the resident set of
a separate process that builds and trains one model only. Model FLOPs
utilisation is the counted matmul FLOPs of a training step (3x the forward
pass) per second over this machine's measured float32 matmul rate, whatever
`--dtype-policy` says.
"""

import argparse
import json
import subprocess
import sys
import time

import keras
import numpy as np

from benchmarks.common import (
    interleaved_measurements,
    machine,
    matmul_flops_per_second,
    rates,
)
from keras_transformer import Transformer
from keras_transformer.training import paper_optimizer

SIZES = {
    "base": {"d_model": 256, "layers": 2, "heads": 4, "ff_dim": 1024},
    "large": {"d_model": 512, "layers": 3, "heads": 8, "ff_dim": 2048},
}


def ours(config):
    return Transformer(
        config["vocabulary"],
        config["vocabulary"],
        num_layers=config["layers"],
        d_model=config["d_model"],
        num_heads=config["heads"],
        ff_dim=config["ff_dim"],
        dropout=0.1,
    )


def keras_nlp_reference(config):
    """The same encoder-decoder from keras-nlp's layers (learned positions,
    as `TokenAndPositionEmbedding` has no sinusoidal option)."""
    import keras_nlp

    d_model, length = config["d_model"], config["length"]
    source = keras.Input((None,), dtype="int32", name="encoder_inputs")
    target = keras.Input((None,), dtype="int32", name="decoder_inputs")

    def embed(ids):
        embedded = keras_nlp.layers.TokenAndPositionEmbedding(
            config["vocabulary"], length, d_model, mask_zero=True
        )(ids)
        return keras.layers.Dropout(0.1)(embedded)

    x = embed(source)
    for _ in range(config["layers"]):
        x = keras_nlp.layers.TransformerEncoder(config["ff_dim"], config["heads"], dropout=0.1)(x)
    y = embed(target)
    for _ in range(config["layers"]):
        y = keras_nlp.layers.TransformerDecoder(config["ff_dim"], config["heads"], dropout=0.1)(
            y, x
        )
    return keras.Model([source, target], keras.layers.Dense(config["vocabulary"])(y))


BUILDERS = {"ours": ours, "keras_nlp": keras_nlp_reference}


def batches(config, steps):
    """Random ids; each row's real length is drawn in [length / 2, length]."""
    rng = np.random.default_rng(0)
    rows, length = config["batch"] * steps, config["length"]

    def ids():
        values = rng.integers(3, config["vocabulary"], (rows, length)).astype("int32")
        lengths = rng.integers(length // 2, length + 1, rows)
        return np.where(np.arange(length) < lengths[:, None], values, 0).astype("int32")

    source, target = ids(), ids()
    labels = np.concatenate([target[:, 1:], np.zeros((rows, 1), "int32")], axis=1)
    return [source, target], labels


def compiled(name, config):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name](config)
    model.compile(
        optimizer=paper_optimizer(config["d_model"], warmup_steps=4000),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    return model


class StepTimer(keras.callbacks.Callback):
    """Seconds of each `fit` step, from its start to its loss on the host:
    the steps without `fit`'s set-up and tear-down (creating and deleting
    the data iterator, which on TensorFlow can take seconds)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])  # waits for the step to finish
        self.seconds.append(time.perf_counter() - self.start)


def fit(model, inputs, labels, batch):
    """One epoch of `fit` over `inputs`; returns the seconds of each step."""
    timer = StepTimer()
    if isinstance(model, Transformer):
        inputs = {"encoder_inputs": inputs[0], "decoder_inputs": inputs[1]}
    model.fit(
        inputs, labels, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer]
    )
    return timer.seconds


def training_flops(config):
    """Matmul FLOPs of one training step at full length: 3x the forward."""
    d, ff, layers, vocabulary = (config[k] for k in ("d_model", "ff_dim", "layers", "vocabulary"))
    n = config["batch"] * config["length"]  # tokens on each side
    length = config["length"]
    projections = 2 * n * (4 * d * d + 2 * d * ff)  # q, k, v, output and feed-forward
    attention = 2 * 2 * n * length * d  # scores and weighted values
    encoder = layers * (projections + attention)
    cross = 2 * n * 4 * d * d + attention
    decoder = layers * (projections + attention + cross)
    output = 2 * n * d * vocabulary
    return 3 * (encoder + decoder + output)


def peak_resident_mib():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not
    inherited from the parent process across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory_mib(name, arguments):
    """Peak resident memory of a process that trains only `name`."""
    command = [sys.executable, "-m", "benchmarks.training", "--memory-of", name, *arguments]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(run.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="base")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=8, help="fit steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dtype-policy", default="float32", help='of both models, e.g. "mixed_bfloat16" on GPU'
    )
    parser.add_argument("--memory-of", choices=BUILDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.dtype_policy)
    config = {
        "size": args.size,
        **SIZES[args.size],
        **{k: getattr(args, k) for k in ("batch", "length", "vocabulary", "dtype_policy")},
    }
    inputs, labels = batches(config, args.steps)

    if args.memory_of:
        fit(compiled(args.memory_of, config), inputs, labels, args.batch)
        print(peak_resident_mib())
        return

    models = {name: compiled(name, config) for name in BUILDERS}
    calls = interleaved_measurements(
        {
            name: (lambda m=model: fit(m, inputs, labels, args.batch))
            for name, model in models.items()
        },
        args.repeats,
    )
    step_times = {name: np.concatenate(seconds) for name, seconds in calls.items()}
    target_tokens_per_step = np.count_nonzero(labels) / args.steps
    results = {name: rates(seconds, target_tokens_per_step) for name, seconds in step_times.items()}
    step_flops = training_flops(config)
    matmul_rate = matmul_flops_per_second()
    for name, seconds in step_times.items():
        results[name]["mfu"] = step_flops / float(np.median(seconds)) / matmul_rate
    arguments = ["--size", args.size, "--batch", str(args.batch), "--length", str(args.length)]
    arguments += ["--vocabulary", str(args.vocabulary), "--dtype-policy", args.dtype_policy]
    for name in BUILDERS:
        results[name]["peak_memory_mib"] = peak_memory_mib(name, arguments + ["--steps", "2"])
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "machine": machine(),
                "config": {**config, "steps": args.steps, "repeats": args.repeats},
                "matmul_gflops": matmul_rate / 1e9,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
