"""Timing shared by the benchmark scripts (run as ``python benchmarks/bench_x.py``, so this directory is on the path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, *, warmup: bool = False) -> float:
    """Median wall time (s) of ``repeats`` calls of ``fn``, after one untimed call if ``warmup``."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_wall_cpu(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> tuple[float, float, object]:
    """Median wall and process-CPU seconds (all threads) of ``repeats`` calls, after one warm-up call unless
    ``warmup=False``; the last result."""
    out = fn() if warmup else None
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), out
