"""The warmup, inverse-square-root learning-rate schedule of the paper."""

import keras
from keras import ops

from keras_transformer.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`.

    The learning rate grows linearly for the first `warmup_steps` steps and
    then decays with the inverse square root of the step (Vaswani et al.,
    2017, section 5.3: `warmup_steps = 4000`). Steps count from 1.

    With `total_steps`, the rate is also multiplied by `1 - step /
    total_steps`, so that it reaches zero at the last step of a run of known
    length; the last epochs then settle instead of wandering.

    Args:
        d_model: int. The model width.
        warmup_steps: int. Steps of linear warmup. Defaults to `4000`.
        scale: float. A factor on the whole schedule. Defaults to `1.0`.
        total_steps: int or None. Steps of the whole run, for the linear
            decay to zero; None (the default) keeps the paper's schedule.

    Example:

    >>> schedule = keras_transformer.training.TransformerSchedule(512)
    >>> round(float(schedule(3999)), 6)  # the peak, at step 4000
    0.000699
    """

    def __init__(
        self,
        d_model: int,
        warmup_steps: int = 4000,
        scale: float = 1.0,
        total_steps: int | None = None,
    ):
        self.d_model = check_positive_int("d_model", d_model)
        self.warmup_steps = check_positive_int("warmup_steps", warmup_steps)
        if not scale > 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale!r}")
        self.scale = float(scale)
        self.total_steps = (
            None if total_steps is None else check_positive_int("total_steps", total_steps)
        )

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        decay = ops.minimum(ops.rsqrt(step), step * self.warmup_steps**-1.5)
        if self.total_steps is not None:
            decay = decay * ops.maximum(1.0 - step / (self.total_steps + 1), 0.0)
        return self.scale * self.d_model**-0.5 * decay

    def get_config(self):
        return {
            "d_model": self.d_model,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
            "total_steps": self.total_steps,
        }


def paper_optimizer(
    d_model: int,
    warmup_steps: int = 4000,
    scale: float = 1.0,
    gradient_accumulation_steps: int | None = None,
    total_steps: int | None = None,
):
    """Adam with the paper's beta_1 = 0.9, beta_2 = 0.98, epsilon = 1e-9 and
    the `TransformerSchedule` (with `total_steps`, decaying to zero at the
    end); with `gradient_accumulation_steps`, the gradients of that many
    batches are averaged into one update (Keras's optimizer option), which
    trains as one batch that many times larger."""
    return keras.optimizers.Adam(
        TransformerSchedule(d_model, warmup_steps, scale, total_steps),
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-9,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
