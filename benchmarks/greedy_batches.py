"""Greedy translation in batches, with the rows that have ended taken out of
the batch (`ShrinkingGreedyDecoder`, what `Transformer.generate` uses) and with
every row decoded until the batch's last one ends (`CompiledDecoder` over
keras-nlp's `GreedySampler`), side by side in one process:

    KERAS_BACKEND=jax python -m benchmarks.greedy_batches [--model RUN]
        [--sentences 200] [--batches 1 8 32 64] [--repeats 3] [--save]

`Translator.translate` of the first `--sentences` sources of the run's test
split (real sentences: their lengths, and the translations that never end,
are what the difference depends on), every shape compiled first, the two
decoders taken in turns. Also the milliseconds of one decoding step by rows
(`--step-rows`): what batching can give at most, whatever the decoder does
between steps. Prints one JSON line; `--save` adds it to
docs/greedy_batches_results.json under the backend's name.
"""

import argparse
import json
import os

import keras
import numpy as np

from benchmarks.common import interleaved_times, machine, rates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "greedy_batches_results.json")
DEFAULT_MODEL = os.path.join(ROOT, "runs", "real_text", "fr", "ours_bounded")


def decoders_compared(translator, sentences, batch_size, repeats):
    """Sentences/s of `translator.translate` with each greedy decoder, each
    with its own cache of compiled decoders (warmed by the first call)."""
    from keras_transformer.models import decoding, transformer

    decoder_classes = {
        "every_row_to_the_end": decoding.CompiledDecoder,
        "ended_rows_out": decoding.ShrinkingGreedyDecoder,
    }
    model = translator.transformer
    caches = {name: decoding.DecoderCache(model.max_cached_decoders) for name in decoder_classes}

    def translate_with(name):
        def translate():
            model.__dict__["_decoder_cache"] = caches[name]
            transformer.ShrinkingGreedyDecoder = decoder_classes[name]  # the class it makes
            try:
                translator.translate(sentences, batch_size=batch_size)
            finally:
                transformer.ShrinkingGreedyDecoder = decoding.ShrinkingGreedyDecoder

        return translate

    times = interleaved_times({name: translate_with(name) for name in decoder_classes}, repeats)
    return {name: rates(seconds, len(sentences)) for name, seconds in times.items()}


def step_ms_by_rows(translator, sentences, rows_counts, repeats):
    """Milliseconds of one greedy step of each row count: the difference
    between calls of 64 and of 16 steps on 16-token sources, in which no row
    ends (the end id is the vocabulary's last, never produced here: checked)."""
    from keras_transformer.translation.tokenizers import START_ID

    model = translator.transformer
    never = model.target_vocabulary_size - 1
    sources = translator.encode_sources(sentences[: max(rows_counts)])[:, :16]  # (rows, 16)

    def decode(rows, steps):
        def call():
            outputs = model.generate(sources[:rows], START_ID, never, max_length=steps + 1)
            if (outputs == never).any():
                raise RuntimeError(f"a row produced the id {never} meant never to end")

        return call

    measured = {}
    for rows in rows_counts:
        times = interleaved_times({steps: decode(rows, steps) for steps in (16, 64)}, repeats)
        short, long = (float(np.median(times[steps])) for steps in (16, 64))
        measured[rows] = (long - short) / 48 * 1000
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="run directory")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--step-rows", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    from keras_transformer.translation import load_translator

    translator = load_translator(args.model)
    test_split = os.path.join(os.path.dirname(args.model), "scored_splits", "test.tsv")
    with open(test_split, encoding="utf-8") as file:
        sentences = [line.split("\t")[0] for line in file.read().splitlines()[: args.sentences]]
    by_batch = {}
    for batch_size in args.batches:
        by_batch[batch_size] = measured = decoders_compared(
            translator, sentences, batch_size, args.repeats
        )
        ratio = (
            measured["ended_rows_out"]["per_second"]
            / measured["every_row_to_the_end"]["per_second"]
        )
        measured["ratio"] = ratio
    result = {
        "backend": keras.config.backend(),
        "machine": machine(),
        "model": os.path.relpath(os.path.abspath(args.model), ROOT),
        "sentences": len(sentences),
        "sentences_per_s_by_batch": by_batch,
        "step_ms_by_rows": step_ms_by_rows(translator, sentences, args.step_rows, 5),
    }
    print(json.dumps(result))
    if args.save:
        saved = {}
        if os.path.exists(RESULTS):
            with open(RESULTS, encoding="utf-8") as file:
                saved = json.load(file)
        saved[result["backend"]] = result
        with open(RESULTS, "w", encoding="utf-8") as file:
            json.dump(saved, file, indent=2)


if __name__ == "__main__":
    main()
