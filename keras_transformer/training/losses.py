"""Label-smoothed cross-entropy over real (non-padding) target tokens."""

import keras
from keras import ops

from keras_transformer.training.distribution import sum_over_replicas
from keras_transformer.validation import check_rate


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy with label smoothing, averaged over the real tokens.

    Each target id `y` becomes the distribution `(1 - label_smoothing) *
    onehot(y) + label_smoothing / vocabulary_size` (the paper smooths with
    0.1, section 5.4), and the loss is the mean cross-entropy over the
    positions whose label is not `padding_id`.

    The padding mask comes from the labels, so the loss is the same on every
    backend whether or not Keras also passes the logits' own mask: the value
    is already the mean over the batch's real tokens, which Keras's masking
    leaves unchanged. It is also the same when `tf.distribute` splits the
    batch over replicas holding different numbers of real tokens.

    Args:
        label_smoothing: float in [0, 1). Defaults to `0.1`.
        padding_id: int. Label of the positions to ignore. Defaults to `0`.
        from_logits: bool. Whether `y_pred` are logits (default) or
            probabilities.
        name: name of the loss.

    Example:

    >>> loss = keras_transformer.training.MaskedCrossEntropy()
    >>> labels = keras.ops.convert_to_tensor([[3, 1, 0]])
    >>> logits = keras.ops.zeros((1, 3, 5))
    >>> round(float(loss(labels, logits)), 4)  # log(5): uniform predictions
    1.6094
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        padding_id: int = 0,
        from_logits: bool = True,
        name: str = "masked_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = check_rate("label_smoothing", label_smoothing)
        self.padding_id = padding_id
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        log_probs = (
            ops.log_softmax(y_pred, axis=-1)
            if self.from_logits
            else ops.log(ops.clip(y_pred, 1e-7, 1.0))
        )  # (batch, length, vocab)
        vocabulary_size = ops.shape(y_pred)[-1]
        targets = ops.one_hot(ops.cast(y_true, "int32"), vocabulary_size)
        targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
            vocabulary_size, "float32"
        )  # (batch, length, vocab)
        token_losses = -ops.sum(targets * log_probs, axis=-1)  # (batch, length)
        real = ops.cast(ops.not_equal(y_true, self.padding_id), "float32")  # (batch, length)
        # Under tf.distribute each replica sees a slice of the batch: divide by
        # the real tokens of the whole batch (Keras then sums the replicas'
        # gradients after scaling each loss by 1 / replicas).
        real_tokens, replicas = sum_over_replicas(ops.sum(real))
        return ops.sum(token_losses * real) * replicas / ops.maximum(real_tokens, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "label_smoothing": self.label_smoothing,
                "padding_id": self.padding_id,
                "from_logits": self.from_logits,
            }
        )
        return config
