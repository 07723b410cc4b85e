"""Training on several devices with the engines the backends provide:
`keras.distribution` (data and model parallel) on JAX, and
`tf.distribute.MirroredStrategy` (data parallel) on TensorFlow. The devices
may belong to several processes, on one host or many (`Cluster`): on JAX,
the multi-controller runtime (`jax.distributed`) joins them and the same
`keras.distribution` layouts span every process's devices; on TensorFlow,
`tf.distribute.MultiWorkerMirroredStrategy` mirrors the model on every
process's devices.

Keras 3 has no multi-device `model.fit` on PyTorch: `keras.distribution`
supports JAX only, and a torch `DistributedDataParallel` run needs a training
loop of its own, outside `model.fit`. Asking for a distribution there raises a
`ValueError` that names the backends that can.
"""

import atexit
import contextlib
import dataclasses
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

import keras
import numpy as np

from keras_transformer.validation import (
    DISTRIBUTE_MODES,
    check_choice,
    check_positive,
    check_positive_int,
    is_int,
)

BATCH_AXIS = "batch"
MODEL_AXIS = "model"


def transformer_layout_map(
    device_mesh: "keras.distribution.DeviceMesh", model_axis: str = MODEL_AXIS
) -> "keras.distribution.LayoutMap":
    """How `ModelParallel` lays out the kernels of the blocks over `model_axis`.

    Each attention projects queries, keys and values with kernels split by
    columns (each device holds whole heads when the heads divide evenly) and
    projects back with a kernel split by rows; each feed-forward network
    splits its inner layer the same way (Shoeybi et al., 2019, "Megatron-LM").
    A block's activations then cross devices twice per sublayer only.
    Embeddings, layer normalizations and the output projection are
    replicated.

    Args:
        device_mesh: `keras.distribution.DeviceMesh` with an axis named
            `model_axis`.
        model_axis: name of the mesh axis the kernels are split over.

    Example:

    >>> mesh = keras.distribution.DeviceMesh((1, 1), ("batch", "model"), ["cpu:0"])
    >>> layout_map = keras_transformer.training.transformer_layout_map(mesh)
    >>> layout_map["encoder_block_0/feed_forward/output_dense/kernel"].axes
    ('model', None)
    """
    if model_axis not in device_mesh.axis_names:
        raise ValueError(
            f"`model_axis` must name an axis of `device_mesh` {device_mesh.axis_names}. "
            f"Received: model_axis={model_axis!r}"
        )
    by_columns, by_rows, vector = (None, model_axis), (model_axis, None), (model_axis,)
    layout_map = keras.distribution.LayoutMap(device_mesh)
    layout_map[r".*/\w*attention/(query|key|value)/kernel"] = by_columns
    layout_map[r".*/\w*attention/(query|key|value)/bias"] = vector
    layout_map[r".*/\w*attention/attention_output/kernel"] = by_rows
    layout_map[r".*/feed_forward/intermediate_dense/kernel"] = by_columns
    layout_map[r".*/feed_forward/intermediate_dense/bias"] = vector
    layout_map[r".*/feed_forward/output_dense/kernel"] = by_rows
    return layout_map


# Where a cluster launcher puts the coordinator and the process's place in the
# run: JAX's own variable, then Keras's (`keras.distribution.initialize`), then
# TensorFlow's `TF_CONFIG` (every worker's address, and this one's index).
COORDINATOR_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "KERAS_DISTRIBUTION_JOB_ADDRESSES")
NUM_PROCESSES_VARIABLE = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID_VARIABLE = "KERAS_DISTRIBUTION_PROCESS_ID"
TF_CONFIG_VARIABLE = "TF_CONFIG"
# How often each process asks the coordinator which processes are alive, and
# how long the coordinator waits for a process's heartbeat before it counts
# the process as stopped.
_WATCH_SECONDS = 0.5
_HEARTBEAT_SECONDS = 10
# Barriers wait for other processes' work (process 0 tokenizing a corpus,
# say); a process that stops is noticed by the watch, not by them.
_BARRIER_SECONDS = 24 * 3600
_KEY_PREFIX = "keras_transformer"
# Process 0 writes the first when it stops early; each other process writes
# its own under the second when it stops early or learns that process 0 has.
_CHIEF_STOPS_KEY = f"{_KEY_PREFIX}/chief_stops"
_GOING_KEYS = f"{_KEY_PREFIX}/going/"


