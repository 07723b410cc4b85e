"""Checkpoints of a training run: the best epoch, the last few, early stopping
and checkpoint averaging, all kept on disk so that a resumed run goes on."""

import json
import os
from collections.abc import Sequence

import keras
import numpy as np

from keras_transformer.saving import save_weights_atomically, write_text_atomically
from keras_transformer.validation import check_positive_int

BEST_WEIGHTS = "best.weights.h5"
_STATE = "checkpoints.json"


class EpochCheckpoints(keras.callbacks.Callback):
    """Keeps the weights of the best epoch and of the last `keep` epochs in
    `directory`, and stops training after `patience` epochs without a better
    `monitor` value (early stopping).

    Everything it knows lives in `directory` (`checkpoints.json` and the
    `.weights.h5` files), so a run resumed after an interruption counts its
    patience and keeps its best epoch as an uninterrupted run would.

    Args:
        directory: folder of the checkpoints.
        monitor: the log to minimise, `"val_loss"` by default.
        patience: epochs without improvement before training stops; None
            never stops early.
        keep: last epochs whose weights are kept, for `average_weights`.
        save: False to write nothing and only follow the run (stop early
            when it does): the processes of a run other than the one that
            writes its files.

    Example:

    >>> import tempfile
    >>> checkpoints = keras_transformer.training.EpochCheckpoints(
    ...     tempfile.mkdtemp(), patience=2)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = keras.ops.zeros((8, 2)), keras.ops.zeros((8, 1))  # nothing left to learn
    >>> history = model.fit(x, y, validation_data=(x, y), epochs=10,
    ...                     callbacks=[checkpoints], verbose=0)
    >>> len(history.history["loss"]), checkpoints.best_epoch
    (3, 0)
    >>> model.load_weights(checkpoints.best_path)
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        monitor: str = "val_loss",
        patience: int | None = None,
        keep: int = 1,
        save: bool = True,
    ):
        super().__init__()
        self.save = save
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.patience = None if patience is None else check_positive_int("patience", patience)
        self.keep = check_positive_int("keep", keep)
        os.makedirs(self.directory, exist_ok=True)
        self.state = self._read_state()

    @property
    def best_epoch(self) -> int | None:
        return self.state["best_epoch"]

    @property
    def best_path(self) -> str:
        return os.path.join(self.directory, BEST_WEIGHTS)

    @property
    def last_paths(self) -> list[str]:
        """The kept epochs' weight files, oldest first."""
        return [self._epoch_path(epoch) for epoch in self.state["kept"]]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"`monitor`={self.monitor!r} is not among the epoch's logs "
                f"{sorted(logs or {})}; fit needs validation data for val_ metrics."
            )
        self._keep_epoch(epoch)
        if self.state["best"] is None or value < self.state["best"]:
            self.state.update(best=float(value), best_epoch=epoch)
            if self.save:
                save_weights_atomically(self.model, self.best_path)
        if self.save:
            self._write_state()
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def _keep_epoch(self, epoch):
        kept = [e for e in self.state["kept"] if e != epoch] + [epoch]
        if self.save:
            save_weights_atomically(self.model, self._epoch_path(epoch))
            for old in kept[: -self.keep]:
                if os.path.exists(path := self._epoch_path(old)):  # kept by an earlier run
                    os.remove(path)
        self.state["kept"] = kept[-self.keep :]

    def _epoch_path(self, epoch: int) -> str:
        return os.path.join(self.directory, f"epoch-{epoch:04d}.weights.h5")

    def _read_state(self) -> dict:
        path = os.path.join(self.directory, _STATE)
        if not os.path.exists(path):
            return {"best": None, "best_epoch": None, "kept": []}
        with open(path, encoding="utf-8") as file:
            return json.load(file)

    def _write_state(self):
        write_text_atomically(os.path.join(self.directory, _STATE), json.dumps(self.state))


def average_weights(model: keras.Model, paths: Sequence[str | os.PathLike]) -> None:
    """Sets `model`'s weights to the mean of the weight files at `paths`
    (checkpoint averaging, Vaswani et al., 2017, section 6.1).

    Example:

    >>> import os, tempfile
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    >>> paths = [os.path.join(tempfile.mkdtemp(), f"{i}.weights.h5") for i in (1, 2)]
    >>> for value, path in zip((1.0, 3.0), paths):
    ...     model.set_weights([keras.ops.convert_to_numpy(keras.ops.full((1, 1), value))])
    ...     model.save_weights(path)
    >>> keras_transformer.training.average_weights(model, paths)
    >>> float(model.get_weights()[0][0, 0])
    2.0
    """
    if not paths:
        raise ValueError("`paths` must name at least one weights file to average.")
    dtypes = [weight.dtype for weight in model.get_weights()]
    total = [np.zeros(weight.shape, "float64") for weight in model.get_weights()]
    for path in paths:
        model.load_weights(path)
        total = [t + w for t, w in zip(total, model.get_weights(), strict=True)]
    model.set_weights([(t / len(paths)).astype(d) for t, d in zip(total, dtypes, strict=True)])
