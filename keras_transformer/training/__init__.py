"""The paper's training recipe: learning-rate schedule, loss and metric."""

from keras_transformer.training.losses import MaskedCrossEntropy
from keras_transformer.training.metrics import MaskedAccuracy
from keras_transformer.training.schedule import TransformerSchedule, paper_optimizer

__all__ = ["MaskedAccuracy", "MaskedCrossEntropy", "TransformerSchedule", "paper_optimizer"]
