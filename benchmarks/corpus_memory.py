"""Peak memory of `keras-transformer train` at two corpus sizes:

    KERAS_BACKEND=jax python -m benchmarks.corpus_memory [--pairs 100000,1000000]
        [--seconds 60]

For each size the pairs of the `spelled_digits` task are written to a file,
and `keras-transformer train` runs on it with its default options: it splits
the file into the run's split files, fits the tokenizers, writes the token
cache, compiles and trains. The process's peak resident memory (VmHWM) is
read when training starts (the command prints its data summary) and again
after `--seconds` of training, when the process is stopped: an epoch of a
million pairs takes hours on a CPU, and the memory of reading batches is flat
after the first few hundred. Prints one JSON line per size.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.tasks import task_pairs

TASK = "spelled_digits"


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure(count: int, seconds: float, directory: str) -> dict:
    data = os.path.join(directory, "pairs.tsv")
    with open(data, "w", encoding="utf-8") as file:
        file.writelines(f"{source}\t{target}\n" for source, target in task_pairs(TASK, count))
    out = os.path.join(directory, "run")
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", data, "--out", out]
    process = subprocess.Popen(
        [*command, "--no-pictures"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    started = time.monotonic()
    summary = None
    for line in process.stdout:
        if "training pairs" in line:
            summary = line.strip()
            break
    if summary is None:
        raise RuntimeError(f"train stopped before training (status {process.wait()})")
    result = {
        "pairs": count,
        "input_mib": round(os.path.getsize(data) / 2**20, 1),
        "preparation_seconds": round(time.monotonic() - started),
        "peak_rss_mib_when_training_starts": peak_rss_mib(process.pid),
        "summary": summary,
    }
    # Keep reading the output so that the process never blocks on a full pipe.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    if process.poll() is not None:
        raise RuntimeError(f"train ended early (status {process.returncode})")
    result["peak_rss_mib_after_training"] = peak_rss_mib(process.pid)
    result["training_seconds"] = seconds
    process.send_signal(signal.SIGKILL)
    process.wait()
    index = os.path.join(out, "training_state", "tokens", "train", "lengths.npy")
    result["cache_index_mib"] = round(os.path.getsize(index) / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="100000,1000000")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    for count in map(int, args.pairs.split(",")):
        with tempfile.TemporaryDirectory() as directory:
            print(json.dumps(measure(count, args.seconds, directory)), flush=True)


if __name__ == "__main__":
    main()
