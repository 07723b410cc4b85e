"""Ctrl-C stops `fit` even when the `KeyboardInterrupt` it raised was lost."""

import os
import signal

import keras
import numpy as np
import pytest

from keras_transformer.training import RaiseOnInterrupt


def small_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def interrupt_and_lose_it():
    """SIGINT to this process, its `KeyboardInterrupt` caught and dropped, as
    code that swallows exceptions would."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        signal.getsignal(signal.SIGINT)  # a bytecode boundary: the handler runs here
    except KeyboardInterrupt:
        return
    pytest.fail("SIGINT did not raise KeyboardInterrupt")


def test_a_lost_interrupt_still_stops_fit_after_one_batch():
    model, counted = small_model(), CountBatches()
    inputs, targets = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    with RaiseOnInterrupt() as interrupts:
        interrupt_and_lose_it()
        with pytest.raises(KeyboardInterrupt):
            model.fit(
                inputs, targets, batch_size=2, epochs=3, verbose=0, callbacks=[counted, interrupts]
            )
    assert interrupts.signalled and counted.batches == 1


def test_without_a_signal_fit_runs_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    model, counted = small_model(), CountBatches()
    with RaiseOnInterrupt() as interrupts:
        assert signal.getsignal(signal.SIGINT) != before
        model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=2, verbose=0,
                  callbacks=[counted, interrupts])  # fmt: skip
    assert not interrupts.signalled and counted.batches == 8
    assert signal.getsignal(signal.SIGINT) == before
