"""`keras-transformer train` over two processes on this host, over
loopback (JAX's multi-controller runtime; TensorFlow's
MultiWorkerMirroredStrategy): the same epochs as one process over as many
devices, process 0 alone writing, and one error line in every process when
they cannot work together."""

import csv
import json
import os
import subprocess
import time

import keras
import numpy as np
import pytest

from benchmarks.distribution import ended, free_port
from keras_transformer.training import distribution
from keras_transformer_cli import main
from tests.cli_runs import DISTRIBUTED_BACKENDS, command
from tests.conftest import VIRTUAL_DEVICES
from tests.helpers import BACKEND
from tests.test_cli_resume import epochs_logged, one_shape  # noqa: F401

pytestmark = pytest.mark.skipif(
    BACKEND not in DISTRIBUTED_BACKENDS, reason="several processes train on jax and tensorflow"
)
PROCESSES = 2
# Each process's CPU devices: JAX splits the CPU as asked; TensorFlow's
# multi-worker strategy takes one CPU device per process.
PROCESS_DEVICES = VIRTUAL_DEVICES // PROCESSES if BACKEND == "jax" else 1
# The processes start, compile and train in well under this.
WAIT_SECONDS = 240


def start(args, ports, process_id):
    """Process `process_id` of `keras-transformer train args`; `ports` are
    the processes' loopback ports (JAX listens on the first only)."""
    environment = {
        **os.environ,
        "KERAS_BACKEND": BACKEND,
        "JAX_NUM_CPU_DEVICES": str(PROCESS_DEVICES),
    }
    addresses = ",".join(f"127.0.0.1:{port}" for port in ports)
    cluster = ["--coordinator", addresses, "--num-processes", str(PROCESSES)]
    return subprocess.Popen(
        command(*args, *cluster, "--process-id", str(process_id)),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def both(args, other_args=None):
    """Processes 0 and 1 of a run with `args` (process 1 with `other_args`
    if given)."""
    ports = [free_port() for _ in range(PROCESSES)]
    return ended([start(args, ports, 0), start(other_args or args, ports, 1)])


def finish(started):
    """`(status, stdout, error lines)` of each process once it ends."""
    results = []
    for process in started:
        out, err = process.communicate(timeout=WAIT_SECONDS)
        errors = [line for line in err.splitlines() if line.startswith("keras-transformer: ")]
        results.append((process.returncode, out, errors))
    return results


def history(out):
    with open(os.path.join(out, "training_state", "history.csv"), encoding="utf-8") as file:
        return [float(row["loss"]) for row in csv.DictReader(file)]


def weights(out):
    """The trained weights by path, but for the key biases: their exact
    gradient is zero, so Adam turns rounding noise into full steps."""
    model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    return {
        weight.path: keras.ops.convert_to_numpy(weight)
        for weight in model.transformer.weights
        if not weight.path.endswith("key/bias")
    }


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, one_shape):  # noqa: F811
    """The same run in this process, over as many of its virtual devices as
    the processes have together."""
    out = str(tmp_path_factory.mktemp("one_process"))
    devices = distribution._list_devices()[: PROCESSES * PROCESS_DEVICES]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distribution, "_list_devices", lambda cluster=None: devices)
        assert main(["train", "--out", out, "--distribute", "data", *one_shape]) == 0
    return out


def test_two_processes_train_as_one(tmp_path, one_shape, one_process):  # noqa: F811
    """The same epoch losses and weights as one process over the four
    devices (killing a process and resuming: benchmarks/distribution.py)."""
    out = str(tmp_path / "run")
    args = ["train", "--out", out, "--distribute", "data", *one_shape]
    with both(args) as started:
        (status_0, out_0, errors_0), (status_1, out_1, errors_1) = finish(started)
    assert (status_0, errors_0, status_1, errors_1) == (0, [], 0, [])
    assert "Process 1 done" in out_1 and "Saved" in out_0
    assert epochs_logged(out) == [0, 1]
    np.testing.assert_allclose(history(out), history(one_process), rtol=1e-5)
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as file:
        metrics = json.load(file)
    assert (metrics["devices"], metrics["processes"]) == (PROCESSES * PROCESS_DEVICES, PROCESSES)
    reference = weights(one_process)
    for path, weight in weights(out).items():
        np.testing.assert_allclose(weight, reference[path], rtol=1e-4, atol=1e-5, err_msg=path)


def test_processes_started_with_other_options_stop_with_one_line(tmp_path, one_shape):  # noqa: F811
    args = ["train", "--out", str(tmp_path), "--distribute", "data", *one_shape]
    with both(args, [*args, "--epochs", "3"]) as started:
        results = finish(started)
    for status, _, errors in results:
        assert status == 1
        assert len(errors) == 1 and "was started with other options" in errors[0]
        assert "epochs: " in errors[0]


@pytest.mark.skipif(BACKEND != "jax", reason="model parallel training is jax's")
def test_a_model_axis_across_processes_trains_as_one(tmp_path, one_shape, one_process):  # noqa: F811
    """Every kernel split over the devices of both processes: each save
    gathers the parts from both, and the run equals one process's data
    parallel run over as many devices, up to rounding."""
    out = str(tmp_path / "run")
    devices = str(PROCESSES * PROCESS_DEVICES)
    args = ["train", "--out", out, "--distribute", "model", "--model-axis-size", devices]
    with both([*args, *one_shape]) as started:
        (status_0, _, errors_0), (status_1, _, errors_1) = finish(started)
    assert (status_0, errors_0, status_1, errors_1) == (0, [], 0, [])
    np.testing.assert_allclose(history(out), history(one_process), rtol=1e-5)
    reference = weights(one_process)
    for path, weight in weights(out).items():
        np.testing.assert_allclose(weight, reference[path], rtol=1e-4, atol=1e-5, err_msg=path)


def test_a_coordinator_that_does_not_answer_stops_the_process_with_one_line(tmp_path):
    args = ["train", "--out", str(tmp_path), "--distribute", "data", "--join-timeout", "2"]
    began = time.monotonic()
    with ended([start(args, [free_port() for _ in range(PROCESSES)], 1)]) as started:
        [(status, _, errors)] = finish(started)
    assert status == 1 and len(errors) == 1
    assert "process 1 could not join the 2 processes at 127.0.0.1:" in errors[0]
    assert "within 2 s" in errors[0]
    assert time.monotonic() - began < 30
