"""Training over several devices (the virtual CPU devices of conftest.py):
the same steps as on one device, the layouts the layout map asks for,
checkpoints that move between one and several devices, and clear errors
where a backend cannot distribute."""

import contextlib
import json
import os
import re

import keras
import numpy as np
import pytest

from keras_transformer import Transformer
from keras_transformer.training import (
    Cluster,
    MaskedAccuracy,
    MaskedCrossEntropy,
    TrainingDevices,
    paper_optimizer,
    transformer_layout_map,
)
from tests.conftest import VIRTUAL_DEVICES
from tests.helpers import BACKEND, to_numpy

SUPPORTED_MODES = {"jax": ("data", "model"), "tensorflow": ("data",)}.get(BACKEND, ())
MODEL_AXIS_SIZE = 2
GLOBAL_BATCH = 8
STEPS = 3


def supported(mode):
    return pytest.param(
        mode,
        marks=pytest.mark.skipif(
            mode not in SUPPORTED_MODES, reason=f"{BACKEND} has no {mode}-parallel model.fit"
        ),
    )


def batch():
    """One global batch whose rows hold different numbers of real tokens, so
    that each device's slice has its own count."""
    rng = np.random.default_rng(3)
    encoder_inputs = rng.integers(1, 40, (GLOBAL_BATCH, 12))
    decoder_inputs = rng.integers(1, 48, (GLOBAL_BATCH, 10))
    labels = rng.integers(1, 48, (GLOBAL_BATCH, 10))
    for row, length in enumerate([10, 2, 9, 3, 10, 1, 4, 7]):
        decoder_inputs[row, length:] = labels[row, length:] = 0
        encoder_inputs[row, 12 - length :] = 0
    return {"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs}, labels


def new_model():
    model = Transformer(40, 48, num_layers=1, d_model=16, num_heads=4, ff_dim=32, dropout=0.0)
    model.compile(
        optimizer=paper_optimizer(16, warmup_steps=2),
        loss=MaskedCrossEntropy(),
        metrics=[MaskedAccuracy()],
    )
    return model


def train(devices):
    """`STEPS` steps on the same global batch; each epoch is one step, so the
    history holds every step's loss and accuracy."""
    keras.utils.set_random_seed(0)
    inputs, labels = batch()
    with devices.scope() if devices else contextlib.nullcontext():
        model = new_model()
        history = model.fit(
            inputs, labels, batch_size=GLOBAL_BATCH, epochs=STEPS, shuffle=False, verbose=0
        )
    return model, history.history


def create(mode):
    return TrainingDevices.create(mode, MODEL_AXIS_SIZE if mode == "model" else None)


@pytest.fixture(scope="module")
def single_device_run():
    return train(None)


@pytest.fixture(scope="module", params=[supported("data"), supported("model")])
def distributed_run(request):
    devices = create(request.param)
    model, history = train(devices)
    return devices, model, history


def test_devices_are_every_virtual_device_and_split_the_batch(distributed_run):
    devices, _, _ = distributed_run
    assert len(devices.devices) == VIRTUAL_DEVICES
    expected_splits = VIRTUAL_DEVICES // (MODEL_AXIS_SIZE if devices.mode == "model" else 1)
    assert devices.batch_splits == expected_splits


def test_distributed_steps_match_one_device(distributed_run, single_device_run):
    _, model, history = distributed_run
    reference_model, reference = single_device_run
    for name in ("loss", "masked_accuracy"):
        np.testing.assert_allclose(history[name], reference[name], rtol=1e-5, atol=1e-6)
    # The schedule counts global steps, so the learning rate matched at each.
    assert int(to_numpy(model.optimizer.iterations)) == STEPS
    for weight, reference_weight in zip(model.weights, reference_model.weights, strict=True):
        if weight.path.endswith("key/bias"):
            # Its exact gradient is zero (softmax ignores a score shift shared
            # by all keys), so Adam turns rounding noise into full steps.
            continue
        np.testing.assert_allclose(
            to_numpy(weight),
            to_numpy(reference_weight),
            rtol=1e-4,
            atol=1e-5,
            err_msg=weight.path,
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute strategies in one process")
def test_fewer_devices_after_all_of_them_take_the_same_steps(distributed_run, single_device_run):
    """A strategy over two devices, in a process where one over all four has
    trained (their collective groups must not clash), matches one device."""
    devices, _, _ = distributed_run
    _, history = train(TrainingDevices("data", devices.devices[:2]))
    _, reference = single_device_run
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-5, atol=1e-6)


def expected_axes(path):
    """The layout `transformer_layout_map` promises for a variable path:
    column-split projections in, row-split projections out."""
    for pattern, axes in (
        (r"attention/(query|key|value)/kernel", (None, "model")),
        (r"attention/(query|key|value)/bias", ("model",)),
        (r"attention/attention_output/kernel", ("model", None)),
        (r"feed_forward/intermediate_dense/kernel", (None, "model")),
        (r"feed_forward/intermediate_dense/bias", ("model",)),
        (r"feed_forward/output_dense/kernel", ("model", None)),
    ):
        if re.search(pattern + "$", path):
            return axes
    return None


def test_layout_map_splits_the_block_kernels_only():
    mesh = keras.distribution.DeviceMesh((1, 1), ("batch", "model"), ["cpu:0"])
    layout_map = transformer_layout_map(mesh)
    model = Transformer(40, 48, num_layers=2, d_model=16, num_heads=4, ff_dim=32)
    split = 0
    for weight in model.weights:
        layout = layout_map[weight.path]
        axes = None if layout is None else tuple(layout.axes)
        assert axes == expected_axes(weight.path), weight.path
        split += axes is not None
    # Per block: q, k, v (kernel and bias) and output kernel of each attention,
    # plus the feed-forward kernels and inner bias.
    assert split == 2 * 10 + 2 * 17


@pytest.mark.skipif(BACKEND != "jax", reason="layouts of keras.distribution (jax)")
def test_jax_variables_are_laid_out_as_the_map_says(distributed_run):
    devices, model, _ = distributed_run
    optimizer_slots = {
        slot.path.split("/")[-1]: slot for slot in model.optimizer.variables if slot.shape
    }
    for weight in model.weights:
        spec = tuple(weight.value.sharding.spec)
        expected = expected_axes(weight.path) if devices.mode == "model" else None
        if expected is None:
            assert weight.value.sharding.is_fully_replicated, weight.path
            continue
        assert spec == expected, weight.path
        shard = weight.value.addressable_shards[0].data.shape
        split_axis = expected.index("model")
        assert shard[split_axis] == weight.shape[split_axis] // MODEL_AXIS_SIZE
        momentum = optimizer_slots[weight.path.replace("/", "_") + "_momentum"]
        assert tuple(momentum.value.sharding.spec) == expected, momentum.path


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute variables")
def test_tensorflow_variables_are_mirrored_on_every_device(distributed_run):
    _, model, _ = distributed_run
    for weight in model.weights:
        copies = weight.value.values
        assert len(copies) == VIRTUAL_DEVICES, weight.path
        np.testing.assert_array_equal(copies[0].numpy(), copies[-1].numpy())


def predict(model):
    """The logits of the test batch, from an eager call (no compiled predict
    step to build for each model)."""
    inputs, _ = batch()
    return to_numpy(model(inputs, training=False))


def test_a_distributed_model_reloads_on_one_device(distributed_run, tmp_path):
    devices, model, _ = distributed_run
    with devices.scope():
        expected = predict(model)
    path = os.path.join(tmp_path, "distributed.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(predict(reloaded), expected, atol=1e-5)


def test_a_single_device_model_reloads_over_several(distributed_run, single_device_run, tmp_path):
    devices, _, _ = distributed_run
    model, _ = single_device_run
    path = os.path.join(tmp_path, "single.keras")
    model.save(path)
    expected = predict(model)  # outside the scope: its weights live on one device
    with devices.scope():
        reloaded = keras.saving.load_model(path)
        np.testing.assert_allclose(predict(reloaded), expected, atol=1e-5)
    if BACKEND == "jax" and devices.mode == "model":
        kernel = next(w for w in reloaded.weights if w.path.endswith("output_dense/kernel"))
        assert tuple(kernel.value.sharding.spec) == ("model", None)


@pytest.mark.skipif(not SUPPORTED_MODES, reason=f"{BACKEND} has no distributed model.fit")
def test_padding_rows_make_every_batch_split_evenly():
    devices = create("data")
    inputs, labels = batch()
    padded_inputs, padded_labels = devices.pad_rows((inputs, labels[:7]))
    assert len(padded_labels) == 8 and not padded_labels[7].any()
    np.testing.assert_array_equal(padded_labels[:7], labels[:7])
    assert padded_inputs["encoder_inputs"].shape == (8, 12)  # already even


@pytest.mark.skipif(not SUPPORTED_MODES, reason=f"{BACKEND} has no distributed model.fit")
def test_bad_batch_sizes_and_widths_are_refused():
    devices = create(SUPPORTED_MODES[-1])
    with pytest.raises(ValueError, match=r"batch_size.*divisible by the \d devices.*=29"):
        devices.check_batch_size(29)
    if devices.mode == "model":
        with pytest.raises(ValueError, match=r"`ff_dim` must be divisible .*ff_dim=33"):
            devices.check_widths(d_model=16, ff_dim=33)
        with pytest.raises(ValueError, match="model_axis_size.*divide the number of devices"):
            TrainingDevices.create("model", 3)


def test_unsupported_requests_name_the_alternative():
    with pytest.raises(ValueError, match=r"`distribute` must be one of \['data', 'model'\]"):
        TrainingDevices.create("pipeline")
    for mode in ("data", "model"):
        if mode in SUPPORTED_MODES:
            continue
        with pytest.raises(ValueError, match=f"distribute='{mode}'.*(jax|tensorflow)"):
            TrainingDevices.create(mode)
    if "data" in SUPPORTED_MODES:
        with pytest.raises(ValueError, match="model_axis_size.*distribute='model' only"):
            TrainingDevices.create("data", 2)


LAUNCHER_VARIABLES = (
    "JAX_COORDINATOR_ADDRESS",
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
    "TF_CONFIG",
)


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_cluster_comes_from_the_arguments_or_the_launchers_variables(no_launcher):
    assert Cluster.from_environment() is None
    no_launcher.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:1234")
    no_launcher.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    no_launcher.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    cluster = Cluster.from_environment()
    assert cluster == Cluster("10.0.0.1:1234,10.0.0.2:1234", 2, 1)
    assert cluster.addresses == ("10.0.0.1:1234", "10.0.0.2:1234")
    no_launcher.setenv("JAX_COORDINATOR_ADDRESS", "host0:99")
    cluster = Cluster.from_environment(process_id=0)
    assert (cluster.addresses, cluster.process_id, cluster.is_chief) == (("host0:99",), 0, True)


def test_a_cluster_comes_from_tf_config(no_launcher):
    cluster = {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]}
    task = {"type": "worker", "index": 1}
    no_launcher.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert Cluster.from_environment() == Cluster("host0:2222,host1:2222,host2:2222", 3, 2)
    workers = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
    no_launcher.setenv("TF_CONFIG", json.dumps(workers))
    assert Cluster.from_environment() == Cluster("a:1,b:1", 2, 0)
    no_launcher.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")  # the other variables win
    with pytest.raises(ValueError, match="coordinator, process_id missing"):
        Cluster.from_environment()


@pytest.mark.parametrize(
    "config",
    ["{", '{"cluster": {}}', '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}'],
)
def test_a_bad_tf_config_is_refused_naming_it(no_launcher, config):
    no_launcher.setenv("TF_CONFIG", config)
    with pytest.raises(ValueError, match=r"\$TF_CONFIG must be JSON with `cluster`.*Received"):
        Cluster.from_environment()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("host0", 2, 0), r"`coordinator` must be HOST:PORT.*Received: coordinator='host0'"),
        (("a:1,b", 2, 0), r"`coordinator` must be HOST:PORT.*Received: coordinator='a:1,b'"),
        (("a:1,b:1", 3, 0), r"one address, or one per process \(3\).*coordinator='a:1,b:1'"),
        (("host0:1", 0, 0), r"`num_processes` must be a positive integer.*=0"),
        (("host0:1", 2, 2), r"`process_id` must be an integer from 0 to 1.*process_id=2"),
    ],
)
def test_bad_clusters_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Cluster(*arguments)


