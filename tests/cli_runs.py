"""Shared by the tests of the `keras-transformer` command."""

import os
import subprocess
import sys

from tests.helpers import BACKEND

TINY_MODEL = ["--num-layers", "1", "--d-model", "16", "--ff-dim", "32"]
# 300 pairs split 240 / 30 / 30 in batches of 1024 tokens: a few batch shapes,
# so each backend compiles a few training steps; the test split decoded
# greedily (one compiled decoder fewer than beam search).
TINY = ["--epochs", "2", "--batch-tokens", "1024", "--beams", "1", *TINY_MODEL]
DISTRIBUTED_BACKENDS = ("jax", "tensorflow")


def command(*args):
    return [sys.executable, "-m", "keras_transformer_cli", *args]


def run(*args, **kwargs):
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    return subprocess.run(command(*args), capture_output=True, text=True, env=environment, **kwargs)


def write_pairs(path, pairs):
    path.write_text("".join(f"{source}\t{target}\n" for source, target in pairs), "utf-8")
    return str(path)
