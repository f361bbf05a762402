"""Timing in one process: runners timed interleaved, the host's SGEMM rate, medians.

Export's ``--lowering auto``, the per-op profiler and the benchmark scripts measure with these,
so their figures are taken the same way. Torch-free at import (the SGEMM rate imports torch).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import numpy as np

K = TypeVar("K")


def time_interleaved(
    runners: Mapping[K, Callable[[np.ndarray], object]], x: np.ndarray, rounds: int = 30, calls: int = 5,
    warmup: int = 5,
) -> dict[K, list[float]]:
    """Per-call latencies in ms: ``rounds`` rounds, each running every runner ``calls`` times in turn.

    Round-robin, so load from other processes hits every runner alike; each runner first gets
    ``warmup`` untimed calls.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    times: dict[K, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                run(x)
            times[key].append((time.perf_counter() - t0) * 1e3 / calls)
    return times


def sgemm_gmacs(n: int = 1024, threads: int = 1, repeats: int = 5) -> float:
    """The host's single-precision GEMM rate in GMAC/s (``torch.mm`` n x n, best of ``repeats``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return n**3 / best / 1e9


def median(values: Iterable[float]) -> float:
    """The median of some timings, as a plain float."""
    return float(statistics.median(values))


def medians(samples: Mapping[K, Iterable[float]]) -> dict[K, float]:
    """The median of each key's timings."""
    return {key: median(values) for key, values in samples.items()}
