"""Argument checks shared by the layers: each raises a `ValueError` that names
the argument, the value received and what was expected."""

from collections.abc import Sequence
from typing import Any


def check_positive_int(name: str, value: Any) -> int:
    """Returns `value` if it is an integer >= 1, else raises `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def check_non_negative(name: str, value: Any) -> float:
    """Returns `value` as a float if it is a number >= 0, else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return float(value)


def check_rate(name: str, value: Any) -> float:
    """Returns `value` as a float if it lies in [0, 1), else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Returns `value` if it is one of `choices`, else raises."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def check_sequence_shape(name: str, shape: Sequence[Any]) -> int:
    """Checks a `(batch, length, width)` shape and returns its known width."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(
            f"`{name}` must have rank 3, (batch, length, width). Received: {name}.shape={shape}"
        )
    if shape[-1] is None:
        raise ValueError(
            f"The last dimension (width) of `{name}` must be known. Received: {name}.shape={shape}"
        )
    return shape[-1]


def divide_heads(d_model: int, num_heads: int, argument: str) -> int:
    """Returns `d_model // num_heads`, raising if it does not divide evenly."""
    if d_model % num_heads:
        raise ValueError(
            f"`{argument}` ({d_model}) must be divisible by `num_heads` "
            f"({num_heads}) when `key_dim` is not given. "
            f"Received: {argument}={d_model}, num_heads={num_heads}"
        )
    return d_model // num_heads
