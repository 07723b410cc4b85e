"""The paper's training recipe (learning-rate schedule, loss and metric),
checkpoints and training over several devices."""

from keras_transformer.training.checkpoints import EpochCheckpoints, average_weights
from keras_transformer.training.distribution import TrainingDevices, transformer_layout_map
from keras_transformer.training.losses import MaskedCrossEntropy
from keras_transformer.training.metrics import MaskedAccuracy
from keras_transformer.training.schedule import TransformerSchedule, paper_optimizer

__all__ = [
    "EpochCheckpoints",
    "MaskedAccuracy",
    "MaskedCrossEntropy",
    "TrainingDevices",
    "TransformerSchedule",
    "average_weights",
    "paper_optimizer",
    "transformer_layout_map",
]
