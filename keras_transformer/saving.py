"""Saving that never leaves a half-written file in place of a good one."""

import contextlib
import os
import tempfile
from collections.abc import Iterator

import keras


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path beside `path` (ending with `suffix`) to write
    to; once the block ends without an error the file is renamed over `path`,
    else it is removed and `path` stays as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".saving-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as a `.keras` file at `path` through a temporary file in
    the same directory, renamed over `path` only once it is complete: a crash
    or an interruption mid-save leaves the previous file untouched."""
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"`path` must end with '.keras'. Received: path={path!r}")
    with replacing(path, ".keras") as temporary:
        model.save(temporary)


def save_weights_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.save_weights(path)` (a `.weights.h5` file) through a temporary
    file, as `save_atomically` does; outside any `keras.distribution`, so that
    one process of several can save alone, with every variable readable
    (`readable_variables`)."""
    with (
        replacing(path, ".weights.h5") as temporary,
        outside_distribution(),
        readable_variables(model),
    ):
        model.save_weights(temporary)


@contextlib.contextmanager
def readable_variables(model: keras.Model) -> Iterator[None]:
    """Runs the block with every variable of `model` and of its optimizer
    readable as a whole in this process.

    Under a JAX distribution over several processes, a variable split over
    devices of several processes (a kernel on a model axis that spans them)
    holds in each process only the parts on that process's devices, and
    reading it (as saving does) fails. For the block, such a variable holds
    its whole value instead, gathered from every process: a collective, so
    every process of the distribution enters the block, with the same model.
    Anything else runs the block as it is.
    """
    spread = [variable for variable in _model_variables(model) if _is_spread(variable)]
    if not spread:
        yield
        return
    from jax.experimental import multihost_utils

    # Keras reads a JAX variable's value from `_value`, and `assign` would
    # split the whole value over the devices again.
    held = [variable._value for variable in spread]
    try:
        for variable in spread:
            variable._value = multihost_utils.process_allgather(variable._value, tiled=True)
        yield
    finally:
        for variable, value in zip(spread, held, strict=True):
            variable._value = value


def _model_variables(model: keras.Model) -> list:
    optimizer = getattr(model, "optimizer", None)
    extra = list(optimizer.variables) if optimizer is not None and optimizer.built else []
    return list({id(variable): variable for variable in [*model.variables, *extra]}.values())


def _is_spread(variable) -> bool:
    """Whether this process holds only some parts of `variable` (JAX)."""
    value = getattr(variable, "_value", None)
    return (
        keras.backend.backend() == "jax"
        and value is not None
        and hasattr(value, "is_fully_addressable")
        and not value.is_fully_addressable
        and not value.is_fully_replicated
    )


@contextlib.contextmanager
def outside_distribution() -> Iterator[None]:
    """Runs the block with no `keras.distribution` set. Saving creates
    variables (of a throwaway optimizer); under a distribution of several
    processes, each variable is placed with all of them, so a process that
    saves alone must do it outside."""
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` through a temporary file."""
    with replacing(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
