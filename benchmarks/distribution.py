"""Training over several processes on this host, against one process over
as many devices (CPU devices, loopback):

    python -m benchmarks.distribution [--backend jax|tensorflow]
        [--phases data model failures] [--pairs 2000] [--epochs 2] [--save]

Each phase starts its processes itself (`python -m benchmarks.distribution
--worker ...`, each a `train_translator` call, or `keras-transformer train`)
and ends every one of them:

- data, model: the built-in number pairs trained with `--distribute data`
  (or `model` with a model axis of 2, JAX only) by one process with 4 CPU
  devices and by 2 processes with 2 each (TensorFlow: one process with 2
  CPU devices and 2 processes with one each, the one device its
  multi-worker strategy takes per process); model_across (JAX): a model
  axis of 2 over one process with 2 devices and over 2 processes with one
  each, so that every kernel is split between the processes. Compared: the
  running loss after each of the
  first `--steps` steps (as Keras logs it, the epoch's mean so far), the
  epoch losses of `training_state/history.csv`, the final weights of
  `model.keras`; and the steps per second of the last epoch.
- failures: `keras-transformer train` over 2 processes, process 1 killed
  (SIGKILL) once the first epoch is backed up: the seconds until process 0
  stops and its error line; the same commands again, and the epochs they
  finish; then one process whose coordinator never answers
  (`--join-timeout 5`). failures_model_across (JAX): the kill and the
  resumed run with the model axis of model_across (the backup's kernels
  split between the processes again as they are restored).
- interrupted: `keras-transformer train` over 2 processes, process 0 sent
  SIGINT (Ctrl-C) once the first epoch is backed up, 3 times: each
  process's status, error lines and seconds until it ended.

Prints one JSON line per phase; `--save` writes docs/distribution_results.json
(under the backend's name, for TensorFlow).
The processes share this machine's cores, so the timings show the overhead
of the runtime on one host, not a speed-up.
"""

import argparse
import contextlib
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "distribution_results.json")
PROCESSES = 2
# The devices of each process: JAX splits the CPU as asked; TensorFlow's
# multi-worker strategy takes one CPU device per process.
PROCESS_DEVICES = {"jax": 2, "tensorflow": 1}
# model_across: a model axis of 2 that spans the processes (one device each).
MODEL_ACROSS = "model_across"
FAILURES = "failures"
# The variable that tells a worker of this script how many CPU devices to make.
DEVICES_VARIABLE = "BENCHMARK_CPU_DEVICES"
# A small model, so that the runs take minutes on a CPU.
MODEL = {"num_layers": 2, "d_model": 32, "num_heads": 4, "ff_dim": 64, "beams": 1}
WAIT_SECONDS = 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(module_arguments, devices, backend="jax"):
    """`python -m MODULE ARGUMENTS...` under `backend` with `devices` CPU
    devices (a worker of this script: any number; the command: JAX's)."""
    environment = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "JAX_NUM_CPU_DEVICES": str(devices),
        DEVICES_VARIABLE: str(devices),
    }
    return subprocess.Popen(
        [sys.executable, "-m", *map(str, module_arguments)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def addresses(ports) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in ports)


def start_worker(backend, out, mode, pairs, epochs, devices, cluster=()):
    """A `--worker` process of this script with `devices` CPU devices;
    `cluster` is `(ports, process_id)` for one of `PROCESSES` processes."""
    place = () if not cluster else (addresses(cluster[0]), cluster[1])
    worker = [out, mode, pairs, epochs, *place]
    return start(["benchmarks.distribution", "--worker", *worker], devices, backend)


def start_command(backend, mode, out, pairs, epochs, ports, process_id, *extra):
    """Process `process_id` of `keras-transformer train` over `PROCESSES`
    processes, with `MODEL`, distributed as the phase `mode` says."""
    model = [f"--{name.replace('_', '-')}={value}" for name, value in MODEL.items()]
    cluster = ["--coordinator", addresses(ports), "--num-processes", PROCESSES]
    arguments = ["train", *mode_arguments(mode), "--pairs", pairs, "--epochs", epochs, "--seed", 0]
    arguments += [*model, "--no-pictures", "--out", out, *cluster, "--process-id", process_id]
    devices = process_devices(backend, mode)
    return start(["keras_transformer_cli", *arguments, *extra], devices, backend)


def free_ports() -> list[int]:
    ports = set()
    while len(ports) < PROCESSES:
        ports.add(free_port())
    return sorted(ports)


@contextlib.contextmanager
def ended(started):
    """Yields the processes; kills any still running at the end."""
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("keras-transformer: ")]


def process_devices(backend: str, mode: str) -> int:
    return 1 if MODEL_ACROSS in mode else PROCESS_DEVICES[backend]


def mode_arguments(mode: str) -> list:
    """The command's options for a phase's way of distributing."""
    if MODEL_ACROSS in mode:
        return ["--distribute", "model", "--model-axis-size", PROCESSES]
    return ["--distribute", "data"]


