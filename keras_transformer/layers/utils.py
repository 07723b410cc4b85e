"""Small helpers the layers share."""

import keras


def sub_seed(seed: int | None, offset: int) -> int | None:
    """A distinct, reproducible seed for the `offset`-th random sublayer."""
    return None if seed is None else seed + offset


def clone_initializer(initializer):
    """A fresh copy of `initializer`, so that sublayers sharing a configured
    initializer do not draw identical values."""
    return keras.initializers.get(keras.initializers.serialize(initializer))
