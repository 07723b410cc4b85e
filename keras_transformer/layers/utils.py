"""Small helpers the layers share."""

import keras

# What a layer adds to its seed for each random sublayer, as (base, stride):
# the `index`-th sublayer of a kind gets `seed + base + stride * index`. The
# offsets are distinct and fixed, so that a seed keeps giving the same dropout.
SEED_OFFSETS = {
    # In a `Transformer`: its embeddings, and its blocks by layer index.
    "source_embedding": (0, 0),
    "target_embedding": (1, 0),
    "encoder_block": (10, 10),
    "decoder_block": (15, 10),
    # In a block: the dropout on each sublayer's output, and each attention's
    # dropout on its probabilities, by the sublayer's position in the block
    # (self-attention 0; cross-attention 1; the feed-forward network last).
    "sublayer_dropout": (0, 1),
    "attention_dropout": (100, 1),
}


def sub_seed(seed: int | None, sublayer: str, index: int = 0) -> int | None:
    """The seed of the `index`-th random sublayer of kind `sublayer` (a key
    of `SEED_OFFSETS`) of a layer seeded with `seed`; None if `seed` is."""
    base, stride = SEED_OFFSETS[sublayer]
    return None if seed is None else seed + base + stride * index


def clone_initializer(initializer):
    """A fresh copy of `initializer`, so that sublayers sharing a configured
    initializer do not draw identical values."""
    return keras.initializers.get(keras.initializers.serialize(initializer))
