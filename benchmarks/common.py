"""Timing helpers shared by the benchmarks."""

import os
import platform
import time

import keras
import numpy as np


def interleaved_times(functions, repeats):
    """Wall seconds of each call of each function, after one warm-up call
    each, taken in turns (A B C A B C ...) so that drifts hit all alike."""
    return interleaved_measurements(
        {name: _wall_seconds(function) for name, function in functions.items()}, repeats
    )


def interleaved_measurements(measures, repeats):
    """Like `interleaved_times`, for functions that time themselves and
    return the seconds their timed part took."""
    for measure in measures.values():
        measure()
    times = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            times[name].append(measure())
    return times


def _wall_seconds(function):
    def measure():
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    return measure


def rates(times, work):
    """`work` units per second: the median over repeats and the spread."""
    return {
        "per_second": work / float(np.median(times)),
        "spread": [work / max(times), work / min(times)],
    }


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores"


def matmul_flops_per_second(size=1024, repeats=20):
    """This machine's measured float32 matrix-multiply rate under the
    current backend: the best of `repeats` (size x size) @ (size x size)."""
    a = keras.random.normal((size, size), seed=0)
    b = keras.random.normal((size, size), seed=1)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
