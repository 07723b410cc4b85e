import keras
import pytest
from filelock import FileLock

from keras_transformer import Transformer
from keras_transformer.data import make_reverse_task


def _reverser():
    return Transformer(20, 20, num_layers=2, d_model=64, num_heads=4, ff_dim=128, dropout=0.0)


def _train_reverser():
    keras.utils.set_random_seed(0)
    train_inputs, train_labels = make_reverse_task(4096, seed=0)
    model = _reverser()
    steps = 8 * len(train_labels) // 128
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, steps, warmup_target=3e-3, warmup_steps=100
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    model.fit(train_inputs, train_labels, batch_size=128, epochs=8, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_reverser(backends_tmp_path):
    """A small model trained with `fit` on the reverse task (fixed seed).

    The first pytest-xdist worker to ask, under the first backend that asks,
    trains it and saves the weights in the folder the sessions share; the
    others load them.
    """
    weights = backends_tmp_path / "trained_reverser.weights.h5"
    with FileLock(f"{weights}.lock"):
        if weights.is_file():
            model = _reverser()
            model.load_weights(weights)
            return model
        model = _train_reverser()
        model.save_weights(weights)
        return model
