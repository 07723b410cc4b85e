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
    one process of several can save alone."""
    with replacing(path, ".weights.h5") as temporary, outside_distribution():
        model.save_weights(temporary)


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
