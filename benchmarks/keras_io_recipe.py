"""A baseline: the keras.io example "English-to-Spanish translation with KerasHub".

Its recipe re-implemented, trained on the given splits for a fixed number of
seconds, and its translations of the test split.

    python -m benchmarks.keras_io_recipe --splits DIR --work DIR --seconds 60

`DIR` of `--splits` holds `train.tsv`, `validation.tsv` and `test.tsv`
(`english<TAB>translation` lines, UTF-8, no header). The run trains under
Keras on JAX and writes `keras_io_recipe.json` into the `--work` folder;
`recipe_translations` runs it in a subprocess, so that the calling process
keeps its own Keras backend, and returns what it wrote.

The recipe: both sides lowercased; one WordPiece vocabulary per side
computed on the training pairs with `compute_word_piece_vocabulary`
(reserved tokens `[PAD] [UNK] [START] [END]`); English packed to
MAX_SEQUENCE_LENGTH tokens, the target wrapped in `[START] ... [END]` and
packed to MAX_SEQUENCE_LENGTH + 1 tokens, longer sequences truncated by the
packers; `TokenAndPositionEmbedding` (no padding mask, as in the example's
code), one `TransformerEncoder`, one `TransformerDecoder`, dropout 0.5 and a
softmax `Dense`; `rmsprop` on sparse categorical cross-entropy over every
position, padding included; greedy decoding with `GreedySampler` from a
`[START]` prompt of MAX_SEQUENCE_LENGTH tokens, stopping at `[END]`.

Its translations are what the example prints: the WordPiece detokenizer's
text, which joins tokens with spaces (punctuation comes out as separate
words) and is lowercase, with `[PAD]`, `[START]` and `[END]` removed and the
ends stripped; `[UNK]` stays.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

# Keras, KerasHub, TensorFlow and JAX are imported where used, so that
# importing this module leaves the caller's choice of Keras backend alone.
if TYPE_CHECKING:
    import jax
    import keras
    import keras_hub
    import tensorflow as tf

BATCH_SIZE = 64
MAX_SEQUENCE_LENGTH = 40
ENG_VOCAB_SIZE = 15000
SPA_VOCAB_SIZE = 15000
EMBED_DIM = 256
INTERMEDIATE_DIM = 2048
NUM_HEADS = 8
RESERVED_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]"]
# Removed from the detokenized text, as the example does.
PRINTED_AWAY_TOKENS = ("[PAD]", "[START]", "[END]")
# The decoder's last layers, by name: its features and its output.
FEATURES_LAYER = "decoder_dropout"
OUTPUT_LAYER = "next_token_probabilities"

BACKEND = "jax"
# `fit` runs until the time budget stops it.
MANY_EPOCHS = 1_000_000
RESULT_FILE = "keras_io_recipe.json"
SPLIT_FILES = ("train.tsv", "validation.tsv", "test.tsv")
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEVIATIONS = [
    "data: the sentence pairs of the given train/validation/test splits instead of "
    "the Anki spa-eng pairs, shuffled and split 70/15/15, of the example; the target "
    "language is whatever the splits hold",
    "training length: a wall-clock budget instead of EPOCHS = 1: `fit` is given a "
    "huge epoch count and a callback stops it at the end of the batch during which "
    "the budget ran out; the clock runs from each epoch's start to its last batch's "
    "end (compilation and the first pass through the tf.data pipeline included, "
    "the validation passes at epoch ends left out)",
    "backend: Keras on JAX (tf.data, on the CPU, for the preprocessing only); the "
    "example names no backend, so it runs on Keras's default, TensorFlow",
    "decoding: the test sentences in batches of BATCH_SIZE (the last one padded with "
    "empty sentences) instead of one at a time, each row cut after its first [END] "
    "before detokenizing, which gives what one-at-a-time decoding gives",
    "decoding speed: the sampler's loop is compiled once (jax.jit, stateless calls); "
    "the encoder runs once per batch instead of at every step, and the output layer "
    "at the decoded position only instead of at all MAX_SEQUENCE_LENGTH positions "
    "(the decoder still runs over the whole prompt at every step, as in the "
    "example); the probabilities at the decoded position are the same",
    "decoding: English inputs longer than MAX_SEQUENCE_LENGTH tokens are truncated by "
    "the training packer; the example pads them but does not truncate them, and its "
    "position embedding fails on them",
    "decoding: generated ids past the computed target vocabulary (which can be "
    "smaller than the output layer's SPA_VOCAB_SIZE units) are detokenized as [UNK]; "
    "the example's detokenizer fails on them",
    "evaluation: every test sentence is translated and returned, none printed; the "
    "example prints two random ones and scores ROUGE-1/ROUGE-2 on 30",
    "text files: lines are split at their first tab; the example splits at every tab",
]


def recipe_translations(splits_directory: str, work_directory: str, seconds: float) -> dict:
    """Trains the recipe on `splits_directory` for `seconds` in a subprocess
    under JAX and returns `{"translations", "training_seconds", "steps",
    "epochs", "deviations"}`, one translation per line of `test.tsv`."""
    os.makedirs(work_directory, exist_ok=True)
    result_path = os.path.join(work_directory, RESULT_FILE)
    if os.path.exists(result_path):
        os.remove(result_path)
    command = [
        sys.executable,
        "-m",
        "benchmarks.keras_io_recipe",
        "--splits",
        os.path.abspath(splits_directory),
        "--work",
        os.path.abspath(work_directory),
        "--seconds",
        str(seconds),
    ]
    environment = dict(os.environ, KERAS_BACKEND=BACKEND)
    subprocess.run(command, env=environment, cwd=REPOSITORY_ROOT, check=True)
    with open(result_path, encoding="utf-8") as file:
        return json.load(file)


def read_pairs(path: str) -> list[tuple[str, str]]:
    """`(english, translation)` of each line of a split, lowercased as the
    example lowercases its pairs."""
    pairs = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            english, translation = line.rstrip("\n").split("\t", 1)
            pairs.append((english.lower(), translation.lower()))
    return pairs


class TrainingClock:
    """Training wall time against a budget, counted from each epoch's start
    to the end of its latest batch, so that validation passes are left out;
    stops the model's training once the budget is spent."""

    def __init__(self, budget_seconds: float):
        self.budget_seconds = budget_seconds
        self.seconds = 0.0
        self.steps = 0
        self._seconds_before_epoch = 0.0
        self._epoch_start = 0.0

    def start_epoch(self) -> None:
        self._seconds_before_epoch = self.seconds
        self._epoch_start = time.perf_counter()

    def end_batch(self, model: keras.Model) -> None:
        self.steps += 1
        self.seconds = self._seconds_before_epoch + time.perf_counter() - self._epoch_start
        if self.seconds >= self.budget_seconds:
            model.stop_training = True

    def callback(self, model: keras.Model) -> keras.callbacks.Callback:
        """A Keras callback that runs this clock during `model.fit`; it
        handles every batch synchronously, after the batch has finished."""
        import keras

        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: self.start_epoch(),
            on_train_batch_end=lambda batch, logs: self.end_batch(model),
        )


