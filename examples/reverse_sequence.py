"""Train a Transformer to reverse sequences of random tokens, then save it.

The task is generated on the fly, so nothing is downloaded. The script trains
with `model.fit`, reports token accuracy and exact match on held-out
sequences, translates a few of them (greedy and beam search), and saves the model as a `.keras`
file that it loads back to check the outputs match.

    KERAS_BACKEND=jax python examples/reverse_sequence.py --out runs/reverse
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_transformer
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID, make_reverse_task

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/reverse", help="directory for model.keras")
parser.add_argument("--samples", type=int, default=4000, help="training sequences")
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# Data: sources of 4-10 random word ids; targets are the reversed sources.
train_inputs, train_labels = make_reverse_task(args.samples, seed=args.seed)
test_inputs, test_labels = make_reverse_task(500, seed=args.seed + 1)

# A small Transformer: 2 + 2 layers, d_model 64, 4 heads.
model = keras_transformer.Transformer(
    source_vocabulary_size=20,
    target_vocabulary_size=20,
    num_layers=2,
    d_model=64,
    num_heads=4,
    ff_dim=128,
    dropout=0.0,
    seed=args.seed,
)
steps = args.epochs * (args.samples // 64)
schedule = keras.optimizers.schedules.CosineDecay(
    1e-4, steps, warmup_target=3e-3, warmup_steps=min(100, steps // 2)
)
model.compile(
    optimizer=keras.optimizers.Adam(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
)
start = time.time()
model.fit(train_inputs, train_labels, batch_size=64, epochs=args.epochs, verbose=2)
print(f"Trained in {time.time() - start:.0f} s on {keras.backend.backend()}.")

# Held-out accuracy with teacher forcing, on real (non-padding) positions.
predictions = np.argmax(keras.ops.convert_to_numpy(model.predict(test_inputs, verbose=0)), -1)
real = test_labels != 0
token_accuracy = (predictions == test_labels)[real].mean()
exact_match = np.all((predictions == test_labels) | ~real, axis=1).mean()
print(f"Held-out token accuracy {token_accuracy:.4f}, exact match {exact_match:.4f}")


# Translate held-out sources with cached greedy decoding and beam search.
sources = test_inputs["encoder_inputs"][:3]
for sampler in ("greedy", "beam"):
    outputs = model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, max_length=12, sampler=sampler)
    for source, output in zip(sources, outputs, strict=True):
        words = [int(t) for t in output[1:] if t not in (0, END_TOKEN_ID)]
        print(f"  {sampler:6s} {[int(t) for t in source if t]} -> {words}")

# Save, load back (no custom_objects needed once keras_transformer is imported).
os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "model.keras")
model.save(path)
restored = keras.saving.load_model(path)
difference = np.abs(
    keras.ops.convert_to_numpy(restored(test_inputs))
    - keras.ops.convert_to_numpy(model(test_inputs))
).max()
print(f"Saved {path}; reloaded outputs differ by at most {difference:.1e}")