def _stderr_line(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The processes of one training run, on one host or several, and where
    they meet.

    Every process is started with the same `coordinator` and
    `num_processes`, and its own `process_id`. `join()` connects the process
    to the others before the backend uses a device; afterwards the backend's
    devices are every process's. On JAX it joins the multi-controller
    runtime (`jax.distributed.initialize`), where process 0 listens at the
    coordinator's address; on TensorFlow it creates the
    `tf.distribute.MultiWorkerMirroredStrategy` of the processes, each of
    which listens at its own address: `coordinator` then lists every
    process's address, process 0's first.

    A failure stops every process with one error line: a coordinator that
    does not answer within `timeout` seconds, or a process that stops (each
    process asks the coordinator every half second which processes are
    alive).

    Args:
        coordinator: `"HOST:PORT"` of process 0, reachable by every
            process; or `"HOST:PORT,HOST:PORT,..."`, the address of each
            process in order (what TensorFlow needs; JAX uses the first).
        num_processes: how many processes train together.
        process_id: this process's place, from 0 to `num_processes - 1`.
        timeout: seconds to wait for every process to join.
        report: what shows the error line of a failure (by default, it
            is written to the standard error stream).

    Example:

    >>> cluster = keras_transformer.training.Cluster("127.0.0.1:4321", 2, 1)
    >>> cluster.is_chief
    False
    """

    coordinator: str
    num_processes: int
    process_id: int
    timeout: float = 60.0
    report: Callable[[str], None] = dataclasses.field(
        default=_stderr_line, compare=False, repr=False
    )

    def __post_init__(self):
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(
                    "`coordinator` must be HOST:PORT, or one HOST:PORT per process separated "
                    f"by commas. Received: coordinator={self.coordinator!r}"
                )
        check_positive_int("num_processes", self.num_processes)
        if len(self.addresses) not in (1, self.num_processes):
            raise ValueError(
                f"`coordinator` must give one address, or one per process ({self.num_processes}"
                f"). Received: coordinator={self.coordinator!r}"
            )
        if not is_int(self.process_id) or not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"`process_id` must be an integer from 0 to {self.num_processes - 1} "
                f"(num_processes - 1). Received: process_id={self.process_id!r}"
            )
        check_positive("timeout", self.timeout)

    @classmethod
    def from_environment(
        cls,
        coordinator: str | None = None,
        num_processes: int | None = None,
        process_id: int | None = None,
        timeout: float = 60.0,
        report: Callable[[str], None] = _stderr_line,
    ) -> "Cluster | None":
        """The cluster the arguments describe, each one that is None read
        from the environment that launchers set (`JAX_COORDINATOR_ADDRESS`
        or `KERAS_DISTRIBUTION_JOB_ADDRESSES`, whose first address is the
        coordinator; `KERAS_DISTRIBUTION_NUM_PROCESSES`,
        `KERAS_DISTRIBUTION_PROCESS_ID`); None when none of the three is
        given anywhere (one process). Without the three, `TF_CONFIG` gives
        them: its `chief` and `worker` addresses in that order, and its
        task's place among them."""
        environment = os.environ
        if coordinator is None:
            coordinator = next(
                (environment[v] for v in COORDINATOR_VARIABLES if v in environment), None
            )
        if num_processes is None and NUM_PROCESSES_VARIABLE in environment:
            num_processes = _integer(NUM_PROCESSES_VARIABLE, environment[NUM_PROCESSES_VARIABLE])
        if process_id is None and PROCESS_ID_VARIABLE in environment:
            process_id = _integer(PROCESS_ID_VARIABLE, environment[PROCESS_ID_VARIABLE])
        unset = (coordinator, num_processes, process_id) == (None, None, None)
        if unset and TF_CONFIG_VARIABLE in environment:
            tf_config = environment[TF_CONFIG_VARIABLE]
            coordinator, num_processes, process_id = _from_tf_config(tf_config)
        given = {
            "coordinator": coordinator,
            "num_processes": num_processes,
            "process_id": process_id,
        }
        if all(value is None for value in given.values()):
            return None
        missing = [name for name, value in given.items() if value is None]
        if missing:
            raise ValueError(
                f"Several processes need `coordinator`, `num_processes` and `process_id`; "
                f"{', '.join(missing)} missing. Received: {given}"
            )
        return cls(coordinator, num_processes, process_id, timeout, report)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses `coordinator` gives: process 0's first."""
        return tuple(address.strip() for address in self.coordinator.split(","))

    @property
    def is_chief(self) -> bool:
        """Whether this is process 0, the one that writes the run's files."""
        return self.process_id == 0

    def join(self) -> None:
        """Connects this process to the others (once per process; later
        calls do nothing). From then on, if a process stops, or if the
        processes have not all joined within `timeout` seconds, `report`
        gets one line naming the cause and this process exits with status 1.
        A process that ends without `leave()` exits with status 1 without
        disconnecting."""
        _join(self)

    def check_same(self, name: str, value) -> None:
        """Raises `ValueError` in every process unless every process passes
        the same `value` (a JSON structure) under `name`."""
        client = self._client
        mine = json.dumps(value, sort_keys=True)
        client.key_value_set(f"{_KEY_PREFIX}/{name}/{self.process_id}", mine)
        different = None
        for other in range(self.num_processes):
            with self.stops_reported():
                theirs = client.blocking_key_value_get(
                    f"{_KEY_PREFIX}/{name}/{other}", int(self.timeout * 1000)
                )
            if theirs != mine and different is None:
                different = other, _differences(json.loads(mine), json.loads(theirs))
        # Every process has read every value before any stops (process 0's
        # end takes the key-value store with it).
        self.barrier(f"checked/{name}")
        if different is not None:
            _joined[self].stop()  # this process reports the difference, not the others' end
            other, differences = different
            raise ValueError(
                f"process {other} of {self.num_processes} was started with other {name} than "
                f"process {self.process_id} ({'; '.join(differences)}): start every process "
                "with the same options"
            )

    @contextlib.contextmanager
    def stops_reported(self) -> Iterator[None]:
        """Runs the block; if it raises because another process stopped (a
        collective operation that lost its peer), raises a `ValueError`
        naming the stopped process instead, once the coordinator confirms
        it (within its heartbeat timeout for the runtime's own errors; at
        once for others, which Keras or JAX may raise from a lost peer)."""
        watch = _joined[self]
        try:
            yield
        except Exception as error:
            watch.stop()
            patience = _HEARTBEAT_SECONDS + 5 if isinstance(error, watch.runtime.errors) else 0
            deadline = time.monotonic() + patience
            while not (stopped := watch.stopped_processes()) and time.monotonic() < deadline:
                time.sleep(_WATCH_SECONDS)
            if stopped:
                raise ValueError(_stopped_message(self, stopped)) from error
            raise
        except BaseException as error:
            watch.stop()  # this process stops: the others report it
            watch.interrupted = isinstance(error, KeyboardInterrupt)
            raise

    def barrier(self, name: str) -> None:
        """Waits until every process has reached the barrier `name`."""
        with self.stops_reported():
            self._client.wait_at_barrier(f"{_KEY_PREFIX}/{name}", _BARRIER_SECONDS * 1000)

    def leave(self) -> None:
        """Waits for every process, then disconnects this one: its devices
        are its own again (process 0 goes on alone, to evaluate and save)."""
        self.barrier("leave")
        watch = _joined[self]
        watch.stop()
        # Every watch is stopped before any process disconnects, and process
        # 0, whose coordinator the others disconnect from, disconnects last.
        watch.client.wait_at_barrier(f"{_KEY_PREFIX}/left", int(self.timeout * 1000))
        deadline = time.monotonic() + self.timeout
        while (
            self.is_chief
            and len(watch.stopped_processes()) < self.num_processes - 1
            and time.monotonic() < deadline
        ):
            time.sleep(_WATCH_SECONDS / 10)
        del _joined[self]
        watch.runtime.leave()

    @property
    def _client(self):
        if self not in _joined:
            raise ValueError(f"This process has not joined the cluster; call join() first: {self}")
        return _joined[self].client


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${name} must be an integer. Received: {name}={text!r}") from None


def _from_tf_config(text: str) -> tuple[str, int, int]:
    """`(coordinator, num_processes, process_id)` of a `TF_CONFIG`."""
    try:
        config = json.loads(text)
        jobs = config["cluster"]
        addresses = [*jobs.get("chief", []), *jobs.get("worker", [])]
        task_type, index = config["task"]["type"], int(config["task"]["index"])
        if task_type not in ("chief", "worker") or not addresses:
            raise ValueError(task_type)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            f"${TF_CONFIG_VARIABLE} must be JSON with `cluster` (`chief` and `worker` address "
            f"lists) and `task` (`type` chief or worker, `index`). Received: {text!r}"
        ) from None
    if task_type == "worker":
        index += len(jobs.get("chief", []))
    return ",".join(addresses), len(addresses), index


