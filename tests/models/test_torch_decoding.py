"""Decoding on torch runs its steps as TorchScript traces: they must decode
exactly what the eager steps decode, follow weight updates, and step aside
where tracing cannot follow the step."""

import keras
import numpy as np
import pytest

from keras_transformer import Transformer
from keras_transformer.data import END_TOKEN_ID, START_TOKEN_ID, make_reverse_task
from keras_transformer.models.decoding import TorchTracedStep
from keras_transformer.models.samplers import choose_sampler
from tests.helpers import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="torch's decoding step")

MAX_LENGTH = 24


@pytest.fixture(scope="module")
def sources():
    inputs, _ = make_reverse_task(5, seed=4)
    return inputs["encoder_inputs"]


@pytest.fixture
def untrained():
    """Random weights, and an end token it never picks: every row decodes
    all its steps."""
    keras.utils.set_random_seed(1)
    model = Transformer(20, 20, num_layers=2, d_model=32, num_heads=4, ff_dim=64, dropout=0.0)
    bias = np.where(np.arange(20) == END_TOKEN_ID, -1e4, 0.0).astype("float32")
    model.output_projection.bias.assign(bias)
    return model


@pytest.fixture
def trace_at_once(monkeypatch):
    monkeypatch.setattr(TorchTracedStep, "EAGER_STEPS", 0)


def decode(model, sources, **kwargs):
    return model.generate(sources, START_TOKEN_ID, END_TOKEN_ID, MAX_LENGTH, **kwargs)


def traced_step(model, sampler="greedy"):
    return model._decoder(choose_sampler(sampler), run_eagerly=False).decoder_step


@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_traced_decoding_equals_eager_decoding(trace_at_once, trained_reverser, sources, sampler):
    traced = decode(trained_reverser, sources, sampler=sampler)
    assert traced_step(trained_reverser, sampler).traces  # the steps did run traced
    eager = decode(trained_reverser, sources, sampler=sampler, run_eagerly=True)
    np.testing.assert_array_equal(traced, eager)


def test_trace_follows_weight_updates(trace_at_once, untrained, sources):
    before = decode(untrained, sources)
    weights = untrained.get_weights()
    rng = np.random.default_rng(0)
    untrained.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in weights])
    after = decode(untrained, sources)
    assert len(traced_step(untrained).traces) == 1  # the same trace, new weights
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, decode(untrained, sources, run_eagerly=True))


def test_a_shape_is_traced_after_its_first_eager_steps(untrained, sources):
    step = traced_step(untrained)
    steps = TorchTracedStep.EAGER_STEPS
    short = untrained.generate(sources, START_TOKEN_ID, END_TOKEN_ID, steps + 1)
    assert short.shape[1] == steps + 1  # every row ran all its steps
    assert not step.traces  # no more steps than a trace costs: all eager
    eager = decode(untrained, sources, run_eagerly=True)
    np.testing.assert_array_equal(decode(untrained, sources), eager)
    assert len(step.traces) == 1


def test_a_step_tracing_cannot_follow_runs_eagerly(untrained):
    def step(token, position, self_caches, cross_caches, source_mask):
        # A position read as a Python number is frozen into a trace.
        return token * int(position), self_caches

    traced = TorchTracedStep(step, untrained)
    traced.EAGER_STEPS = 0
    token, cache = np.ones((2, 1), "int32"), np.zeros((2, 2, 1, 8, 1), "float32")
    with pytest.warns(UserWarning, match="eagerly"):
        traced(token, 3, (cache,), (cache,), token)
    for position in (3, 5):
        outputs, _ = traced(token, position, (cache,), (cache,), token)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), token * position)
