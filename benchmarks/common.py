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
    """Like `interleaved_times`, for functions that time themselves: the
    lists hold what each call returned (its seconds, or a list of them)."""
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
    """`work` units per second: at the median time, and the spread between
    the rates at the 75th and 25th percentiles of the times."""
    slow, median, fast = np.percentile(times, [75, 50, 25])
    return {
        "per_second": work / float(median),
        "spread": [work / float(slow), work / float(fast)],
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
