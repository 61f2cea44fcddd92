"""Timing with torch.utils.benchmark: medians and run-to-run spread.

Each case is timed `repeats` times with `Timer.blocked_autorange` (which picks the
number of calls per block and synchronises CUDA itself). The reported time is the
median over repeats of each repeat's median (`samples` keeps them); `spread` is
(max - min) / median of the repeat medians (run-to-run), `iqr_rel` the within-run interquartile range / median.
`best_s` is the fastest per-call time of any block over all repeats: interference from
other processes only ever slows a call down, so calibration takes rates from it. On one
CPU thread the clock is the thread's CPU time (`time_at_threads`).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    samples: tuple[float, ...] = ()  # the repeat medians


def time_callable(fn: Callable[[], object], settings: BenchSettings,
                  cpu_time: bool = False) -> Timing:
    """Time `fn()` with torch.utils.benchmark.Timer; see the module docstring. With
    `cpu_time` the clock is the calling thread's CPU time (time.thread_time), valid
    when the work runs on that one thread (one CPU thread)."""
    torch = load_torch()
    from torch.utils import benchmark
    threads = settings.threads or torch.get_num_threads()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads,
                            timer=time.thread_time if cpu_time else time.perf_counter)
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
                  repeats=settings.repeats, calls=calls, best_s=best,
                  samples=tuple(medians))


def time_at_threads(fn: Callable[[], object], settings: BenchSettings, device: str
                    ) -> tuple[Timing, int]:
    """`time_callable` at the run's thread count (settings.threads, else torch's) and
    that count: the one thread rule every calibration and held-out job is timed under,
    so a fit and the cases it predicts see the same threads (a fastest-of-one-and-two
    rule let each job pick its own: an idle run pooled one-thread DRAM copies at 13.5
    GB/s with two-thread ones at 27 GB/s, docs/validation.md). On one CPU thread the
    clock is the thread's CPU time (time.thread_time), so the time slices the scheduler
    gives other processes are not counted; memory contention still is (a 64 MiB fp32
    sum with load average 5 on 2 cores: 18-31 ms wall-clock, 5.9-6.1 ms CPU time)."""
    threads = settings.threads or load_torch().get_num_threads()
    return time_callable(fn, settings, cpu_time=device == "cpu" and threads == 1), threads
