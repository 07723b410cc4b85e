"""Text classification with `EncoderBlock` alone: which language is a number
written in?

    KERAS_BACKEND=torch python examples/classify_language.py

Numbers written out by num2words in English, French, German, Spanish and
Italian ("einundsiebzig", "setenta y uno", ...) are read character by
character by two encoder blocks; the average of their outputs over the real
(non-padding) characters feeds a softmax over the five languages. Numbers of
the test set never occur in training.
"""

import argparse
import random

import keras
import numpy as np
from num2words import num2words

import keras_transformer
from keras_transformer.translation import tokenize, train_tokenizer
from keras_transformer.translation.tokenizers import pack

LANGUAGES = ["en", "fr", "de", "es", "it"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--numbers", type=int, default=3000, help="distinct numbers (x5 texts)")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# Data: every number in every language; 20% of the numbers held out for testing.
numbers = random.Random(args.seed).sample(range(1_000_000), args.numbers)
held_out = set(numbers[: len(numbers) // 5])
texts, labels, is_test = [], [], []
for number in numbers:
    for label, language in enumerate(LANGUAGES):
        texts.append(num2words(number, lang=language))
        labels.append(label)
        is_test.append(number in held_out)
labels, is_test = np.array(labels), np.array(is_test)

# Characters as ids (0 = padding), padded to the longest text.
tokenizer = train_tokenizer(
    [t for t, test in zip(texts, is_test, strict=True) if not test], "character"
)
rows = tokenize(tokenizer, texts)
ids = pack(rows, max(map(len, rows)))

# The classifier: embeddings with sinusoidal positions, two encoder blocks,
# a masked average over characters, a softmax over the languages.
inputs = keras.Input((None,), dtype="int32")
x = keras_transformer.InputEmbedding(tokenizer.vocabulary_size(), 64, dropout=0.1)(inputs)
for _ in range(2):
    x = keras_transformer.EncoderBlock(num_heads=4, ff_dim=128)(x)
x = keras.layers.GlobalAveragePooling1D()(x)  # skips the padding through the Keras mask
outputs = keras.layers.Dense(len(LANGUAGES), activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
model.fit(ids[~is_test], labels[~is_test], batch_size=64, epochs=args.epochs, verbose=2)

_, accuracy = model.evaluate(ids[is_test], labels[is_test], verbose=0)
print(f"Test accuracy {accuracy:.4f} on {is_test.sum()} texts of unseen numbers")
for text in ["quatre-vingt-dix-neuf", "neunundneunzig", "novantanove", "noventa y nueve"]:
    [row] = tokenize(tokenizer, [text])
    probabilities = model.predict(np.array([row]), verbose=0)[0]
    print(f"  {text!r}: {LANGUAGES[int(np.argmax(probabilities))]}")