def _differences(mine: dict, theirs: dict) -> list[str]:
    return [
        f"{key}: {theirs.get(key)!r} there, {mine.get(key)!r} here"
        for key in sorted({*mine, *theirs})
        if mine.get(key) != theirs.get(key)
    ]


class _Watch(threading.Thread):
    """Ends the process with one line when the cluster fails: every process
    has not joined within the cluster's timeout, or one has stopped."""

    def __init__(self, cluster: Cluster):
        super().__init__(name="cluster-watch", daemon=True)
        self.cluster = cluster
        self.runtime = None  # the backend's runtime, set once the process has joined
        self.client = None
        self.stopped = threading.Event()
        self.interrupted = False  # by Ctrl-C: the process exits with status 130
        self.lock = threading.Lock()  # one report, from this thread or the main one

    def run(self):
        cluster = self.cluster
        deadline = time.monotonic() + cluster.timeout
        while not self.stopped.wait(_WATCH_SECONDS):
            if self.client is not None:
                stopped = self.stopped_processes()
                if stopped:
                    self.fail(_stopped_message(cluster, stopped))
            elif time.monotonic() > deadline:
                self.fail(_not_joined_message(cluster))

    def stopped_processes(self) -> list[int]:
        """The processes that the coordinator no longer hears from; all
        but this one when the coordinator itself does not answer."""
        everyone = range(self.cluster.num_processes)
        if not self.cluster.is_chief and self.runtime.chief_stops(self.client):
            return [0]
        try:
            alive = self.client.get_live_nodes(list(everyone))
        except self.runtime.errors:
            return [process for process in everyone if process != self.cluster.process_id]
        return sorted(set(everyone) - set(alive))

    def fail(self, message: str) -> None:
        with self.lock:
            if self.stopped.is_set():
                return
            self.cluster.report(message)
            self.say_goodbye()
            os._exit(1)  # the main thread may wait in the runtime, out of Python's reach

    def say_goodbye(self) -> None:
        """Before this process ends early: process 0 stops the others, the
        others tell it that they go (see `_JaxRuntime.stop_the_others`)."""
        if self.client is None:
            return
        if self.cluster.is_chief:
            self.runtime.stop_the_others(self.client)
        else:
            self.runtime.say_going(self.client)

    def stop(self) -> None:
        with self.lock:
            self.stopped.set()


