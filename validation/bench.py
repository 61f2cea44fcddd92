"""Timing with torch.utils.benchmark: medians and run-to-run spread.

Each case is timed `repeats` times with `Timer.blocked_autorange` (which picks the
number of calls per block and synchronises CUDA itself). The reported time is the
median over repeats of each repeat's median; `spread` is (max - min) / median of the
repeat medians (run-to-run), `iqr_rel` the within-run interquartile range / median.
`best_s` is the fastest per-call time of any block over all repeats: interference from
other processes only ever slows a call down, so calibration takes rates from it.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

from precsim.validation.torchenv import load_torch


@dataclass(frozen=True)
class BenchSettings:
    """How long to time each case: `min_run_time_s` per repeat, `repeats` repeats."""

    min_run_time_s: float = 0.1
    repeats: int = 3
    threads: int | None = None  # None: torch's current setting


QUICK = BenchSettings(min_run_time_s=0.04, repeats=3)
FULL = BenchSettings(min_run_time_s=0.25, repeats=5)
#: the smallest setting, for tests that exercise the whole path without caring for numbers
TINY = BenchSettings(min_run_time_s=0.002, repeats=2)


@dataclass(frozen=True)
class Timing:
    median_s: float
    spread: float
    iqr_rel: float
    repeats: int
    calls: int
    best_s: float


def time_callable(fn: Callable[[], object], settings: BenchSettings) -> Timing:
    """Time `fn()` with torch.utils.benchmark.Timer; see the module docstring."""
    torch = load_torch()
    from torch.utils import benchmark
    threads = settings.threads or torch.get_num_threads()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    fn()  # warm-up: first-call allocations, weight packing, lazy init
    medians, iqrs, calls, best = [], [], 0, float("inf")
    for _ in range(settings.repeats):
        m = timer.blocked_autorange(min_run_time=settings.min_run_time_s)
        medians.append(m.median)
        iqrs.append(m.iqr / m.median if m.median > 0 else 0.0)
        calls += len(m.raw_times) * m.number_per_run
        best = min(best, min(m.times))
    median = statistics.median(medians)
    spread = (max(medians) - min(medians)) / median if median > 0 else 0.0
    return Timing(median_s=median, spread=spread, iqr_rel=statistics.median(iqrs),
                  repeats=settings.repeats, calls=calls, best_s=best)


def time_best_of_threads(fn: Callable[[], object], settings: BenchSettings, device: str
                         ) -> tuple[Timing, int]:
    """`time_callable` at the configured threads and, on a multi-threaded CPU, also on
    one thread; `best_s` is the faster of the two and the thread count that reached it
    is returned. On a loaded machine every parallel call waits at the OpenMP barrier for
    a descheduled worker (milliseconds per call whatever its size), while one thread
    keeps running: the best of both is the rate the hardware can deliver."""
    torch = load_torch()
    threads = settings.threads or torch.get_num_threads()
    timing = time_callable(fn, settings)
    if device != "cpu" or threads == 1:
        return timing, threads
    single = time_callable(fn, replace(settings, threads=1))
    if single.best_s < timing.best_s:
        return replace(timing, best_s=single.best_s), 1
    return timing, threads
