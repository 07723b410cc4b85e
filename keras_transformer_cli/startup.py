"""What the command does before Keras is imported: read its options from
the modules of `keras_transformer` that need no Keras, and keep the lines
that TensorFlow's and SentencePiece's C++ code log out of the terminal."""

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

PACKAGE = "keras_transformer"
# The modules that describe the options of the commands, each after the
# modules it imports: none of them imports Keras or a backend, so `--help`
# answers at once.
OPTION_MODULES = ("validation", "translation.options", "serving.requests", "serving.options")

# Lines that TensorFlow's and SentencePiece's C++ code log on their own:
# INFO and WARNING records in absl's format ("I0000 00:00:1795809941.791292
# 7583 cudart_stub.cc:31] Could not find cuda drivers ..."), absl's notice
# that logging is not set up, the second line of TensorFlow's CPU-instructions
# notice, the ERROR record of a machine without a GPU ("E0000 ...
# cuda_platform.cc:52] failed call to cuInit"), and SentencePiece's INFO
# lines ("normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty").
# Other ERROR and FATAL records, Python warnings and tracebacks, and
# everything of the user's still reach the terminal.
_THIRD_PARTY_LOG_LINE = re.compile(
    r"[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] "
    r"|E\d{4} \d\d:\d\d:[\d.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|\w+\.cc\(\d+\) LOG\(INFO\) "
)


def option_modules() -> dict[str, ModuleType]:
    """`OPTION_MODULES` by name, imported without running the `__init__` of
    the packages above them (`keras_transformer` imports Keras, to register
    its layers for `keras.saving.load_model`). Each is the module that
    `import keras_transformer...` finds later, not a copy."""
    return {name: _import_leaf(f"{PACKAGE}.{name}") for name in OPTION_MODULES}


def _import_leaf(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    (package_directory,) = importlib.util.find_spec(PACKAGE).submodule_search_locations
    path = os.path.join(package_directory, *name.split(".")[1:]) + ".py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@contextlib.contextmanager
def third_party_logs_filtered() -> Iterator[None]:
    """Passes what is written to the standard error stream (file descriptor
    2, where C++ libraries log) inside the block, by this process and the
    processes it starts, through a filter process that drops the lines of
    `_THIRD_PARTY_LOG_LINE` and forwards everything else as it comes. The
    filter reads until every writer has closed the stream, so even a crash
    loses no line; it ignores Ctrl-C, which is the command's to handle.

    Nothing is filtered when `TF_CPP_MIN_LOG_LEVEL` is 0: then the user
    asked for every log. (JAX sets it to 1 for itself when it is imported,
    so 1 says nothing about the user.)"""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    read_end, write_end = os.pipe()
    program = [sys.executable, "-I", "-S", "-c", _FILTER, _THIRD_PARTY_LOG_LINE.pattern]
    log_filter = subprocess.Popen(program, stdin=read_end)
    os.close(read_end)
    sys.stderr.flush()
    terminal = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes this process's end of the pipe
        os.close(terminal)
        log_filter.wait()


_FILTER = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
pattern = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not pattern.match(line):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
"""
