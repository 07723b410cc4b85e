"""Saving that never leaves a half-written file in place of a good one."""

import os
import tempfile

import keras


def save_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as a `.keras` file at `path` through a temporary file in
    the same directory, renamed over `path` only once it is complete: a crash
    or an interruption mid-save leaves the previous file untouched."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must end with '.keras'. Received: path={path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".saving-", suffix=".keras", dir=directory)
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
