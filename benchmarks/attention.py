"""Attention alone: our `MultiHeadSelfAttention` against
`keras.layers.MultiHeadAttention`, forward and backward.

Runs under the backend in KERAS_BACKEND and prints one JSON line:

    KERAS_BACKEND=torch python -m benchmarks.attention

Each layer sits in a one-layer model trained with `train_on_batch` (plain
SGD, mean squared error against zeros): a forward pass, the backward pass
and a small weight update, compiled as `fit` compiles it. Both layers get
the same heads, widths, padded batches and padding mask.
"""

import argparse
import json

import keras
import numpy as np

from benchmarks.common import interleaved_times, machine, rates
from keras_transformer import MultiHeadSelfAttention


def ours(config):
    return MultiHeadSelfAttention(config["heads"])


def keras_reference(config):
    return keras.layers.MultiHeadAttention(config["heads"], config["d_model"] // config["heads"])


BUILDERS = {"ours": ours, "keras": keras_reference}


def model_around(name, config, length):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((length, config["d_model"]))
    padding = keras.Input((length,), dtype="bool")
    layer = BUILDERS[name](config)
    key_padding = padding[:, None, :]  # (batch, 1, key_len): the same mask for both
    if name == "ours":
        outputs = layer(inputs, attention_mask=key_padding)
    else:
        outputs = layer(inputs, inputs, attention_mask=key_padding)
    model = keras.Model([inputs, padding], outputs)
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="64,256,1024")
    parser.add_argument("--tokens", type=int, default=16384, help="batch x length per step")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = {"d_model": args.d_model, "heads": args.heads}
    rng = np.random.default_rng(0)
    results = {}
    for length in map(int, args.lengths.split(",")):
        batch = max(1, args.tokens // length)
        x = rng.normal(size=(batch, length, args.d_model)).astype("float32")
        padding = np.arange(length) < rng.integers(length // 2, length + 1, (batch, 1))
        y = np.zeros_like(x)
        models = {name: model_around(name, config, length) for name in BUILDERS}
        times = interleaved_times(
            {
                name: (lambda m=model, x=x, p=padding, y=y: m.train_on_batch([x, p], y))
                for name, model in models.items()
            },
            args.repeats,
        )
        results[str(length)] = {
            name: rates(seconds, batch * length) for name, seconds in times.items()
        }
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "machine": machine(),
                "config": vars(args),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
