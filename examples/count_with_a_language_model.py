"""A character-level language model from `DecoderBlock`s without
cross-attention: it learns to count in English words.

    KERAS_BACKEND=tensorflow python examples/count_with_a_language_model.py

The text is "one, two, three, ..., nine hundred and ninety-nine, ..."
written by num2words. Two causal decoder blocks learn to predict each next
character; given "three hundred and twelve, " the model then writes the
numbers that follow.
"""

import argparse

import keras
import numpy as np
from num2words import num2words

import keras_transformer
from keras_transformer.translation import detokenize, tokenize, train_tokenizer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--numbers", type=int, default=2000, help="count from 1 to this")
parser.add_argument("--window", type=int, default=96, help="characters per training example")
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# Data: windows of the counting text; the target is the window shifted by one.
text = ", ".join(num2words(n) for n in range(1, args.numbers + 1)) + ", "
tokenizer = train_tokenizer([text], "character")
[ids] = tokenize(tokenizer, [text])
ids = np.array(ids, "int32")
starts = np.arange(0, len(ids) - args.window - 1, 7)
windows = np.stack([ids[s : s + args.window + 1] for s in starts])
inputs, targets = windows[:, :-1], windows[:, 1:]

# The model: embeddings, two decoder-only blocks (causal self-attention and a
# feed-forward network each), logits through the transposed embedding.
embedding = keras_transformer.InputEmbedding(tokenizer.vocabulary_size(), 96)
token_ids = keras.Input((None,), dtype="int32")
x = embedding(token_ids)
for _ in range(2):
    x = keras_transformer.DecoderBlock(num_heads=4, ff_dim=256, dropout=0.0)(x)
logits = embedding(x, reverse=True)
model = keras.Model(token_ids, logits)
model.compile(
    keras.optimizers.Adam(2e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(inputs, targets, batch_size=64, epochs=args.epochs, verbose=2)


def continue_texts(prompts: list[str], characters: int) -> list[str]:
    """Greedy continuations. Each step reads the last `window` characters,
    right-aligned and left-padded with 0 (padding the mask skips), so every
    step has the same shape and reuses the compiled computation."""
    rows = tokenize(tokenizer, prompts)
    for _ in range(characters):
        context = np.zeros((len(rows), args.window), "int32")
        for index, row in enumerate(rows):
            recent = row[-args.window :]
            context[index, args.window - len(recent) :] = recent
        logits = keras.ops.convert_to_numpy(model.predict_on_batch(context))[:, -1]
        for row, next_id in zip(rows, np.argmax(logits, axis=-1), strict=True):
            row.append(int(next_id))
    return detokenize(tokenizer, rows)


prompts = ["three hundred and twelve, ", "one thousand, five hundred and ninety-eight, "]
for text in continue_texts(prompts, 80):
    print(repr(text))
