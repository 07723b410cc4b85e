"""The paper's training recipe (learning-rate schedule, loss and metric),
checkpoints, training to a time budget and training over several devices."""

from keras_transformer.training.checkpoints import EpochCheckpoints, average_weights
from keras_transformer.training.distribution import (
    Cluster,
    TrainingDevices,
    transformer_layout_map,
)
from keras_transformer.training.interrupts import RaiseOnInterrupt
from keras_transformer.training.losses import MaskedCrossEntropy
from keras_transformer.training.metrics import MaskedAccuracy
from keras_transformer.training.schedule import TransformerSchedule, paper_optimizer
from keras_transformer.training.time_budget import (
    BudgetPlan,
    StepTiming,
    TimeBudget,
    time_training_step,
)
from keras_transformer.validation import parse_duration

__all__ = [
    "BudgetPlan",
    "Cluster",
    "EpochCheckpoints",
    "MaskedAccuracy",
    "MaskedCrossEntropy",
    "RaiseOnInterrupt",
    "StepTiming",
    "TimeBudget",
    "TrainingDevices",
    "TransformerSchedule",
    "average_weights",
    "paper_optimizer",
    "parse_duration",
    "time_training_step",
    "transformer_layout_map",
]
