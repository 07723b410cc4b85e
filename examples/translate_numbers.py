"""Train a Transformer to translate English number words into French.

    KERAS_BACKEND=jax python examples/translate_numbers.py

The pairs ("seventy-one" -> "soixante et onze") are generated with num2words,
so nothing is downloaded; the test numbers never occur in training. The
script follows the paper: WordPiece tokenizers, the base architecture scaled
down, Adam with the warmup schedule, label-smoothed cross-entropy. It prints
exact match, BLEU and chrF on the test split with a few translations, and
saves the model with its tokenizers as one `.keras` file.
"""

import argparse
import os
import time

import keras

import keras_transformer
from keras_transformer.data import number_splits
from keras_transformer.saving import save_atomically
from keras_transformer.training import MaskedAccuracy, MaskedCrossEntropy, paper_optimizer
from keras_transformer.translation import evaluate_translator, train_tokenizer, training_arrays

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/numbers", help="directory for model.keras")
parser.add_argument("--pairs", type=int, default=20000, help="number pairs in all splits")
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--language", default="fr", help="target language (num2words code)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)
started = time.time()

# 1. Data: numbers below 100000 as words, split 90/5/5 without overlap.
splits = number_splits(count=args.pairs, language=args.language, seed=args.seed)
print({name: len(pairs) for name, pairs in splits.items()}, splits["train"][0])

# 2. WordPiece tokenizers computed from the training pairs (ids 0-3 are
#    padding, start, end and unknown), and padded id arrays for model.fit.
source_tokenizer = train_tokenizer([source for source, _ in splits["train"]], "wordpiece")
target_tokenizer = train_tokenizer([target for _, target in splits["train"]], "wordpiece")
inputs, labels, _ = training_arrays(source_tokenizer, target_tokenizer, splits["train"], 64)
validation = training_arrays(source_tokenizer, target_tokenizer, splits["validation"], 64)[:2]

# 3. The model: 2 + 2 layers, d_model 64, 4 heads; the paper's recipe.
model = keras_transformer.Transformer(
    source_vocabulary_size=source_tokenizer.vocabulary_size(),
    target_vocabulary_size=target_tokenizer.vocabulary_size(),
    num_layers=2,
    d_model=64,
    num_heads=4,
    ff_dim=256,
    dropout=0.1,
    seed=args.seed,
)
model.compile(
    optimizer=paper_optimizer(d_model=64, warmup_steps=1000, scale=0.5),
    loss=MaskedCrossEntropy(label_smoothing=0.1),
    metrics=[MaskedAccuracy()],
)
model.fit(inputs, labels, batch_size=64, epochs=args.epochs, validation_data=validation, verbose=2)
print(f"Trained in {time.time() - started:.0f} s on {keras.backend.backend()}.")

# 4. Translate the unseen test numbers with cached greedy decoding and score.
translator = keras_transformer.Translator(model, source_tokenizer, target_tokenizer)
scores = evaluate_translator(translator, splits["test"])
print(
    f"Test: exact match {scores['exact_match']:.4f}, BLEU {scores['bleu']:.2f}, "
    f"chrF {scores['chrf']:.2f} on {scores['sentences']} sentences"
)
for (source, target), translation in list(zip(splits["test"], scores["translations"], strict=True))[
    :5
]:
    print(f"  {source} -> {translation}" + ("" if translation == target else f" (not {target})"))
sample = [source for source, _ in splits["test"][:20]]
print("Beam search (4 beams):", translator.translate(sample[:2], beams=4))

# 5. Save model and tokenizers as one file; a loaded copy translates alike.
path = os.path.join(args.out, "model.keras")
save_atomically(translator, path)
restored = keras.saving.load_model(path)
assert restored.translate(sample) == translator.translate(sample)
print(f"Saved {path} in {time.time() - started:.0f} s total.")
