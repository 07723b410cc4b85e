"""Writes the saved files that `test_saved_files.py` loads: a `Transformer`
and a `Translator` saved by this version of the package, beside the outputs
they gave when saved. Files from earlier versions are kept, never rewritten:
run this once per release that changes what is saved, and the new version's
files join the old ones.

    KERAS_BACKEND=jax python -m tests.data.make_saved_files
"""

import json
import os

import keras
import numpy as np

import keras_transformer
from keras_transformer import Transformer, Translator
from keras_transformer.translation import train_tokenizer

ROOT = os.path.join(os.path.dirname(__file__), "saved_files")
SOURCE_IDS = [[5, 9, 3, 11, 0], [7, 4, 0, 0, 0]]
DECODER_IDS = [[1, 6, 8, 2], [1, 3, 0, 0]]
GENERATED_LENGTH = 8
PAIRS = [
    ("one", "un"),
    ("two", "deux"),
    ("three", "trois"),
    ("twenty-one", "vingt et un"),
    ("seventy-one", "soixante et onze"),
    ("ninety-nine", "quatre-vingt-dix-neuf"),
]
SENTENCES = ["one", "twenty-two", "ninety-one"]


def make_transformer(vocabulary: int, seed: int) -> Transformer:
    """A small seeded model with weights drawn wider than at initialisation,
    so that its most probable tokens stand well apart and greedy decoding
    gives the same ids on every backend."""
    model = Transformer(
        vocabulary, vocabulary, num_layers=1, d_model=16, num_heads=2, ff_dim=32, seed=seed
    )
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.weights])
    return model


def make_translator() -> Translator:
    """A small seeded `Translator` with SentencePiece vocabularies."""
    source = train_tokenizer([s for s, _ in PAIRS], "sentencepiece", vocabulary_size=300)
    target = train_tokenizer([t for _, t in PAIRS], "sentencepiece", vocabulary_size=300)
    transformer = make_transformer(source.vocabulary_size(), seed=1)
    return Translator(transformer, source, target, max_output_length=10)


def main() -> None:
    directory = os.path.join(ROOT, keras_transformer.__version__)
    if os.path.exists(directory):
        raise SystemExit(f"{directory} exists: saved files are never rewritten")
    os.makedirs(directory)
    transformer = make_transformer(vocabulary=24, seed=0)
    inputs = {"encoder_inputs": np.array(SOURCE_IDS), "decoder_inputs": np.array(DECODER_IDS)}
    translator = make_translator()
    expected = {
        "backend": keras.backend.backend(),
        "logits": keras.ops.convert_to_numpy(transformer(inputs)).tolist(),
        "generated": transformer.generate(
            np.array(SOURCE_IDS), 1, 2, max_length=GENERATED_LENGTH
        ).tolist(),
        "translations": translator.translate(SENTENCES),
    }
    transformer.save(os.path.join(directory, "transformer.keras"))
    translator.save(os.path.join(directory, "translator.keras"))
    with open(os.path.join(directory, "expected.json"), "w", encoding="utf-8") as file:
        json.dump(expected, file)


if __name__ == "__main__":
    main()