def test_a_partly_described_cluster_names_what_is_missing(monkeypatch):
    monkeypatch.delenv("KERAS_DISTRIBUTION_PROCESS_ID", raising=False)
    with pytest.raises(ValueError, match="process_id missing"):
        Cluster.from_environment("host0:1", 2)


@pytest.mark.skipif(BACKEND != "torch", reason="jax and tensorflow train over several processes")
def test_several_processes_are_refused_with_the_backends_that_can():
    with pytest.raises(ValueError, match="jax.*tensorflow"):
        TrainingDevices.create("data", cluster=Cluster("127.0.0.1:1", 2, 0))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's processes listen each")
def test_tensorflow_needs_every_process_address():
    with pytest.raises(ValueError, match="list all 2 .*Received: coordinator='127.0.0.1:1'"):
        TrainingDevices.create("data", cluster=Cluster("127.0.0.1:1", 2, 0))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.data")
def test_each_replica_of_a_process_takes_its_equal_part_of_a_batch_in_order():
    import tensorflow as tf

    from keras_transformer.training.distribution import per_replica_batches

    rows = np.arange(16, dtype="int32").reshape(2, 4, 2)  # 2 batches of 4 rows
    batches = tf.data.Dataset.from_tensor_slices(({"ids": rows}, rows[..., 0]))
    cut = per_replica_batches(batches, 2)
    assert int(cut.cardinality()) == 4
    parts = [(inputs["ids"].numpy(), labels.numpy()) for inputs, labels in cut]
    for index, (ids, labels) in enumerate(parts):
        batch, half = divmod(index, 2)
        np.testing.assert_array_equal(ids, rows[batch, 2 * half : 2 * half + 2])
        np.testing.assert_array_equal(labels, rows[batch, 2 * half : 2 * half + 2, 0])
    assert per_replica_batches(batches, 1) is batches
