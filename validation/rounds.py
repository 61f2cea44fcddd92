"""Interleaved measurement rounds with a drift reference: timings that hold on a busy
machine.

On the shared 2-core VM memory bandwidth and core speed drift by up to ~1.7x within
minutes (docs/validation.md, "Noise"); calibrating first and timing the held-out cases
a minute later made them inherit the drift. Here every timed case is a `Job` and:

- `plan_rounds` cuts each of `passes` passes over the jobs into `slices` rounds; a
  round holds one slice of the calibration jobs and one of the held-out jobs,
  alternating (`interleave`), so both see the same machine state;
- every round first times the reference kernels (`reference_kernels`: a main-memory
  stream and an in-cache fp32 GEMM, ~0.3 s together);
- every job, calibration or held-out, and the references are timed under one thread
  rule: at the run's thread count (`bench.time_at_threads`; CPU time on one thread), so
  a fit and the cases it predicts share it; within a round a case keeps its fastest
  call (min of k): other processes only ever slow a call down;
- drift correction: t_corrected = t x ref_median / ref_round, with the stream
  reference for memory-bound jobs and the GEMM reference for the others (compute- and
  overhead-bound), ref_median the median over the planned rounds (not their retries);
- a round whose reference (either) deviates from its median by more than `threshold`
  (DRIFT_THRESHOLD) is rejected and re-measured (bounded: at most `max_retries` retry
  passes over the rejected rounds and `retry_budget` re-measured rounds in all); of a
  round's attempts the one whose reference lies closest to the median is kept (still
  corrected), and a round that never came within the threshold is counted as kept
  drifting;
- across passes a case keeps the median of its corrected times (not the minimum:
  after correction the passes estimate the same time, and the minimum would keep the
  luckiest);
- noise: 100 x IQR / median of the case's corrected repeat medians over its kept rounds
  (`noise_pct`); the run's drift is 100 x (max / min - 1) of each reference over the
  kept rounds (`drift_pct`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from precsim.validation.bench import BenchSettings, Timing, time_at_threads
from precsim.validation.torchenv import load_torch

CALIBRATION = "calibration"
HELD_OUT = "held_out"
#: the reference each bound is corrected by
REFERENCE_OF = {"memory": "stream", "compute": "gemm", "overhead": "gemm"}
#: a round whose reference lies more than this far (relative) from the median is rejected
DRIFT_THRESHOLD = 0.2
MAX_RETRIES = 2
#: errors a kernel may raise when it cannot run here; the job is then skipped with them
JOB_ERRORS = (RuntimeError, NotImplementedError, ValueError, KeyError, AttributeError,
              TypeError)
#: how long each reference kernel is timed (short: it runs once per round)
REFERENCE_SETTINGS = BenchSettings(min_run_time_s=0.02, repeats=3)


@dataclass(frozen=True)
class Job:
    """One case to time: `build()` makes fresh tensors and returns the call to time."""

    key: str
    group: str  # CALIBRATION or HELD_OUT
    bound: str  # "memory", "compute" or "overhead": which reference corrects it
    build: Callable[[], Callable[[], object]]
    settings: BenchSettings
    meta: Mapping = field(default_factory=dict)
    passes: int = 0  # timed in the first `passes` passes only (0: every pass)


@dataclass(frozen=True)
class Attempt:
    """One timed round: its slot in the plan, the references, each job's timing."""

    slot: int
    reference: Mapping[str, float]  # {"stream": s, "gemm": s}
    timings: Mapping[str, tuple[Timing, int]]  # job key -> (timing, threads)


def interleave(first: Sequence, second: Sequence) -> list:
    """first[0], second[0], first[1], second[1], ...; the longer one's rest at the end."""
    out = []
    for i in range(max(len(first), len(second))):
        out += [seq[i] for seq in (first, second) if i < len(seq)]
    return out


def plan_rounds(jobs: Sequence[Job], passes: int, slices: int) -> list[list[Job]]:
    """`passes` x `slices` rounds; round (p, s) interleaves calibration jobs s, s +
    slices, ... with the held-out jobs of the same stride (a job limited to fewer passes
    left out of the later ones). Empty rounds are dropped."""
    cal = [j for j in jobs if j.group == CALIBRATION]
    held = [j for j in jobs if j.group != CALIBRATION]

    def within(seq: Sequence[Job], p: int) -> list[Job]:
        return [j for j in seq if not j.passes or p < j.passes]
    rounds = [interleave(within(cal[s::slices], p), within(held[s::slices], p))
              for p in range(max(passes, 1)) for s in range(max(slices, 1))]
    return [r for r in rounds if r]


