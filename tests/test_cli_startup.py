"""The command's start-up: options read without Keras, and the lines that
TensorFlow's and SentencePiece's C++ code log kept out of the terminal."""

import os
import subprocess
import sys

THIRD_PARTY = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795809941.791292    7583 cudart_stub.cc:31] Could not find cuda drivers",
    "W0000 00:00:1795809941.888033    7583 cpu_feature_guard.cc:227] This TensorFlow binary",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
    "E0000 00:00:1795810069.070431    7998 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization.",
]
KEPT = [
    "E0000 00:00:1795810069.070431    7998 op_kernel.cc:1857] OP_REQUIRES failed: not found",
    "keras-transformer: error: runs/x: no such directory",
    "  I0000 is not at the start of this line.cc:1] so it stays",
    "Traceback (most recent call last):",
    "UserWarning: a Python warning",
]


def run_filtered(body: str, environment: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `body` (statements, indented by 4) inside `third_party_logs_filtered`
    in a new process, and returns what reached its standard error stream."""
    code = (
        "import os, sys\n"
        "from keras_transformer_cli.startup import third_party_logs_filtered\n"
        "with third_party_logs_filtered():\n"
        f"{body}"
    )
    inherited = {
        name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"
    }
    environment = {**inherited, **(environment or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment
    )


def interleaved() -> list[str]:
    lines = []
    for index in range(max(len(THIRD_PARTY), len(KEPT))):
        lines += THIRD_PARTY[index : index + 1] + KEPT[index : index + 1]
    return lines


def test_third_party_lines_are_dropped_and_the_rest_kept_in_order():
    text = "".join(line + "\n" for line in interleaved())
    # Written straight to file descriptor 2, as C++ code does, and through
    # Python's sys.stderr.
    result = run_filtered(
        f"    os.write(2, {text.encode()!r})\n    print('from python', file=sys.stderr)\n"
    )
    assert result.returncode == 0
    assert result.stderr.splitlines() == [*KEPT, "from python"]


def test_a_crash_inside_the_block_loses_no_line():
    result = run_filtered(
        f"    os.write(2, {(THIRD_PARTY[1] + chr(10)).encode()!r})\n"
        "    os.write(2, b'F0000 00:00:1.5  1 check.cc:9] Check failed: x\\n')\n"
        "    os._exit(134)\n"
    )
    assert result.returncode == 134
    assert result.stderr == "F0000 00:00:1.5  1 check.cc:9] Check failed: x\n"


def test_nothing_is_filtered_when_every_tensorflow_log_is_asked_for():
    text = "".join(line + "\n" for line in THIRD_PARTY)
    result = run_filtered(f"    os.write(2, {text.encode()!r})\n", {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.stderr.splitlines() == THIRD_PARTY


def test_option_modules_are_those_the_package_imports_later():
    code = (
        "import sys\n"
        "from keras_transformer_cli.startup import option_modules\n"
        "modules = option_modules()\n"
        "print('keras' in sys.modules)\n"
        "import keras_transformer\n"
        "from keras_transformer.translation import TrainingOptions\n"
        "from keras_transformer.serving import ServerOptions\n"
        "print(TrainingOptions is modules['translation.options'].TrainingOptions)\n"
        "print(ServerOptions is modules['serving.options'].ServerOptions)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "True"]
