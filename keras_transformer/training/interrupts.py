"""Ctrl-C that always stops `model.fit`."""

import signal
import threading

import keras


class RaiseOnInterrupt(keras.callbacks.Callback):
    """Makes Ctrl-C (SIGINT) stop `model.fit` even where Python lost it.

    Python raises `KeyboardInterrupt` in whatever the main thread runs when
    the signal arrives. During `fit` on JAX that is mostly Keras converting
    each step's logs to NumPy arrays, where it waits for the step to end,
    and an exception raised inside that conversion can be lost: with two
    processes training together, SIGINT to one of them was lost in 2 of 4
    tries and training ran to its end.

    Used as a context manager, it records SIGINT (and raises
    `KeyboardInterrupt`, as Python's own handler does) while the block runs
    in the main thread; as a callback of `fit`, `evaluate` or `predict`, it
    raises `KeyboardInterrupt` at the end of the next batch or epoch once a
    signal was recorded, whether or not the first one stopped anything.

    Example:

    >>> import numpy as np
    >>> from keras_transformer.training import RaiseOnInterrupt
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> with RaiseOnInterrupt() as interrupts:  # Ctrl-C now stops fit at the latest after a batch
    ...     history = model.fit(
    ...         np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[interrupts]
    ...     )
    """

    def __init__(self):
        super().__init__()
        self.signalled = False
        self._previous_handler = None

    def __enter__(self) -> "RaiseOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._record)
        return self

    def __exit__(self, *exception) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _record(self, signal_number, frame):
        self.signalled = True
        raise KeyboardInterrupt

    def _raise_if_signalled(self, *args, **kwargs) -> None:
        if self.signalled:
            raise KeyboardInterrupt

    on_train_batch_end = _raise_if_signalled
    on_test_batch_end = _raise_if_signalled
    on_predict_batch_end = _raise_if_signalled
    on_epoch_end = _raise_if_signalled
