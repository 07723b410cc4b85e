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

    Args:
        d_model: int. The model width.
        warmup_steps: int. Steps of linear warmup. Defaults to `4000`.
        scale: float. A factor on the whole schedule. Defaults to `1.0`.

    Example:

    >>> schedule = keras_transformer.training.TransformerSchedule(512)
    >>> round(float(schedule(3999)), 6)  # the peak, at step 4000
    0.000699
    """

    def __init__(self, d_model: int, warmup_steps: int = 4000, scale: float = 1.0):
        self.d_model = check_positive_int("d_model", d_model)
        self.warmup_steps = check_positive_int("warmup_steps", warmup_steps)
        if not scale > 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale!r}")
        self.scale = float(scale)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        decay = ops.minimum(ops.rsqrt(step), step * self.warmup_steps**-1.5)
        return self.scale * self.d_model**-0.5 * decay

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


def paper_optimizer(
    d_model: int,
    warmup_steps: int = 4000,
    scale: float = 1.0,
    gradient_accumulation_steps: int | None = None,
):
    """Adam with the paper's beta_1 = 0.9, beta_2 = 0.98, epsilon = 1e-9 and
    the `TransformerSchedule`; with `gradient_accumulation_steps`, the
    gradients of that many batches are averaged into one update (Keras's
    optimizer option), which trains as one batch that many times larger."""
    return keras.optimizers.Adam(
        TransformerSchedule(d_model, warmup_steps, scale),
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-9,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
