"""The Transformer of "Attention Is All You Need" as Keras 3 layers.

Runs on the TensorFlow, JAX and PyTorch backends. Importing the package
registers every layer and model for `keras.saving.load_model`.
"""

from keras_transformer import training, translation
from keras_transformer.layers import (
    CausalMask,
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    InputEmbedding,
    MultiHeadSelfAttention,
    PositionalEncoding,
)
from keras_transformer.models import BeamSearch, Transformer
from keras_transformer.translation import Translator
from keras_transformer.version import __version__ as __version__

__all__ = [
    "BeamSearch",
    "CausalMask",
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "InputEmbedding",
    "MultiHeadSelfAttention",
    "PositionalEncoding",
    "Transformer",
    "Translator",
    "training",
    "translation",
]