def word_piece_tokenizer(
    texts: list[str], vocabulary_size: int
) -> keras_hub.tokenizers.WordPieceTokenizer:
    """A `WordPieceTokenizer` over a vocabulary computed on `texts`."""
    import keras_hub
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(texts)
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        dataset.batch(1000).prefetch(2),
        vocabulary_size=vocabulary_size,
        reserved_tokens=RESERVED_TOKENS,
    )
    return keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=False)


def source_packer(
    eng_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
) -> keras_hub.layers.StartEndPacker:
    """Pads (or truncates) English token ids to MAX_SEQUENCE_LENGTH."""
    import keras_hub

    return keras_hub.layers.StartEndPacker(
        sequence_length=MAX_SEQUENCE_LENGTH, pad_value=eng_tokenizer.token_to_id("[PAD]")
    )


def target_packer(
    spa_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
) -> keras_hub.layers.StartEndPacker:
    """Wraps target token ids in [START] ... [END] and pads (or truncates)
    them to MAX_SEQUENCE_LENGTH + 1, for inputs and shifted labels."""
    import keras_hub

    return keras_hub.layers.StartEndPacker(
        sequence_length=MAX_SEQUENCE_LENGTH + 1,
        start_value=spa_tokenizer.token_to_id("[START]"),
        end_value=spa_tokenizer.token_to_id("[END]"),
        pad_value=spa_tokenizer.token_to_id("[PAD]"),
    )


