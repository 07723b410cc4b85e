import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts from the float32 policy and a known seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
