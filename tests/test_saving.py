import os

import keras
import numpy as np
import pytest

from keras_transformer import FeedForward
from keras_transformer.saving import save_atomically
from tests.helpers import to_numpy


def small_model():
    inputs = keras.Input((3, 4))
    return keras.Model(inputs, FeedForward(8)(inputs))


def test_saves_a_loadable_file(tmp_path):
    model = small_model()
    path = tmp_path / "runs" / "model.keras"
    save_atomically(model, path)
    restored = keras.saving.load_model(path)
    x = np.ones((2, 3, 4), "float32")
    np.testing.assert_allclose(to_numpy(restored(x)), to_numpy(model(x)))
    assert os.listdir(path.parent) == ["model.keras"]


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "model.keras"
    good = small_model()
    save_atomically(good, path)
    before = path.read_bytes()

    broken = small_model()

    def crash_midway(filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"half a model")
        raise KeyboardInterrupt

    broken.save = crash_midway
    with pytest.raises(KeyboardInterrupt):
        save_atomically(broken, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.keras"]


def test_rejects_other_suffixes(tmp_path):
    with pytest.raises(ValueError, match="'.keras'"):
        save_atomically(small_model(), tmp_path / "model.h5")