def make_dataset(
    pairs: list[tuple[str, str]],
    eng_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
    spa_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
) -> tf.data.Dataset:
    """The example's tf.data pipeline: batched, tokenized, packed, then
    shuffled by batch, prefetched and cached."""
    import tensorflow as tf

    pack_source = source_packer(eng_tokenizer)
    pack_target = target_packer(spa_tokenizer)

    def preprocess_batch(eng, spa):
        eng = pack_source(eng_tokenizer(eng))
        spa = pack_target(spa_tokenizer(spa))
        return {"encoder_inputs": eng, "decoder_inputs": spa[:, :-1]}, spa[:, 1:]

    eng_texts = [english for english, _ in pairs]
    spa_texts = [translation for _, translation in pairs]
    dataset = tf.data.Dataset.from_tensor_slices((eng_texts, spa_texts))
    dataset = dataset.batch(BATCH_SIZE)
    dataset = dataset.map(preprocess_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.shuffle(2048).prefetch(16).cache()


def build_transformer() -> tuple[keras.Model, keras.Model, keras.Model]:
    """The example's model: `(transformer, encoder, decoder)`, where
    `encoder` maps English tokens to their encoding, `decoder` maps target
    tokens and an encoding to next-token probabilities, and `transformer`,
    built of the same layers, maps `[encoder_inputs, decoder_inputs]` to
    next-token probabilities."""
    import keras
    import keras_hub

    encoder_inputs = keras.Input(shape=(None,), name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=ENG_VOCAB_SIZE,
        sequence_length=MAX_SEQUENCE_LENGTH,
        embedding_dim=EMBED_DIM,
    )(encoder_inputs)
    encoder_outputs = keras_hub.layers.TransformerEncoder(
        intermediate_dim=INTERMEDIATE_DIM, num_heads=NUM_HEADS
    )(inputs=x)
    encoder = keras.Model(encoder_inputs, encoder_outputs)

    decoder_inputs = keras.Input(shape=(None,), name="decoder_inputs")
    encoded_seq_inputs = keras.Input(shape=(None, EMBED_DIM), name="decoder_state_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=SPA_VOCAB_SIZE,
        sequence_length=MAX_SEQUENCE_LENGTH,
        embedding_dim=EMBED_DIM,
    )(decoder_inputs)
    x = keras_hub.layers.TransformerDecoder(intermediate_dim=INTERMEDIATE_DIM, num_heads=NUM_HEADS)(
        decoder_sequence=x, encoder_sequence=encoded_seq_inputs
    )
    x = keras.layers.Dropout(0.5, name=FEATURES_LAYER)(x)
    probabilities = keras.layers.Dense(SPA_VOCAB_SIZE, activation="softmax", name=OUTPUT_LAYER)(x)
    decoder = keras.Model([decoder_inputs, encoded_seq_inputs], probabilities)

    transformer = keras.Model(
        [encoder_inputs, decoder_inputs],
        decoder([decoder_inputs, encoder_outputs]),
        name="transformer",
    )
    return transformer, encoder, decoder


def variable_values(layer: keras.Layer) -> tuple[list, list]:
    """The current values of a layer's trainable and non-trainable
    variables, in the order its `stateless_call` takes them."""
    return (
        [variable.value for variable in layer.trainable_variables],
        [variable.value for variable in layer.non_trainable_variables],
    )


def greedy_decoder(
    encoder: keras.Model,
    decoder: keras.Model,
    spa_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
) -> Callable[[jax.Array], jax.Array]:
    """A function from a batch of packed English tokens to the example's
    greedy decoding of it: from `[START]` followed by padding to
    MAX_SEQUENCE_LENGTH tokens, one token at a time with `GreedySampler`,
    the decoder run over the whole prompt at each step, until every row has
    produced [END]. The encoder runs once per batch and the output layer at
    the decoded position only, which gives the probabilities the example's
    call of the whole model gives there; the loop is compiled once."""
    import jax
    import keras
    import keras_hub
    from keras import ops

    features = keras.Model(decoder.inputs, decoder.get_layer(FEATURES_LAYER).output)
    output_layer = decoder.get_layer(OUTPUT_LAYER)
    sampler = keras_hub.samplers.GreedySampler()
    start_id = spa_tokenizer.token_to_id("[START]")
    pad_id = spa_tokenizer.token_to_id("[PAD]")
    end_id = spa_tokenizer.token_to_id("[END]")

    @jax.jit
    def decode(values, encoder_tokens):
        encoder_values, features_values, output_values = values
        encoded, _ = encoder.stateless_call(*encoder_values, encoder_tokens)

        def next_token_probabilities(prompt, cache, index):
            decoded, _ = features.stateless_call(*features_values, [prompt, encoded])
            probabilities, _ = output_layer.stateless_call(*output_values, decoded[:, index - 1, :])
            return probabilities, None, cache

        rows = ops.shape(encoder_tokens)[0]
        start = ops.full((rows, 1), start_id, dtype="int32")
        pad = ops.full((rows, MAX_SEQUENCE_LENGTH - 1), pad_id, dtype="int32")
        return sampler(
            next_token_probabilities,
            ops.concatenate((start, pad), axis=-1),
            stop_token_ids=[end_id],
            index=1,
        )

    def decode_batch(encoder_tokens):
        values = [variable_values(part) for part in (encoder, features, output_layer)]
        return decode(values, encoder_tokens)

    return decode_batch


def cut_after_end(tokens: jax.Array, end_id: int, pad_id: int) -> np.ndarray:
    """Rows of generated tokens with everything after their first [END]
    (past the [START] position) replaced by padding, as when the row is
    decoded alone and generation stops at its [END]."""
    tokens = np.array(tokens)
    for row in tokens:
        ends = np.flatnonzero(row[1:] == end_id)
        if ends.size:
            row[ends[0] + 2 :] = pad_id
    return tokens


def unknown_outside_vocabulary(
    tokens: np.ndarray, vocabulary_size: int, unknown_id: int
) -> np.ndarray:
    """Token ids with those past the vocabulary, which the output layer's
    SPA_VOCAB_SIZE units allow but the detokenizer rejects, made [UNK]."""
    return np.where(tokens < vocabulary_size, tokens, unknown_id)


def printed_text(detokenized: str) -> str:
    """The example's printed translation: special tokens removed, stripped."""
    for token in PRINTED_AWAY_TOKENS:
        detokenized = detokenized.replace(token, "")
    return detokenized.strip()


def translate(
    encoder: keras.Model,
    decoder: keras.Model,
    eng_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
    spa_tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
    sentences: list[str],
) -> list[str]:
    """Greedy translations of `sentences`, BATCH_SIZE at a time."""
    decode = greedy_decoder(encoder, decoder, spa_tokenizer)
    pack_source = source_packer(eng_tokenizer)
    end_id = spa_tokenizer.token_to_id("[END]")
    pad_id = spa_tokenizer.token_to_id("[PAD]")
    unknown_id = spa_tokenizer.token_to_id("[UNK]")
    vocabulary_size = spa_tokenizer.vocabulary_size()
    translations = []
    for first in range(0, len(sentences), BATCH_SIZE):
        batch = sentences[first : first + BATCH_SIZE]
        padded_batch = batch + [""] * (BATCH_SIZE - len(batch))
        encoder_tokens = pack_source(eng_tokenizer(padded_batch))
        rows = cut_after_end(decode(encoder_tokens), end_id, pad_id)[: len(batch)]
        rows = unknown_outside_vocabulary(rows, vocabulary_size, unknown_id)
        translations.extend(printed_text(text) for text in spa_tokenizer.detokenize(rows))
    return translations


def hide_gpus_from_tensorflow() -> None:
    """Keeps TensorFlow, used for tf.data only, off the GPUs, which it would
    otherwise fill before JAX could use them."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")


def run_recipe(
    train_pairs: list[tuple[str, str]],
    validation_pairs: list[tuple[str, str]],
    test_english: list[str],
    seconds: float,
) -> tuple[dict, dict]:
    """Trains the recipe for `seconds` and translates `test_english`;
    returns the result and a few figures for the summary."""
    started = time.perf_counter()
    eng_tokenizer = word_piece_tokenizer([english for english, _ in train_pairs], ENG_VOCAB_SIZE)
    spa_tokenizer = word_piece_tokenizer([spa for _, spa in train_pairs], SPA_VOCAB_SIZE)
    vocabulary_seconds = time.perf_counter() - started

    transformer, encoder, decoder = build_transformer()
    transformer.compile("rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    clock = TrainingClock(seconds)
    transformer.fit(
        make_dataset(train_pairs, eng_tokenizer, spa_tokenizer),
        epochs=MANY_EPOCHS,
        validation_data=make_dataset(validation_pairs, eng_tokenizer, spa_tokenizer),
        callbacks=[clock.callback(transformer)],
        verbose=2,
    )

    started = time.perf_counter()
    translations = translate(encoder, decoder, eng_tokenizer, spa_tokenizer, test_english)
    decoding_seconds = time.perf_counter() - started

    result = {
        "translations": translations,
        "training_seconds": clock.seconds,
        "steps": clock.steps,
        "epochs": clock.steps / math.ceil(len(train_pairs) / BATCH_SIZE),
        "deviations": DEVIATIONS,
    }
    details = {
        "vocabulary_seconds": vocabulary_seconds,
        "decoding_seconds": decoding_seconds,
        "english_vocabulary": eng_tokenizer.vocabulary_size(),
        "target_vocabulary": spa_tokenizer.vocabulary_size(),
    }
    return result, details


def print_summary(result: dict, details: dict, test_english: list[str]) -> None:
    print(
        f"trained {result['training_seconds']:.1f} s: {result['steps']} steps, "
        f"{result['epochs']:.2f} epochs; vocabularies {details['english_vocabulary']} / "
        f"{details['target_vocabulary']} tokens in {details['vocabulary_seconds']:.1f} s; "
        f"{len(result['translations'])} test sentences decoded in "
        f"{details['decoding_seconds']:.1f} s"
    )
    for english, translation in list(zip(test_english, result["translations"], strict=True))[:5]:
        print(f"  {english}\n    -> {translation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", required=True, help="folder of train/validation/test.tsv")
    parser.add_argument("--work", required=True, help=f"folder to write {RESULT_FILE} into")
    parser.add_argument("--seconds", type=float, required=True, help="training time budget")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = BACKEND
    hide_gpus_from_tensorflow()
    train_pairs, validation_pairs, test_pairs = (
        read_pairs(os.path.join(args.splits, name)) for name in SPLIT_FILES
    )
    test_english = [english for english, _ in test_pairs]
    result, details = run_recipe(train_pairs, validation_pairs, test_english, args.seconds)
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, RESULT_FILE), "w", encoding="utf-8") as file:
        json.dump(result, file, ensure_ascii=False, indent=1)
    print_summary(result, details, test_english)


if __name__ == "__main__":
    main()
