"""Training to a time budget: how long a step takes, how many steps fit the
budget, and a callback that ends training when the budget is spent."""

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np

# A forward pass (validation) costs about a third of a training step, and so
# does compiling it.
_FORWARD_SHARE = 1 / 3


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """Seconds of a model's training steps: its first call (building and
    compiling the training function, then one step), each later call on the
    same batch shape, and the first call on another shape (compiling for
    that shape, then one step), or None where there was no other shape.

    Example:

    >>> timing = keras_transformer.training.StepTiming(10.5, 0.5, 3.5)
    >>> timing.compile_seconds(4)  # 10 s for the first shape, 3 s for each other
    19.0
    """

    first_call_seconds: float
    step_seconds: float
    new_shape_seconds: float | None = None

    def compile_seconds(self, shapes: int) -> float:
        """Seconds of compiling spent on `shapes` batch shapes, beyond their
        steps."""
        first = max(self.first_call_seconds - self.step_seconds, 0.0)
        if shapes == 0:
            return 0.0
        if self.new_shape_seconds is None:
            return first * shapes
        return first + max(self.new_shape_seconds - self.step_seconds, 0.0) * (shapes - 1)


def time_training_step(model: keras.Model, batch, other_batch=None, repeats: int = 3) -> StepTiming:
    """Times `model.train_on_batch` on `batch` (`(inputs, labels)`): once
    with its compiling, then the median of `repeats` more calls; then once
    on `other_batch`, a batch of another shape, if given. The model's
    weights (and random seed states) are put back afterwards; its optimizer
    has taken the steps, so compile the model again before training it.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = keras.ops.ones((4, 2)), keras.ops.ones((4, 1))
    >>> timing = keras_transformer.training.time_training_step(model, (x, y))
    >>> timing.step_seconds > 0
    True
    """
    saved = [keras.ops.convert_to_numpy(variable) for variable in model.variables]
    seconds = [_timed_step(model, batch) for _ in range(repeats + 1)]
    new_shape = None if other_batch is None else _timed_step(model, other_batch)
    for variable, value in zip(model.variables, saved, strict=True):
        variable.assign(value)
    return StepTiming(seconds[0], float(np.median(seconds[1:])), new_shape)


def _timed_step(model, batch) -> float:
    started = time.perf_counter()
    model.train_on_batch(*batch)
    return time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """How many training batches fit in `seconds`, estimated from a
    `StepTiming`: every batch costs a step, every batch shape a compiling,
    and each epoch's validation a forward pass per validation batch (a third
    of a step, as is compiling it), so with `v` validation batches to `n`
    training batches an epoch,

        batches = (seconds - compiling) / (step * (1 + v / (3 * n)))

    Example:

    >>> timing = keras_transformer.training.StepTiming(10.5, 0.5, 3.5)
    >>> plan = keras_transformer.training.BudgetPlan.estimate(
    ...     600, timing, batches_per_epoch=100, train_shapes=4)
    >>> plan.total_batches, plan.epoch_seconds  # (600 - 19) / 0.5
    (1162, 50.0)
    """

    seconds: float
    step_seconds: float
    epoch_seconds: float
    total_batches: int

    @classmethod
    def estimate(
        cls,
        seconds: float,
        timing: StepTiming,
        batches_per_epoch: int,
        train_shapes: int,
        validation_batches: int = 0,
        validation_shapes: int = 0,
        max_batches: int | None = None,
    ) -> "BudgetPlan":
        compiling = timing.compile_seconds(train_shapes) + _FORWARD_SHARE * timing.compile_seconds(
            validation_shapes
        )
        batch_seconds = timing.step_seconds * (
            1 + _FORWARD_SHARE * validation_batches / batches_per_epoch
        )
        batches = max(1, math.floor((seconds - compiling) / batch_seconds))
        if max_batches is not None:
            batches = min(batches, max_batches)
        return cls(
            seconds=seconds,
            step_seconds=timing.step_seconds,
            epoch_seconds=batch_seconds * batches_per_epoch,
            total_batches=batches,
        )

    def describe(self, batches_per_epoch: int) -> str:
        return (
            f"Time budget {_minutes(self.seconds)}: a step takes about "
            f"{self.step_seconds * 1000:.0f} ms, an epoch of {batches_per_epoch} batches "
            f"about {_minutes(self.epoch_seconds)}; about {self.total_batches} batches "
            f"({self.total_batches / batches_per_epoch:.1f} epochs) fit, and the learning "
            "rate reaches zero there"
        )


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class TimeBudget(keras.callbacks.Callback):
    """Ends training once `seconds` have passed since `started` (a
    `time.monotonic()` reading) plus `spent` seconds of earlier runs, or
    after `total_batches` batches, whichever comes first; the epoch that is
    cut short is still validated and checkpointed by Keras. Keeps the time
    it stops early enough for the validation to fit, measured on the epoch
    before.

    Adds `training_seconds` (the time spent so far, earlier runs included)
    to each epoch's logs, so a history logger that runs after it records
    them, and after the first epoch it says how many more fit.

    Example:

    >>> import time
    >>> budget = keras_transformer.training.TimeBudget(
    ...     60, total_batches=3, batches_per_epoch=4, started=time.monotonic())
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = keras.ops.zeros((16, 2)), keras.ops.zeros((16, 1))
    >>> history = model.fit(x, y, batch_size=4, epochs=5, callbacks=[budget], verbose=0)
    >>> len(history.history["loss"])  # stopped at the third batch of the first epoch
    1
    """

    def __init__(
        self,
        seconds: float,
        total_batches: int,
        batches_per_epoch: int,
        started: float,
        spent: float = 0.0,
        log: Callable[[str], None] = print,
    ):
        super().__init__()
        self.seconds = seconds
        self.total_batches = total_batches
        self.batches_per_epoch = batches_per_epoch
        self.started = started
        self.spent = spent
        self.log = log
        self._batches = 0
        self._epochs_seen = 0
        self._epoch_started = started
        self._last_batch_end = started
        self._validation_seconds = 0.0

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.started

    def on_epoch_begin(self, epoch, logs=None):
        self._batches = epoch * self.batches_per_epoch
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        self._last_batch_end = time.monotonic()
        out_of_time = self.elapsed() + self._validation_seconds >= self.seconds
        if out_of_time or self._batches >= self.total_batches:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self._validation_seconds = now - self._last_batch_end
        if logs is not None:
            logs["training_seconds"] = round(self.elapsed(), 1)
        self._epochs_seen += 1
        if self._epochs_seen == 1 and not self.model.stop_training:
            self._say_what_fits(now - self._epoch_started)

    def _say_what_fits(self, epoch_seconds: float) -> None:
        left = max(self.seconds - self.elapsed(), 0.0)
        self.log(
            f"The epoch took {_minutes(epoch_seconds)}; {_minutes(left)} of the "
            f"{_minutes(self.seconds)} budget are left: about {left / epoch_seconds:.1f} more "
            f"epochs; the learning rate reaches zero after batch {self.total_batches} "
            f"(epoch {self.total_batches / self.batches_per_epoch:.1f})"
        )
