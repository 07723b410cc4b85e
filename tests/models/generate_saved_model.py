"""Loads a `.keras` file in a fresh process and prints its greedy and beam
translations of saved sources as JSON:

    python generate_saved_model.py MODEL SOURCES.npy
"""

import json
import sys

import keras
import numpy as np

import keras_transformer  # noqa: F401  (registers the layers)
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID

model = keras.saving.load_model(sys.argv[1])
sources = np.load(sys.argv[2])
results = {
    sampler: model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, 12, sampler=sampler).tolist()
    for sampler in ("greedy", "beam")
}
print(json.dumps(results))