def run_together(backend, out, mode, pairs, epochs, processes):
    """Trains one run with `processes` processes over `PROCESSES` times
    `PROCESS_DEVICES` devices in all; raises if one fails. Returns the wall
    seconds."""
    began = time.monotonic()
    ports = free_ports()
    devices = PROCESSES * process_devices(backend, mode) // processes
    cluster = [(ports, index) if processes > 1 else () for index in range(processes)]
    started = [start_worker(backend, out, mode, pairs, epochs, devices, c) for c in cluster]
    with ended(started):
        for process in started:
            _, err = process.communicate(timeout=WAIT_SECONDS)
            if process.returncode:
                raise RuntimeError(f"a worker failed ({process.returncode}): {err[-2000:]}")
    return time.monotonic() - began


def relative_difference(values, references) -> float:
    import numpy as np

    values, references = np.asarray(values, "float64"), np.asarray(references, "float64")
    return float(np.max(np.abs(values - references) / np.maximum(np.abs(references), 1e-12)))


def epoch_losses(out):
    with open(os.path.join(out, "training_state", "history.csv"), encoding="utf-8") as file:
        return [float(row["loss"]) for row in csv.DictReader(file)]


def final_weights(out):
    import keras

    from keras_transformer.translation.run import load_translator

    weights = load_translator(out).transformer.weights
    return {weight.path: keras.ops.convert_to_numpy(weight) for weight in weights}


def weight_differences(out, reference_out) -> dict:
    """The largest absolute difference over all weights, and over all but
    the key biases (whose exact gradient is zero: Adam turns rounding
    noise there into full steps)."""
    import numpy as np

    weights, reference = final_weights(out), final_weights(reference_out)
    largest = {path: float(np.max(np.abs(w - reference[path]))) for path, w in weights.items()}
    return {
        "max_abs_difference": max(largest.values()),
        "max_abs_difference_but_key_biases": max(
            value for path, value in largest.items() if not path.endswith("key/bias")
        ),
        "max_abs_weight": max(float(np.max(np.abs(w))) for w in reference.values()),
    }


def compare(backend, mode, pairs, epochs, steps, directory) -> dict:
    """One process over every device against 2 processes over a share
    each."""
    outs = {count: os.path.join(directory, f"{mode}_{count}") for count in (1, PROCESSES)}
    seconds = {
        count: run_together(backend, out, mode, pairs, epochs, count) for count, out in outs.items()
    }
    per_process = process_devices(backend, mode)
    one_label, several_label = f"1x{PROCESSES * per_process}", f"{PROCESSES}x{per_process}"
    records = {}
    for count, out in outs.items():
        with open(os.path.join(out, "steps.json"), encoding="utf-8") as file:
            records[count] = json.load(file)
    one, several = records[1], records[PROCESSES]
    return {
        "phase": mode,
        "pairs": pairs,
        "epochs": epochs,
        "steps_compared": min(steps, len(one["losses"])),
        "step_loss_max_relative_difference": relative_difference(
            several["losses"][:steps], one["losses"][:steps]
        ),
        "epoch_losses": {
            one_label: epoch_losses(outs[1]),
            several_label: epoch_losses(outs[PROCESSES]),
        },
        "epoch_loss_max_relative_difference": relative_difference(
            epoch_losses(outs[PROCESSES]), epoch_losses(outs[1])
        ),
        "final_weights": weight_differences(outs[PROCESSES], outs[1]),
        "last_epoch_steps_per_second": {
            one_label: one["last_epoch_steps_per_second"],
            several_label: several["last_epoch_steps_per_second"],
        },
        "wall_seconds": {
            one_label: round(seconds[1], 1),
            several_label: round(seconds[PROCESSES], 1),
        },
    }


def backed_up_epochs(out):
    path = os.path.join(out, "training_state", "backup", "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)["epoch"]
    except (OSError, ValueError, KeyError):
        return None


def start_processes(backend, mode, out, pairs, epochs) -> list:
    """Every process of one `keras-transformer train` run (`start_command`)."""
    ports = free_ports()
    return [
        start_command(backend, mode, out, pairs, epochs, ports, index) for index in range(PROCESSES)
    ]


def wait_for_the_first_backup(out) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while backed_up_epochs(out) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)


