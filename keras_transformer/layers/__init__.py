"""The Transformer's building blocks, one public layer per module."""

from keras_transformer.layers.attention import MultiHeadSelfAttention
from keras_transformer.layers.decoder_block import DecoderBlock
from keras_transformer.layers.encoder_block import EncoderBlock
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.input_embedding import InputEmbedding
from keras_transformer.layers.masking import CausalMask
from keras_transformer.layers.positional_encoding import PositionalEncoding

__all__ = [
    "CausalMask",
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "InputEmbedding",
    "MultiHeadSelfAttention",
    "PositionalEncoding",
]
