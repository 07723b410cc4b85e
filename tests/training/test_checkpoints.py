import os

import keras
import numpy as np
import pytest

from keras_transformer.training.checkpoints import EpochCheckpoints, average_weights


def small_model(learning_rate=0.01):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def data(rng):
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, x @ np.array([[1.0], [-2.0], [0.5]], "float32")


def test_training_stops_after_patience_epochs_without_progress(tmp_path, rng):
    x, y = data(rng)
    checkpoints = EpochCheckpoints(tmp_path, patience=2)
    model = small_model(learning_rate=0.0)  # the validation loss never falls
    history = model.fit(x, y, validation_data=(x, y), epochs=10, callbacks=[checkpoints], verbose=0)
    assert len(history.history["loss"]) == 3
    assert checkpoints.best_epoch == 0


def test_the_best_epoch_is_kept_and_a_resumed_callback_remembers_it(tmp_path, rng):
    model = small_model()
    checkpoints = EpochCheckpoints(tmp_path, patience=2, keep=2)
    checkpoints.set_model(model)
    losses = [1.0, 0.5, 0.7]
    best_weights = None
    for epoch, loss in enumerate(losses):
        model.set_weights([w + 1 for w in model.get_weights()])
        checkpoints.on_epoch_end(epoch, {"val_loss": loss})
        if epoch == 1:
            best_weights = model.get_weights()
    assert not model.stop_training and checkpoints.best_epoch == 1
    resumed = EpochCheckpoints(tmp_path, patience=2, keep=2)
    resumed.set_model(model)
    resumed.on_epoch_end(3, {"val_loss": 0.6})
    assert model.stop_training  # two epochs after the best one
    assert [os.path.basename(p) for p in resumed.last_paths] == [
        "epoch-0002.weights.h5",
        "epoch-0003.weights.h5",
    ]
    assert not os.path.exists(tmp_path / "epoch-0001.weights.h5")
    model.load_weights(resumed.best_path)
    for loaded, expected in zip(model.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(loaded, expected)


def test_averaged_weights_are_the_mean_of_the_saved_ones(tmp_path, rng):
    model = small_model()
    paths, saved = [], []
    for index in range(3):
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
        paths.append(str(tmp_path / f"{index}.weights.h5"))
        model.save_weights(paths[-1])
        saved.append(model.get_weights())
    average_weights(model, paths)
    for index, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(weight, np.mean([s[index] for s in saved], axis=0), atol=1e-6)


def test_a_missing_validation_metric_is_named(tmp_path):
    checkpoints = EpochCheckpoints(tmp_path)
    checkpoints.set_model(small_model())
    with pytest.raises(ValueError, match="`monitor`='val_loss' is not among"):
        checkpoints.on_epoch_end(0, {"loss": 1.0})