def failures(backend, mode, pairs, epochs, directory) -> dict:
    """`keras-transformer train` over 2 processes: process 1 killed once
    the first epoch is backed up, the same commands again, and (phase
    failures) a process whose coordinator does not answer."""
    out = os.path.join(directory, f"killed_{mode}")
    started = start_processes(backend, mode, out, pairs, epochs)
    with ended(started):
        wait_for_the_first_backup(out)
        started[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = started[0].communicate(timeout=WAIT_SECONDS)
        stopped_after = time.monotonic() - killed
    killed_record = {
        "process_0_status": started[0].returncode,
        "process_0_error_lines": error_lines(err),
        "seconds_from_kill_to_process_0_exit": round(stopped_after, 1),
        "epochs_logged_before_resuming": len(epoch_losses(out)),
    }
    began = time.monotonic()
    started = start_processes(backend, mode, out, pairs, epochs)
    with ended(started):
        for process in started:
            process.communicate(timeout=WAIT_SECONDS)
    resumed = {
        "statuses": [process.returncode for process in started],
        "epochs_logged": len(epoch_losses(out)),
        "epoch_losses": epoch_losses(out),
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    record = {"phase": mode, "killed": killed_record, "resumed": resumed}
    if mode != FAILURES:
        return record
    began = time.monotonic()
    alone = [start_command(backend, mode, out, pairs, epochs, free_ports(), 1, "--join-timeout", 5)]
    with ended(alone):
        _, err = alone[0].communicate(timeout=WAIT_SECONDS)
    record["coordinator_not_answering"] = {
        "join_timeout": 5,
        "status": alone[0].returncode,
        "error_lines": error_lines(err),
        "seconds_to_exit": round(time.monotonic() - began, 1),
    }
    return record


def interrupted(backend, pairs, epochs, directory, trials=3) -> dict:
    """`keras-transformer train` over 2 processes, process 0 sent SIGINT
    (Ctrl-C) once the first epoch is backed up, `trials` times: each
    process's status, its lines, and the seconds until it ended."""
    records = []
    for trial in range(trials):
        out = os.path.join(directory, f"interrupted_{trial}")
        started = start_processes(backend, FAILURES, out, pairs, epochs)
        with ended(started):
            wait_for_the_first_backup(out)
            started[0].send_signal(signal.SIGINT)
            sent = time.monotonic()
            seconds = {}
            while len(seconds) < PROCESSES and time.monotonic() < sent + WAIT_SECONDS:
                for index, process in enumerate(started):
                    if index not in seconds and process.poll() is not None:
                        seconds[index] = round(time.monotonic() - sent, 2)
                time.sleep(0.01)
            lines = [error_lines(process.communicate()[1]) for process in started]
        records.append(
            [
                {"status": process.returncode, "lines": lines[index], "seconds": seconds.get(index)}
                for index, process in enumerate(started)
            ]
        )
    return {"phase": "interrupted", "trials": records}


def worker(out, mode, pairs, epochs, coordinator=None, process_id=None):
    """One process of a run: joins the others (if `coordinator`), trains
    with `train_translator` and, in process 0, writes `steps.json`."""
    import keras

    from keras_transformer.training import Cluster, TrainingDevices

    cluster = None
    if coordinator is not None:
        cluster = Cluster(coordinator, PROCESSES, int(process_id))
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        devices = [tf.config.LogicalDeviceConfiguration()] * int(os.environ[DEVICES_VARIABLE])
        tf.config.set_logical_device_configuration(cpu, devices)
    model_parallel = mode in ("model", MODEL_ACROSS)
    devices = TrainingDevices.create(
        "model" if model_parallel else mode, 2 if model_parallel else None, cluster
    )

    from keras_transformer.data import number_splits
    from keras_transformer.translation.options import TrainingOptions
    from keras_transformer.translation.run import train_translator

    class StepLosses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses, self.epoch_began, self.steps_per_second = [], 0.0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_began, self.steps = time.perf_counter(), 0

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))
            self.steps += 1

        def on_epoch_end(self, epoch, logs=None):
            self.steps_per_second = self.steps / (time.perf_counter() - self.epoch_began)

    steps = StepLosses()
    options = TrainingOptions(epochs=int(epochs), seed=0, **MODEL)
    splits = number_splits(count=int(pairs), seed=0)
    train_translator(
        splits, out, options, verbose=0, pictures=False, devices=devices, callbacks=[steps]
    )
    if devices.is_chief:
        record = {"losses": steps.losses, "last_epoch_steps_per_second": steps.steps_per_second}
        with open(os.path.join(out, "steps.json"), "w", encoding="utf-8") as file:
            json.dump(record, file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(PROCESS_DEVICES), default="jax")
    parser.add_argument("--phases", nargs="+", help="default: data model model_across failures "
                        "failures_model_across interrupted (jax), data failures interrupted "
                        "(tensorflow)")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="steps whose losses are compared")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    default = ["data", FAILURES, "interrupted"]
    if args.backend == "jax":
        default = ["data", "model", MODEL_ACROSS, FAILURES, f"{FAILURES}_{MODEL_ACROSS}"]
        default.append("interrupted")
    phases = args.phases or default
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as directory:
        for phase in phases:
            if phase == "interrupted":
                record = interrupted(args.backend, args.pairs, args.epochs, directory)
            elif phase.startswith(FAILURES):
                record = failures(args.backend, phase, args.pairs, args.epochs, directory)
            else:
                steps = args.steps
                record = compare(args.backend, phase, args.pairs, args.epochs, steps, directory)
            print(json.dumps(record), flush=True)
            results[phase] = record
    if args.save:
        saved = {}
        if os.path.exists(RESULTS):
            with open(RESULTS, encoding="utf-8") as file:
                saved = json.load(file)
        if args.backend == "jax":  # the JAX figures stay at the top level, as before
            saved.update(results)
        else:  # each phase replaces its own record only
            saved[args.backend] = {**saved.get(args.backend, {}), **results}
        with open(RESULTS, "w", encoding="utf-8") as file:
            json.dump(saved, file, indent=2)
            file.write("\n")


if __name__ == "__main__":
    main()
