import time

import keras
import numpy as np
import pytest

from keras_transformer.training.time_budget import (
    BudgetPlan,
    StepTiming,
    TimeBudget,
    time_training_step,
)
from keras_transformer.validation import parse_duration
from tests.helpers import to_numpy


@pytest.mark.parametrize(
    "text, seconds",
    [("600", 600.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), (" 2 m ", 120.0), (45, 45.0)],
)
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "-5", "0", "1e3", "10 minutes", True])
def test_bad_durations_name_the_value(text):
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(")):
        parse_duration(text)


def test_the_plan_leaves_time_for_compiling_and_validation():
    timing = StepTiming(first_call_seconds=2.5, step_seconds=0.5)  # compiling: 2 s
    plan = BudgetPlan.estimate(
        100.0,
        timing,
        batches_per_epoch=30,
        train_shapes=4,
        validation_batches=9,
        validation_shapes=3,
    )
    compiling = 2.0 * (4 + 3 / 3)
    batch_seconds = 0.5 * (1 + 9 / (3 * 30))
    assert plan.total_batches == int((100 - compiling) / batch_seconds) == 163
    assert plan.epoch_seconds == pytest.approx(30 * batch_seconds)
    assert BudgetPlan.estimate(100.0, timing, 30, 4, 9, 3, max_batches=60).total_batches == 60
    assert BudgetPlan.estimate(5.0, timing, 30, 4).total_batches == 1  # at least one


def test_a_second_shape_times_compiling_without_the_first_calls_setting_up():
    timing = StepTiming(first_call_seconds=10.5, step_seconds=0.5, new_shape_seconds=3.5)
    assert timing.compile_seconds(1) == 10.0
    assert timing.compile_seconds(4) == 10.0 + 3 * 3.0
    assert StepTiming(10.5, 0.5).compile_seconds(4) == 40.0


def regression_model():
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(8),
            keras.layers.Dropout(0.5, seed=1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def regression_data(rows=64):
    x = np.random.default_rng(0).normal(size=(rows, 3)).astype("float32")
    return x, x @ np.array([[1.0], [-2.0], [0.5]], "float32")


def test_timing_steps_leaves_every_variable_as_it_was():
    model = regression_model()
    x, y = regression_data()
    before = [to_numpy(variable) for variable in model.variables]
    timing = time_training_step(model, (x, y), (x[:8], y[:8]), repeats=2)
    assert timing.first_call_seconds > 0 and timing.step_seconds > 0
    assert timing.new_shape_seconds > 0
    for variable, value in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(to_numpy(variable), value, err_msg=variable.path)


def fit_with_budget(budget, epochs=3, batch_size=8):
    model = regression_model()
    x, y = regression_data()
    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(x[:16], y[:16]),
        callbacks=[budget],
        verbose=0,
    ).history


def test_training_stops_at_the_planned_batch_and_validates_the_cut_epoch():
    budget = TimeBudget(3600, total_batches=11, batches_per_epoch=8, started=time.monotonic())
    history = fit_with_budget(budget)
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert budget._batches == 11
    assert 0 < history["training_seconds"][0] <= history["training_seconds"][1] < 3600


def test_training_stops_when_the_time_is_spent_counting_earlier_runs():
    said = []
    budget = TimeBudget(
        60,
        total_batches=10**6,
        batches_per_epoch=8,
        started=time.monotonic(),
        spent=60.0,  # an earlier run spent it all
        log=said.append,
    )
    history = fit_with_budget(budget)
    assert len(history["loss"]) == 1 and budget._batches == 1
    assert history["training_seconds"][0] >= 60
    assert said == []  # nothing is left to estimate


def test_after_the_first_epoch_it_says_how_many_more_fit():
    said = []
    budget = TimeBudget(
        3600, total_batches=24, batches_per_epoch=8, started=time.monotonic(), log=said.append
    )
    fit_with_budget(budget)
    assert len(said) == 1
    assert "more epochs" in said[0] and "after batch 24 (epoch 3.0)" in said[0]
