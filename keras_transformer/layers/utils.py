"""Small helpers the layers share."""

import hashlib

import keras

# The kinds of random sublayers a seeded layer derives seeds for: in a
# `Transformer`, its embeddings and its blocks (by layer index); in a block,
# the dropout on each sublayer's output and each attention's dropout on its
# probabilities (by the sublayer's position: self-attention 0,
# cross-attention 1, the feed-forward network last).
SEEDED_SUBLAYERS = (
    "source_embedding",
    "target_embedding",
    "encoder_block",
    "decoder_block",
    "sublayer_dropout",
    "attention_dropout",
)


def sub_seed(seed: int | None, sublayer: str, index: int = 0) -> int | None:
    """The seed of the `index`-th random sublayer of kind `sublayer` (one of
    `SEEDED_SUBLAYERS`) of a layer seeded with `seed`; None if `seed` is.

    A hash of the three, below 2**31: the same seed always gives the same
    dropout, and the sublayers of a model of any depth get distinct seeds
    (two of a hundred collide with odds of about 2e-6).
    """
    if sublayer not in SEEDED_SUBLAYERS:
        raise ValueError(f"`sublayer` must be one of {SEEDED_SUBLAYERS}. Received: {sublayer!r}")
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{seed}/{sublayer}/{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") >> 1


def clone_initializer(initializer):
    """A fresh copy of `initializer`, so that sublayers sharing a configured
    initializer do not draw identical values."""
    return keras.initializers.get(keras.initializers.serialize(initializer))
