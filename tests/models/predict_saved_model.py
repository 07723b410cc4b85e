"""Loads a `.keras` file under the backend in KERAS_BACKEND and writes its
weights and its outputs on saved inputs:

    python predict_saved_model.py MODEL INPUTS OUTPUTS.npz
"""

import sys

import keras
import numpy as np

import keras_transformer  # noqa: F401  (registers the layers)

model_path, inputs_path, outputs_path = sys.argv[1:4]
model = keras.saving.load_model(model_path, safe_mode=True)
inputs = dict(np.load(inputs_path))
outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
np.savez(outputs_path, outputs, *model.get_weights())
