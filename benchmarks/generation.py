"""Decoding speed: cached greedy and beam search against full recomputation.

Runs under the backend in KERAS_BACKEND and prints one JSON line:

    KERAS_BACKEND=jax python -m benchmarks.generation

Full recomputation is what decoding without caches costs: at every step the
whole model (encoder and decoder) runs on the fixed-size target buffer, in
one compiled function, and the logits at the current position are kept.
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

from benchmarks.common import interleaved_times, rates
from keras_transformer import Transformer

START, END = 1, 2


def build_model(args):
    keras.utils.set_random_seed(0)
    return Transformer(
        args.vocabulary,
        args.vocabulary,
        num_layers=args.layers,
        d_model=args.d_model,
        num_heads=args.heads,
        ff_dim=4 * args.d_model,
        dropout=0.0,
    )


def keras_nlp_bart_greedy(args, sources, max_length):
    """keras-nlp's `BartSeq2SeqLM.generate` (cached greedy) on a randomly
    initialised backbone of the same size, token ids in, no stop token, so
    that every row decodes `max_length - 1` tokens."""
    import keras_nlp

    keras.utils.set_random_seed(0)
    backbone = keras_nlp.models.BartBackbone(
        vocabulary_size=args.vocabulary,
        num_layers=args.layers,
        num_heads=args.heads,
        hidden_dim=args.d_model,
        intermediate_dim=4 * args.d_model,
        dropout=0.0,
        max_sequence_length=max(args.source_length, max_length),
    )
    model = keras_nlp.models.BartSeq2SeqLM(backbone=backbone, preprocessor=None)
    model.compile(sampler="greedy")
    decoder_ids = np.zeros((len(sources), max_length), "int32")
    decoder_ids[:, 0] = START
    inputs = {
        "encoder_token_ids": sources,
        "encoder_padding_mask": sources != 0,
        "decoder_token_ids": decoder_ids,
        "decoder_padding_mask": decoder_ids != 0,
    }
    return lambda: model.generate(inputs, stop_token_ids=None)


def recompute_greedy(model, sources, max_length):
    """Greedy decoding that re-runs the whole model at every step."""
    buffer = np.zeros((len(sources), max_length), "int32")
    buffer[:, 0] = START
    for index in range(1, max_length):
        logits = model.predict_on_batch({"encoder_inputs": sources, "decoder_inputs": buffer})
        logits = keras.ops.convert_to_numpy(logits)[:, index - 1, 1:]
        buffer[:, index] = 1 + np.argmax(logits, axis=-1)
    return buffer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per row")
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocabulary", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = build_model(args)
    rng = np.random.default_rng(0)
    sources = rng.integers(3, args.vocabulary, (args.batch, args.source_length)).astype("int32")
    max_length = args.tokens + 1
    # An end id the untrained model never picks keeps every row decoding all
    # `tokens` steps: the logits of id 2 are pushed down by its output bias.
    model.output_projection.bias.assign(
        keras.ops.convert_to_tensor(np.where(np.arange(args.vocabulary) == END, -1e4, 0.0))
    )

    def generate(sampler):
        return lambda: model.generate(sources, START, END, max_length, sampler=sampler)

    candidates = {
        "cached greedy": generate("greedy"),
        "cached beam 4": generate("beam"),
        "full recomputation greedy": lambda: recompute_greedy(model, sources, max_length),
        "keras-nlp BartSeq2SeqLM greedy": keras_nlp_bart_greedy(args, sources, max_length),
    }
    # The first call compiles (XLA on TensorFlow and JAX) or traces (torch).
    first_call = {}
    for name in ("cached greedy", "keras-nlp BartSeq2SeqLM greedy"):
        start = time.perf_counter()
        candidates[name]()
        first_call[name] = time.perf_counter() - start
    tokens = args.batch * args.tokens
    results = {
        name: rates(times, tokens)
        for name, times in interleaved_times(candidates, args.repeats).items()
    }
    summary = {
        "backend": keras.backend.backend(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "config": vars(args),
        "results": results,
        "first_call_seconds": first_call,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
