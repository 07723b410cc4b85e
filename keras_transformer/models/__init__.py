"""Models assembled from the layers, and how they decode."""

from keras_transformer.models.samplers import BeamSearch
from keras_transformer.models.transformer import Transformer

__all__ = ["BeamSearch", "Transformer"]