def _not_joined_message(cluster: Cluster) -> str:
    return (
        f"process {cluster.process_id} could not join the {cluster.num_processes} processes at "
        f"{cluster.coordinator} within {cluster.timeout:g} s (is process 0 running, and the "
        "address reachable?)"
    )


def _stopped_message(cluster: Cluster, stopped: list[int]) -> str:
    return (
        f"process {', '.join(map(str, stopped))} of {cluster.num_processes} stopped; "
        "every process stops: run the same commands again to resume"
    )


_joined: dict[Cluster, _Watch] = {}


def _join(cluster: Cluster) -> None:
    if cluster in _joined:
        return
    if _joined:
        raise ValueError(f"This process already joined another cluster. Received: {cluster}")
    backend = keras.backend.backend()
    runtimes = {"jax": _JaxRuntime, "tensorflow": _TensorFlowRuntime}
    if backend not in runtimes:
        raise ValueError(
            f"Training over several processes needs the jax backend (jax.distributed) or the "
            f"tensorflow backend (MultiWorkerMirroredStrategy); {backend} trains in one process "
            f"here. Received: num_processes={cluster.num_processes}"
        )
    runtime = runtimes[backend](cluster)
    watch = _joined[cluster] = _Watch(cluster)
    watch.runtime = runtime
    watch.start()
    try:
        watch.client = runtime.join()
    except runtime.errors:
        watch.fail(_not_joined_message(cluster))
    atexit.register(_exit_if_joined, cluster)  # runs before the runtime's own clean-up


