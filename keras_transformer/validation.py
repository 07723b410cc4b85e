"""Argument checks shared by the layers: each raises a `ValueError` that names
the argument, the value received and what was expected."""

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
_SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}
# How training may spread over devices (see `training.TrainingDevices`).
DISTRIBUTE_MODES = ("data", "model")


def is_int(value) -> bool:
    """Whether `value` is a Python or numpy integer (a bool is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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


def check_positive(name: str, value: Any) -> float:
    """Returns `value` as a float if it is a number > 0, else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
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


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: a number of seconds, or a number followed by
    `s`, `m` or `h` (`"600"`, `"90s"`, `"10m"`, `"1.5h"`); raises
    `ValueError` naming anything else.

    Example:

    >>> keras_transformer.training.parse_duration("10m")
    600.0
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ValueError(
                "A duration must be a number of seconds, or a number followed by s, m or h "
                f"(such as 600, 90s, 10m, 1.5h). Received: {text!r}"
            )
        seconds = float(match[1]) * _SECONDS_PER_UNIT[match[2]]
    if not seconds > 0:
        raise ValueError(f"A duration must be more than 0 seconds. Received: {text!r}")
    return seconds
