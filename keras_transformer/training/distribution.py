"""Training on several devices with the engines the backends provide:
`keras.distribution` (data and model parallel) on JAX, and
`tf.distribute.MirroredStrategy` (data parallel) on TensorFlow.

Keras 3 has no multi-device `model.fit` on PyTorch: `keras.distribution`
supports JAX only, and a torch `DistributedDataParallel` run needs a training
loop of its own, outside `model.fit`. Asking for a distribution there raises a
`ValueError` that names the backends that can.
"""

import contextlib
import dataclasses
import functools

import keras
import numpy as np

from keras_transformer.validation import DISTRIBUTE_MODES, check_choice, check_positive_int

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
        devices: the device names, from the backend.
        model_axis_size: devices that share one copy of the weights.

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

    @classmethod
    def create(cls, mode: str, model_axis_size: int | None = None) -> "TrainingDevices":
        """Every accelerator the backend sees (every CPU device if there is
        none), for `mode`. `model_axis_size` (mode `"model"` only) defaults
        to all the devices."""
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
        devices = tuple(_list_devices())
        if mode == "data":
            if model_axis_size not in (None, 1):
                raise ValueError(
                    "`model_axis_size` applies to distribute='model' only. "
                    f"Received: model_axis_size={model_axis_size!r} with distribute='data'"
                )
            return cls(mode, devices)
        model_axis_size = len(devices) if model_axis_size is None else model_axis_size
        check_positive_int("model_axis_size", model_axis_size)
        if len(devices) % model_axis_size:
            raise ValueError(
                f"`model_axis_size` must divide the number of devices ({len(devices)}). "
                f"Received: model_axis_size={model_axis_size}"
            )
        return cls(mode, devices, model_axis_size)

    @property
    def batch_splits(self) -> int:
        """Into how many slices each batch is cut."""
        return len(self.devices) // self.model_axis_size

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

    def scope(self) -> contextlib.AbstractContextManager:
        """The context to build, compile, train and load the model in. A
        model lives with the engine it was built under: use this same
        `TrainingDevices` for everything done with it."""
        return self.engine.scope()

    @functools.cached_property
    def engine(self):
        """The `tf.distribute.MirroredStrategy` (tensorflow) or
        `keras.distribution.Distribution` (jax) behind `scope()`."""
        if keras.backend.backend() == "tensorflow":
            return _mirrored_strategy(self.devices)
        if self.mode == "data":
            return keras.distribution.DataParallel(devices=list(self.devices))
        mesh = keras.distribution.DeviceMesh(
            (self.batch_splits, self.model_axis_size), (BATCH_AXIS, MODEL_AXIS), list(self.devices)
        )
        return keras.distribution.ModelParallel(
            layout_map=transformer_layout_map(mesh), batch_dim_name=BATCH_AXIS
        )


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


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]):
    """One `MirroredStrategy` per set of devices in a process: a second
    strategy over the same devices, after a first has trained, fails in its
    collective ops (a shape mismatch between replicas)."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def _list_devices() -> list[str]:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [device.name for device in devices]
    return keras.distribution.list_devices()
