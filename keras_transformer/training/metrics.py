"""Token accuracy over real (non-padding) target tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """The share of real target tokens whose most likely id is the label.

    Positions whose label is `padding_id` are not counted; the mask comes
    from the labels, so the figure is the same on every backend.

    Args:
        padding_id: int. Label of the positions to ignore. Defaults to `0`.
        name: name of the metric.

    Example:

    >>> metric = keras_transformer.training.MaskedAccuracy()
    >>> labels = keras.ops.convert_to_tensor([[2, 1, 0]])
    >>> logits = keras.ops.one_hot(keras.ops.convert_to_tensor([[2, 3, 3]]), 4)
    >>> metric.update_state(labels, logits)
    >>> float(metric.result())
    0.5
    """

    def __init__(self, padding_id: int = 0, name: str = "masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding_id = padding_id
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        real = ops.cast(ops.not_equal(y_true, self.padding_id), "float32")  # (batch, length)
        if sample_weight is not None:
            real = real * ops.cast(sample_weight, "float32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")  # (batch, length)
        hits = ops.cast(ops.equal(predicted, y_true), "float32")
        self.correct.assign_add(ops.sum(hits * real))
        self.count.assign_add(ops.sum(real))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}