def deviation(reference: Mapping[str, float], median: Mapping[str, float]) -> float:
    """Largest relative deviation |ref / median - 1| over the reference kernels."""
    return max(abs(reference[k] / median[k] - 1.0) for k in median)


def reference_median(attempts: Sequence[Attempt]) -> dict[str, float]:
    return {k: float(np.median([a.reference[k] for a in attempts]))
            for k in attempts[0].reference}


def correction(attempt: Attempt, median: Mapping[str, float], bound: str) -> float:
    """ref_median / ref_round for the reference that corrects `bound`."""
    ref = REFERENCE_OF.get(bound, "gemm")
    return median[ref] / attempt.reference[ref]


def iqr_pct(values: Sequence[float]) -> float:
    """100 x (75th - 25th percentile) / median (numpy's linear interpolation)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return 0.0
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(100.0 * (q3 - q1) / med) if med > 0 else 0.0


@dataclass(frozen=True)
class RoundsResult:
    """Every attempt, the attempt kept per slot, and per-job corrected results."""

    attempts: tuple[Attempt, ...]
    kept: tuple[int, ...]  # index into attempts, one per slot
    threshold: float
    planned: int  # the first `planned` attempts are the planned rounds, in order
    errors: Mapping[str, str]
    bounds: Mapping[str, str]

    @property
    def median(self) -> dict[str, float]:
        """The references' median over the planned rounds (retries of a drifting round
        do not move the yardstick)."""
        return reference_median(self.attempts[:self.planned])

    @property
    def rounds_rejected(self) -> int:
        """Round attempts whose reference lay outside the threshold."""
        med = self.median
        return sum(deviation(a.reference, med) > self.threshold for a in self.attempts)

    @property
    def rounds_drifting(self) -> int:
        """Slots kept although no attempt came within the threshold (corrected)."""
        med = self.median
        return sum(deviation(self.attempts[i].reference, med) > self.threshold
                   for i in self.kept)

    @property
    def drift_pct(self) -> dict[str, float]:
        """100 x (max / min - 1) of each reference over the kept rounds."""
        kept = [self.attempts[i].reference for i in self.kept]
        return {k: 100.0 * (max(r[k] for r in kept) / min(r[k] for r in kept) - 1.0)
                for k in kept[0]} if kept else {}

    def result(self, key: str) -> dict:
        """The job's corrected timing: time_s (median of the kept rounds' corrected
        repeat medians), best_s (median over the kept rounds of the corrected fastest
        call), spread (the larger of the repeats' spread and the rounds' (max - min) /
        min), noise_pct, best_threads, rounds; NaN times with `error` if it never ran."""
        med = self.median
        rows = [(self.attempts[i], self.attempts[i].timings[key]) for i in self.kept
                if key in self.attempts[i].timings]
        if not rows:
            nan = float("nan")
            return {"time_s": nan, "best_s": nan, "best_threads": 0, "spread": nan,
                    "iqr_rel": nan, "noise_pct": nan, "rounds": 0,
                    "error": self.errors.get(key, "not measured")}
        factors = [correction(a, med, self.bounds[key]) for a, _ in rows]
        best = [t.best_s * f for (_, (t, _)), f in zip(rows, factors)]
        medians = [t.median_s * f for (_, (t, _)), f in zip(rows, factors)]
        repeats = [s * f for (_, (t, _)), f in zip(rows, factors) for s in t.samples]
        spread = max([t.spread for _, (t, _) in rows]
                     + [(max(best) - min(best)) / min(best)])
        return {"time_s": float(np.median(medians)), "best_s": float(np.median(best)),
                "best_threads": rows[int(np.argmin(best))][1][1], "spread": float(spread),
                "iqr_rel": float(np.median([t.iqr_rel for _, (t, _) in rows])),
                "noise_pct": iqr_pct(repeats), "rounds": len(rows), "error": ""}

    def summary(self) -> dict:
        """rounds, rounds_rejected, rounds_drifting, drift_pct (the larger reference's),
        drift_by_reference, threshold_pct."""
        drift = self.drift_pct
        return {"rounds": len(self.kept), "rounds_rejected": self.rounds_rejected,
                "rounds_drifting": self.rounds_drifting,
                "drift_pct": max(drift.values()) if drift else None,
                "drift_by_reference": drift, "threshold_pct": 100.0 * self.threshold}


def time_job(job: Job, device: str) -> tuple[Timing, int]:
    """Build the job's tensors and time it at the run's threads (bench.time_at_threads,
    the rule every job shares); returns the timing and the thread count."""
    fn = job.build()
    with load_torch().inference_mode():
        return time_at_threads(fn, job.settings, device)


def reference_kernels(device: str, stream_bytes: int = 64 * 2**20, gemm_n: int = 384
                      ) -> Callable[[], dict[str, float]]:
    """A measurer of the two reference kernels, tensors allocated once: `x.sum()` over
    `stream_bytes` of fp32 (main memory: kernels.reference_stream_bytes) and an fp32
    gemm_n^3 matmul (in cache: compute-bound). Returns {"stream": s, "gemm": s}, each
    the fastest call at the run's threads (bench.time_at_threads, as the jobs)."""
    torch = load_torch()
    x = torch.rand(stream_bytes // 4, device=device)
    a = torch.randn(gemm_n, gemm_n, device=device)
    kernels = {"stream": lambda: x.sum(), "gemm": lambda: torch.mm(a, a)}

    def measure() -> dict[str, float]:
        with torch.inference_mode():
            return {name: time_at_threads(fn, REFERENCE_SETTINGS, device)[0].best_s
                    for name, fn in kernels.items()}
    return measure


def run_rounds(jobs: Sequence[Job], measure_reference: Callable[[], dict[str, float]],
               measure_job: Callable[[Job], tuple[Timing, int]], passes: int = 2,
               slices: int = 1, threshold: float = DRIFT_THRESHOLD,
               max_retries: int = MAX_RETRIES, retry_budget: int | None = None,
               on_progress: Callable[[str, int, int], None] | None = None) -> RoundsResult:
    """Time `jobs` in interleaved rounds (module docstring). `measure_job` raising one of
    JOB_ERRORS skips that job from then on (its error kept). `retry_budget` defaults to
    half the rounds. `on_progress(stage, done, total)` is called as each round starts
    (done / total: jobs timed / to time, re-measured rounds included)."""
    plan = plan_rounds(jobs, passes, slices)
    budget = max(1, len(plan) // 2) if retry_budget is None else retry_budget
    errors: dict[str, str] = {}
    attempts: list[Attempt] = []
    total = sum(len(r) for r in plan)
    done = 0

    def run(slot: int) -> None:
        nonlocal done
        if on_progress:  # once per round: a log gets one line per round
            on_progress(f"round {len(attempts) + 1} ({len(plan[slot])} cases)", done, total)
        reference = measure_reference()
        timings = {}
        for job in plan[slot]:
            if job.key not in errors:
                try:
                    timings[job.key] = measure_job(job)
                except JOB_ERRORS as exc:
                    first = (str(exc).strip().splitlines() or [""])[0]
                    errors[job.key] = f"{type(exc).__name__}: {first[:200]}"
            done += 1
        attempts.append(Attempt(slot, reference, timings))

    for slot in range(len(plan)):
        run(slot)
    med = reference_median(attempts) if attempts else {}  # the planned rounds'
    for _ in range(max_retries):
        bad = [s for s in range(len(plan)) if not any(
            a.slot == s and deviation(a.reference, med) <= threshold for a in attempts)]
        bad = bad[:budget]
        if not bad:
            break
        budget -= len(bad)
        total += sum(len(plan[s]) for s in bad)
        for slot in bad:
            run(slot)
    if on_progress:
        on_progress("measured", done, total)
    kept = tuple(min((i for i, a in enumerate(attempts) if a.slot == s),
                     key=lambda i: deviation(attempts[i].reference, med))
                 for s in range(len(plan)))
    return RoundsResult(tuple(attempts), kept, threshold, len(plan), errors,
                        {j.key: j.bound for j in jobs})