class _JaxRuntime:
    """JAX's multi-controller runtime: process 0 hosts the coordinator."""

    def __init__(self, cluster: Cluster):
        import jax

        self.cluster = cluster
        self.errors = (jax.errors.JaxRuntimeError,)

    def join(self):
        """Joins the processes; returns the coordinator's client (key-value
        store, barriers, live processes)."""
        import jax

        cluster = self.cluster
        # A process that stops must not end the others from inside the runtime
        # (an abort with a C++ stack trace): the watch reports it instead.
        jax.config.update("jax_enable_recoverability", True)
        jax.distributed.initialize(
            cluster.addresses[0],
            cluster.num_processes,
            cluster.process_id,
            initialization_timeout=int(cluster.timeout) + 30,  # the watch reports first
            heartbeat_timeout_seconds=_HEARTBEAT_SECONDS,
            coordinator_bind_address=_loopback_bind_address(cluster.addresses[0]),
        )
        from jax._src import distributed

        return distributed.global_state.client

    def leave(self) -> None:
        import jax

        jax.distributed.shutdown()

    # When process 0, which hosts the coordinator, ends, JAX's runtime
    # aborts every process still connected to it with a C++ stack trace. So
    # a process 0 that stops early tells the others, who each report it in
    # one line and say they go, and ends once all have (or after a bound).

    def stop_the_others(self, client) -> None:
        """Process 0: tells the other processes that it stops, and waits
        until each has said it goes, at most a heartbeat timeout and 5 s
        (a process that has died says nothing). Not `get_live_nodes`: it
        waits for every process it names that the coordinator still hears
        from to ask too."""
        others = self.cluster.num_processes - 1
        deadline = time.monotonic() + _HEARTBEAT_SECONDS + 5
        try:
            client.key_value_set(_CHIEF_STOPS_KEY, "1")
            while len(client.key_value_dir_get(_GOING_KEYS)) < others:
                if time.monotonic() > deadline:
                    return
                time.sleep(_WATCH_SECONDS / 10)
        except self.errors:
            pass

    def chief_stops(self, client) -> bool:
        """Whether process 0 said that it stops."""
        try:
            return client.key_value_try_get(_CHIEF_STOPS_KEY) == "1"
        except self.errors:  # not set
            return False

    def say_going(self, client) -> None:
        """Tells process 0 that this process ends."""
        with contextlib.suppress(*self.errors):
            client.key_value_set(f"{_GOING_KEYS}{self.cluster.process_id}", "1")


# The one job of a TensorFlow cluster: every process is one of its tasks.
_TF_JOB = "worker"


class _TensorFlowRuntime:
    """TensorFlow's `MultiWorkerMirroredStrategy` over one worker per
    process, each listening at its own address, and the coordination
    service it starts (hosted by process 0)."""

    def __init__(self, cluster: Cluster):
        import tensorflow as tf

        if len(cluster.addresses) != cluster.num_processes:
            raise ValueError(
                "TensorFlow's processes each listen at their own address: `coordinator` must "
                f"list all {cluster.num_processes} (HOST:PORT,HOST:PORT,..., process 0's first), "
                f"or TF_CONFIG give them. Received: coordinator={cluster.coordinator!r}"
            )
        self.cluster = cluster
        self.errors = (tf.errors.OpError,)
        self.strategy = None

    def join(self) -> "_TensorFlowClient":
        """Creates the strategy, which waits for every process (or raises
        once the cluster's timeout has passed)."""
        import tensorflow as tf
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.eager import context

        cluster = self.cluster
        # As the strategy would configure it, but with the cluster's timeout
        # to join (the strategy's own waits while holding the interpreter,
        # out of the watch's reach) and heartbeat.
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=f"/job:{_TF_JOB}/replica:0/task:0",
            cluster_register_timeout_in_ms=int(cluster.timeout * 1000),
            heartbeat_timeout_in_ms=_HEARTBEAT_SECONDS * 1000,
            coordinated_jobs=[
                coordination_config_pb2.CoordinatedJob(
                    name=_TF_JOB, num_tasks=cluster.num_processes
                )
            ],
        )
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({_TF_JOB: list(cluster.addresses)}),
            task_type=_TF_JOB,
            task_id=cluster.process_id,
            rpc_layer="grpc",
        )
        self.strategy = _multi_worker_strategy_class()(cluster_resolver=resolver)
        return _TensorFlowClient(cluster.num_processes)

    def leave(self) -> None:
        """Nothing to disconnect: the strategy's servers live as long as
        the process."""

    # TensorFlow's runtime lets the other processes report that process 0
    # stopped (the watch's `stopped_processes`): nothing more to say.

    def stop_the_others(self, client) -> None:
        pass

    def chief_stops(self, client) -> bool:
        return False

    def say_going(self, client) -> None:
        pass


