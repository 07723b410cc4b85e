import keras
import pytest

from keras_transformer import Transformer
from keras_transformer.data import make_reverse_task


@pytest.fixture(scope="session")
def trained_reverser():
    """A small model trained with `fit` on the reverse task (fixed seed)."""
    keras.utils.set_random_seed(0)
    train_inputs, train_labels = make_reverse_task(4000, seed=0)
    model = Transformer(20, 20, num_layers=2, d_model=64, num_heads=4, ff_dim=128, dropout=0.0)
    steps = 8 * len(train_labels) // 64
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, steps, warmup_target=3e-3, warmup_steps=100
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    model.fit(train_inputs, train_labels, batch_size=64, epochs=8, verbose=0)
    return model
