"""Loads a `.keras` file in a fresh process under the backend in
KERAS_BACKEND and writes its weights, its logits on saved inputs and its
greedy and beam-search outputs for their sources:

    python use_saved_model.py MODEL INPUTS.npz OUTPUTS.npz
"""

import sys

import keras
import numpy as np

import keras_transformer  # noqa: F401  (registers the layers)
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID

model_path, inputs_path, outputs_path = sys.argv[1:4]
model = keras.saving.load_model(model_path, safe_mode=True)
inputs = dict(np.load(inputs_path))
sources = inputs["encoder_inputs"]
np.savez(
    outputs_path,
    logits=keras.ops.convert_to_numpy(model(inputs, training=False)),
    greedy=model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, 12),
    beam=model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, 12, sampler="beam"),
    **{f"weight_{index}": weight for index, weight in enumerate(model.get_weights())},
)