class _TensorFlowClient:
    """The calls of JAX's coordinator client that a cluster uses, on
    TensorFlow's coordination service."""

    def __init__(self, num_processes: int):
        from tensorflow.python.eager import context

        self.context = context.context()
        self.num_processes = num_processes

    def key_value_set(self, key: str, value: str) -> None:
        self.context.set_config_key_value(key, value)

    def blocking_key_value_get(self, key: str, timeout_ms: int) -> str:
        return self.context.get_config_key_value(key, timeout_ms)

    def wait_at_barrier(self, name: str, timeout_ms: int) -> None:
        self.context.wait_at_barrier(name, timeout_ms)

    def get_live_nodes(self, processes: list[int]) -> list[int]:
        states = self.context.get_task_states([(_TF_JOB, self.num_processes)])
        return [process for process in processes if states[process] is None]


@functools.cache
def _multi_worker_strategy_class():
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` takes what
    Keras's `model.fit` gives it: Keras 3 reduces the scalar metrics of each
    step with `axis=0`, and a whole structure of batch tensors at once,
    which the strategy refuses (keras-team/keras#20585). Each tensor is
    reduced on its own, a scalar over the replicas alone."""
    import tensorflow as tf

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def reduce_one(tensor):
                rank = self.experimental_local_results(tensor)[0].shape.rank
                parent = super(KerasMultiWorkerMirroredStrategy, self)
                return parent.reduce(reduce_op, tensor, axis=axis if rank else None)

            return tf.nest.map_structure(reduce_one, value)

    return KerasMultiWorkerMirroredStrategy


def _loopback_bind_address(coordinator: str) -> str | None:
    """`coordinator` if it is a loopback address: process 0 then listens on
    loopback only. None otherwise: JAX's default, every interface (or
    `JAX_COORDINATOR_BIND_ADDRESS`), for processes on other hosts."""
    host = coordinator.rpartition(":")[0].strip("[]")
    return coordinator if host == "localhost" or host.startswith("127.") or host == "::1" else None


def _exit_if_joined(cluster: Cluster) -> None:
    """At exit: a process that leaves a cluster without `Cluster.leave`
    exits at once, with status 1 after an error and 130 after Ctrl-C (as a
    shell reports SIGINT). Disconnecting would wait for processes that may
    have stopped, and abort when the coordinator is gone."""
    if cluster in _joined:
        watch = _joined[cluster]
        watch.stop()
        watch.say_goodbye()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130 if watch.interrupted else 1)


@dataclasses.dataclass(frozen=True)
class TrainingDevices:
    """The devices a training run spreads over and the engine that does it.

    Create it with `TrainingDevices.create(mode)`; build, compile, train and
    load the model inside `scope()`. `model.fit` still takes the global
    batch size: the engine splits each batch over `batch_splits` devices.

    Attributes:
        mode: `"data"` (every device holds all the weights and a slice of
            each batch) or `"model"` (the block kernels are split over
            `model_axis_size` devices as `transformer_layout_map` says, and
            each batch over the others; JAX only).
        devices: the device names, from the backend (every process's).
        model_axis_size: devices that share one copy of the weights.
        cluster: the processes that train together, or None for one
            process. Each process feeds `model.fit` the rows of
            every global batch that its own devices take
            (`local_rows`), and process 0 alone writes files.

    Example:

    >>> if keras.backend.backend() != "torch":  # fit is distributed on jax and tensorflow
    ...     devices = keras_transformer.training.TrainingDevices.create("data")
    ...     batch_size = devices.check_batch_size(16 * devices.batch_splits)
    ...     with devices.scope():  # then compile and fit with the global batch_size
    ...         model = keras_transformer.Transformer(
    ...             100, 100, num_layers=1, d_model=32, num_heads=4, ff_dim=64)
    """

    mode: str
    devices: tuple[str, ...]
    model_axis_size: int = 1
    cluster: Cluster | None = None

    @classmethod
    def create(
        cls, mode: str, model_axis_size: int | None = None, cluster: Cluster | None = None
    ) -> "TrainingDevices":
        """Every accelerator the backend sees (every CPU device if there is
        none), for `mode`; with `cluster`, every process's, after joining
        it. `model_axis_size` (mode `"model"` only) defaults to all the
        devices of a process."""
        check_choice("distribute", mode, DISTRIBUTE_MODES)
        backend = keras.backend.backend()
        if backend not in ("jax", "tensorflow"):
            raise ValueError(
                f"`distribute={mode!r}` is not available on the {backend} backend: Keras 3 "
                "spreads `model.fit` over several devices on jax (keras.distribution) and "
                "tensorflow (tf.distribute). Use the jax or tensorflow backend."
            )
        if mode == "model" and backend != "jax":
            raise ValueError(
                f"`distribute='model'` needs the jax backend (keras.distribution.ModelParallel); "
                f"on {backend} use distribute='data'."
            )
        if cluster is not None:
            cluster.join()
        devices = tuple(_list_devices(cluster))
        if mode == "data":
            if model_axis_size not in (None, 1):
                raise ValueError(
                    "`model_axis_size` applies to distribute='model' only. "
                    f"Received: model_axis_size={model_axis_size!r} with distribute='data'"
                )
            return cls(mode, devices, cluster=cluster)
        per_process = len(devices) // (1 if cluster is None else cluster.num_processes)
        model_axis_size = per_process if model_axis_size is None else model_axis_size
        check_positive_int("model_axis_size", model_axis_size)
        if len(devices) % model_axis_size:
            raise ValueError(
                f"`model_axis_size` must divide the number of devices ({len(devices)}). "
                f"Received: model_axis_size={model_axis_size}"
            )
        return cls(mode, devices, model_axis_size, cluster)

    @property
    def batch_splits(self) -> int:
        """Into how many slices each batch is cut."""
        return len(self.devices) // self.model_axis_size

    @property
    def saves_everywhere(self) -> bool:
        """Whether every process must take part in each save of the model,
        not process 0 alone: on TensorFlow over several processes (saving
        creates variables, which the strategy mirrors across processes), and
        with a model axis that spans processes (each holds only some parts
        of the split kernels, which saving gathers from all of them)."""
        if self.cluster is None:
            return False
        per_process = len(self.devices) // self.cluster.num_processes
        return keras.backend.backend() == "tensorflow" or per_process % self.model_axis_size != 0

    def check_batch_size(self, batch_size: int) -> int:
        """Returns `batch_size` if the devices can split it evenly."""
        if batch_size % self.batch_splits:
            raise ValueError(
                f"`batch_size` must be divisible by the {self.batch_splits} devices that split "
                f"each batch. Received: batch_size={batch_size}"
            )
        return batch_size

    def check_widths(self, **widths: int) -> None:
        """Raises if a width split over the model axis does not divide evenly,
        e.g. `check_widths(d_model=512, ff_dim=2048)`."""
        for name, width in widths.items():
            if width % self.model_axis_size:
                raise ValueError(
                    f"`{name}` must be divisible by the {self.model_axis_size} devices of the "
                    f"model axis. Received: {name}={width}"
                )

    def pad_rows(self, data):
        """`data` (an array or a structure of arrays, one row per example)
        with rows of zeros appended, so that every batch, the last one too,
        splits evenly. Zero is padding: the loss and metrics skip those rows."""

        def pad(array):
            array = np.asarray(array)
            missing = -len(array) % self.batch_splits
            return np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])

        return keras.tree.map_structure(pad, data)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's files (process 0, or the
        only process)."""
        return self.cluster is None or self.cluster.is_chief

    def local_rows(self, rows: int) -> slice:
        """The rows of a global batch of `rows` rows that this process's
        devices take: all of them in one process; with several, the slice
        that the data layout gives this process's devices."""
        if self.cluster is None:
            return slice(0, rows)
        if keras.backend.backend() == "tensorflow":  # each process's replicas, in order
            share = rows // self.cluster.num_processes
            return slice(self.cluster.process_id * share, (self.cluster.process_id + 1) * share)
        layout = self.engine.get_data_layout((rows, 1)).backend_layout
        slices = [index[0] for index in layout.addressable_devices_indices_map((rows, 1)).values()]
        return slice(min(s.start or 0 for s in slices), max(s.stop or rows for s in slices))

    @contextlib.contextmanager
    def chief_first(self, name: str) -> Iterator[None]:
        """Runs the block in process 0 first and in the others once it is
        done (`name` names the wait): process 0 writes files, the others
        read them. In one process, it just runs the block."""
        if self.cluster is None:
            yield
            return
        with self.cluster.stops_reported():
            if not self.is_chief:
                self.cluster.barrier(name)
            yield
            if self.is_chief:
                self.cluster.barrier(name)

    def scope(self) -> contextlib.AbstractContextManager:
        """The context to build, compile, train and load the model in. A
        model lives with the engine it was built under: use this same
        `TrainingDevices` for everything done with it. With a cluster, an
        error because another process stopped becomes a `ValueError` that
        names it (`Cluster.stops_reported`)."""
        if self.cluster is None:
            return self.engine.scope()
        stack = contextlib.ExitStack()
        stack.enter_context(self.cluster.stops_reported())
        stack.enter_context(self.engine.scope())
        return stack

    @functools.cached_property
    def engine(self):
        """The `tf.distribute.MirroredStrategy` (tensorflow) or
        `keras.distribution.Distribution` (jax) behind `scope()`."""
        if keras.backend.backend() == "tensorflow":
            if self.cluster is not None:
                return _joined[self.cluster].runtime.strategy
            return _mirrored_strategy(self.devices)
        # Each process passes its own rows of the batches (local_rows).
        if self.mode == "data":
            return keras.distribution.DataParallel(
                devices=list(self.devices), auto_shard_dataset=False
            )
        mesh = keras.distribution.DeviceMesh(
            (self.batch_splits, self.model_axis_size), (BATCH_AXIS, MODEL_AXIS), list(self.devices)
        )
        return keras.distribution.ModelParallel(
            layout_map=transformer_layout_map(mesh),
            batch_dim_name=BATCH_AXIS,
            auto_shard_dataset=False,
        )

    def distribute_dataset(self, dataset):
        """What `model.fit` takes for a `tf.data.Dataset` of this process's
        rows of each global batch (`local_rows`): the dataset itself, but
        on TensorFlow over several processes a distributed dataset that
        hands each of this process's replicas its equal part of every
        batch (Keras would otherwise split each process's batch over the
        replicas of every process)."""
        if self.cluster is None or keras.backend.backend() != "tensorflow":
            return dataset
        replicas = len(self.engine.extended.worker_devices)
        return self.engine.distribute_datasets_from_function(
            lambda _: per_replica_batches(dataset, replicas)
        )


def per_replica_batches(dataset, replicas: int):
    """`dataset` (of batches) with each batch cut into `replicas` equal
    batches in a row, the first rows first, as a distributed dataset hands
    consecutive elements to a process's replicas."""
    if replicas == 1:
        return dataset
    import tensorflow as tf

    def cut(*batch):
        pieces = [
            tf.reshape(tensor, tf.concat([[replicas, -1], tf.shape(tensor)[1:]], 0))
            for tensor in tf.nest.flatten(batch)
        ]
        return tf.data.Dataset.from_tensor_slices(
            tf.nest.pack_sequence_as(batch if len(batch) > 1 else batch[0], pieces)
        )

    batches = dataset.cardinality()
    cut_dataset = dataset.flat_map(cut)
    if batches < 0:  # unknown or infinite
        return cut_dataset
    return cut_dataset.apply(tf.data.experimental.assert_cardinality(batches * replicas))


def sum_over_replicas(value):
    """`(sum of value over the replicas, number of replicas)` inside a
    `tf.distribute` replica context; `(value, 1)` anywhere else.

    A loss that averages over a count (of real tokens, say) uses it to divide
    by the count of the global batch instead of its own slice's.
    """
    if keras.backend.backend() != "tensorflow":
        return value, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value, 1
    return context.all_reduce("sum", value), context.num_replicas_in_sync


# Collective group keys that each `MirroredStrategy` of a process may use.
_GROUP_KEYS_PER_STRATEGY = 100_000


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]):
    """One `MirroredStrategy` per set of devices in a process: a second
    strategy over the same devices, after a first has trained, fails in its
    collective ops (a shape mismatch between replicas). Every strategy
    numbers its collective groups from 1, so strategies over other sets of
    devices in the same process would share group keys and fail ("joining a
    group with size 2, but that group has size 4"): each numbers them from a
    base of its own (`_collective_key_base`, TensorFlow's hook for that)."""
    import tensorflow as tf

    class Strategy(tf.distribute.MirroredStrategy):
        _collective_key_base = _GROUP_KEYS_PER_STRATEGY * _mirrored_strategy.cache_info().currsize

    return Strategy(list(devices))


def _list_devices(cluster: Cluster | None = None) -> list[str]:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if cluster is not None:  # the same devices in every process, as the strategy assumes
            local = _joined[cluster].runtime.strategy.extended.worker_devices
            task = f"/task:{cluster.process_id}/"
            return [
                device.replace(task, f"/task:{process}/")
                for process in range(cluster.num_processes)
                for device in local
            ]
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [device.name for device in devices]
    return keras.distribution.list_devices()
