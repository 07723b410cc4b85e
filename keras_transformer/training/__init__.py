"""The paper's training recipe (learning-rate schedule, loss and metric) and
training over several devices."""

from keras_transformer.training.distribution import TrainingDevices, transformer_layout_map
from keras_transformer.training.losses import MaskedCrossEntropy
from keras_transformer.training.metrics import MaskedAccuracy
from keras_transformer.training.schedule import TransformerSchedule, paper_optimizer

__all__ = [
    "MaskedAccuracy",
    "MaskedCrossEntropy",
    "TrainingDevices",
    "TransformerSchedule",
    "paper_optimizer",
    "transformer_layout_map",
]
