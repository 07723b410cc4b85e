import os

import keras
import numpy as np
import pytest

from keras_transformer import Transformer
from keras_transformer.data import make_reverse_task
from keras_transformer.training import (
    MaskedAccuracy,
    MaskedCrossEntropy,
    TransformerSchedule,
    paper_optimizer,
)
from tests.helpers import to_numpy

LABELS = np.array([[4, 2, 1, 0, 0], [3, 3, 2, 1, 2]], "int32")


def test_schedule_follows_the_paper_formula():
    schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
    for step in [1, 10, 3999, 4000, 4001, 10000, 100000]:
        expected = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        np.testing.assert_allclose(float(to_numpy(schedule(step - 1))), expected, rtol=1e-5)


def test_schedule_with_total_steps_decays_linearly_to_zero():
    paper = TransformerSchedule(d_model=64, warmup_steps=10)
    decayed = TransformerSchedule(d_model=64, warmup_steps=10, total_steps=100)
    for step in [0, 9, 50, 98]:
        expected = float(to_numpy(paper(step))) * (1 - (step + 1) / 101)
        np.testing.assert_allclose(float(to_numpy(decayed(step))), expected, rtol=1e-5)
    assert float(to_numpy(decayed(99))) > 0
    assert float(to_numpy(decayed(100))) == float(to_numpy(decayed(500))) == 0
    restored = TransformerSchedule.from_config(decayed.get_config())
    assert restored.total_steps == 100


def test_schedule_peaks_at_the_end_of_warmup():
    schedule = TransformerSchedule(d_model=64, warmup_steps=100, scale=2.0)
    rates = [float(to_numpy(schedule(step))) for step in range(300)]
    assert int(np.argmax(rates)) == 99
    assert TransformerSchedule.from_config(schedule.get_config()).get_config() == (
        schedule.get_config()
    )


def test_paper_optimizer():
    optimizer = paper_optimizer(d_model=512)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.98, 1e-9)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_matches_keras_categorical_cross_entropy_on_real_tokens(rng, label_smoothing):
    logits = rng.normal(size=(2, 5, 6)).astype("float32")
    loss = to_numpy(MaskedCrossEntropy(label_smoothing)(LABELS, logits))
    real = LABELS != 0
    reference = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing
    )
    expected = reference(np.eye(6)[LABELS[real]], logits[real])
    np.testing.assert_allclose(loss, to_numpy(expected), rtol=1e-5)


def test_loss_by_hand(rng):
    logits = rng.normal(size=(2, 5, 6)).astype("float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.eye(6)[LABELS] * 0.9 + 0.1 / 6
    per_token = -(targets * log_probs).sum(-1)
    expected = per_token[LABELS != 0].mean()
    np.testing.assert_allclose(to_numpy(MaskedCrossEntropy()(LABELS, logits)), expected, rtol=1e-5)


def test_padding_predictions_do_not_count(rng):
    logits = rng.normal(size=(2, 5, 6)).astype("float32")
    changed = logits.copy()
    changed[LABELS == 0] = 100.0
    loss = MaskedCrossEntropy()
    np.testing.assert_allclose(to_numpy(loss(LABELS, changed)), to_numpy(loss(LABELS, logits)))


def test_accuracy_counts_real_tokens_only():
    predictions = LABELS.copy()
    predictions[0, 0] = 5  # one wrong real token
    predictions[0, 4] = 5  # a wrong prediction at a padding position
    metric = MaskedAccuracy()
    metric.update_state(LABELS, np.eye(6)[predictions])
    np.testing.assert_allclose(float(to_numpy(metric.result())), 7 / 8)
    metric.reset_state()
    assert float(to_numpy(metric.result())) == 0.0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing"):
        MaskedCrossEntropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        TransformerSchedule(512, warmup_steps=0)


def test_trains_saves_and_loads_with_the_recipe(tmp_path):
    inputs, labels = make_reverse_task(256, seed=0)
    model = Transformer(20, 20, num_layers=1, d_model=32, num_heads=4, ff_dim=64)
    model.compile(
        optimizer=paper_optimizer(32, warmup_steps=20),
        loss=MaskedCrossEntropy(),
        metrics=[MaskedAccuracy()],
    )
    history = model.fit(inputs, labels, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert 0.0 < history["masked_accuracy"][-1] <= 1.0
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored.loss, MaskedCrossEntropy)
    np.testing.assert_allclose(
        restored.evaluate(inputs, labels, verbose=0),
        model.evaluate(inputs, labels, verbose=0),
        rtol=1e-5,
    )


def test_fit_reports_the_same_loss_and_accuracy_on_every_backend():
    """Keras may also apply the logits' padding mask; the figures it reports
    still equal the loss and accuracy computed from the labels alone."""
    inputs, labels = make_reverse_task(32, seed=1)
    model = Transformer(20, 20, num_layers=1, d_model=32, num_heads=4, ff_dim=64)
    model.compile(loss=MaskedCrossEntropy(), metrics=[MaskedAccuracy()])
    reported_loss, reported_accuracy = model.evaluate(inputs, labels, batch_size=32, verbose=0)
    logits = to_numpy(model.predict(inputs, batch_size=32, verbose=0))
    real = labels != 0
    np.testing.assert_allclose(
        reported_loss, to_numpy(MaskedCrossEntropy()(labels, logits)), rtol=1e-5
    )
    np.testing.assert_allclose(
        reported_accuracy, (logits.argmax(-1) == labels)[real].mean(), rtol=1e-5
    )
