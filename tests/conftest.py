import os
from pathlib import Path

# The tests' models are tiny, so under JAX and TensorFlow they wait on XLA
# compiling, not on running: without LLVM's optimisations the first epoch of
# the command's tiny training run compiled in 12 s instead of 22 s under JAX,
# and the TensorFlow suite took 4:56 instead of 5:58, with the same results.
if os.environ.get("KERAS_BACKEND") in ("jax", "tensorflow"):
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import keras
import numpy as np
import pytest

# The distribution tests spread training over this many virtual CPU devices.
# The split must happen before the backend starts, so before collection; work
# that does not ask for a distribution keeps running on the first device.
VIRTUAL_DEVICES = 4


def _split_cpu(count: int) -> None:
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_num_cpu_devices", count)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )


_split_cpu(VIRTUAL_DEVICES)


def _one_torch_thread() -> None:
    """The tests' tensors are tiny: with a thread per core, torch's OpenMP
    threads wait on each other, the more so when other processes share the
    cores. pytest-xdist workers ran the torch suite almost three times as
    fast with one thread each, and in one process on two busy cores the
    trained reverser fixture took 31 s to train with one thread against
    716 s with two."""
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)


_one_torch_thread()


@pytest.fixture(scope="session")
def session_tmp_path(tmp_path_factory, worker_id):
    """A folder of this test session that all pytest-xdist workers share."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def backends_tmp_path(session_tmp_path):
    """A folder that the test sessions of every backend share when
    `make test` names one in KERAS_TRANSFORMER_TEST_SHARED (for files that
    do not depend on the backend, such as trained weights); else the
    session's own."""
    shared = os.environ.get("KERAS_TRANSFORMER_TEST_SHARED")
    return session_tmp_path if shared is None else Path(shared)


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
