"""The held-out cases as measurement jobs, and their table; what cannot run is skipped
with the reason.

`held_out_jobs` turns kernel and transformer cases into `rounds.Job`s (fresh tensors for
each kernel case every time it is timed, one model per format for every round of the
transformer's); `validation.run` times them interleaved with the calibration jobs
(`validation.rounds`: a drift reference per round, drift-corrected times).
`held_out_table` gives one row per measured case (name, kind, op, format, shape):
`measured_s` is the corrected fastest call at the run's thread count, the calibration's
(`bench.time_at_threads`: other processes only slow calls down, and the simulator
models the machine without them), the median over its rounds; `median_s` keeps the
corrected median call; `spread` is the larger of the repeats' spread and the rounds'
disagreement; `noise_pct` the IQR / median of its repeat timings; and a list of `Skip`s
naming each skipped case or format and why (kernel missing on this PyTorch/device,
error).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd

from precsim.validation.bench import BenchSettings
from precsim.validation.formats import FORMATS, probe_formats
from precsim.validation.kernels import MATMUL_KINDS, KernelCase, case_job
from precsim.validation.rounds import HELD_OUT, Job, RoundsResult


@dataclass(frozen=True)
class Skip:
    what: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.what}: {self.reason}"


@dataclass(frozen=True)
class ModelCase:
    """A whole small-transformer pass: phase (decode / prefill), format, batch, length."""

    phase: str
    fmt: str
    batch: int
    length: int  # context length (decode) or prompt length (prefill)

    @property
    def kind(self) -> str:
        return f"transformer_{self.phase}"

    @property
    def shape(self) -> tuple[tuple[str, int], ...]:
        key = "context_len" if self.phase == "decode" else "prompt_len"
        return (("batch", self.batch), (key, self.length))

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    @property
    def op(self) -> str:
        return ""

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.fmt}/{self.batch}x{self.length}"

    @property
    def shape_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.shape)


Case = KernelCase | ModelCase


def held_out_jobs(cases: Sequence[Case], device: str, settings: BenchSettings,
                  bounds: Mapping[str, str],
                  model_factory: Callable[[str], object] | None = None,
                  cold_bytes: float | None = None) -> tuple[list[Job], list[Skip]]:
    """The cases as held-out `rounds.Job`s (key: case name; `bounds` picks each one's
    drift reference); a format whose kernel fails its probe is skipped as a whole."""
    formats = sorted({c.fmt for c in cases if c.kind in MATMUL_KINDS or
                      isinstance(c, ModelCase)})
    probes = probe_formats(device, [f for f in formats if f in FORMATS] or None) \
        if formats else {}
    skips = [Skip(f"format {p.fmt} (every case)", p.reason)
             for p in probes.values() if not p.available]
    unavailable = {p.fmt for p in probes.values() if not p.available}
    models: dict[str, object] = {}  # each format's model, built once for every round

    def model_call(case: ModelCase) -> Callable[[], object]:
        if model_factory is None:
            raise ValueError("no model factory given for transformer cases")
        if case.fmt not in models:
            models[case.fmt] = model_factory(case.fmt)
        model = models[case.fmt]
        return (model.decode_step(case.batch, case.length) if case.phase == "decode"
                else model.prefill(case.batch, case.length))

    jobs = []
    for case in cases:
        if case.fmt in unavailable:
            continue
        meta = {"name": case.name, "kind": case.kind, "op": case.op, "format": case.fmt,
                "shape": case.shape_text, "device": device}
        if isinstance(case, ModelCase):
            jobs.append(Job(case.name, HELD_OUT, bounds[case.name],
                            partial(model_call, case), settings, meta=meta))
        else:
            jobs.append(case_job(case, HELD_OUT, bounds[case.name], device, settings,
                                 cold_bytes, meta=meta))
    return jobs, skips


def held_out_table(jobs: Sequence[Job], results: RoundsResult) -> tuple[pd.DataFrame,
                                                                        list[Skip]]:
    """One row per measured case (measured_s: the corrected fastest call, median_s,
    spread, iqr_rel, noise_pct, rounds) and a Skip per case that could not run."""
    rows, skips = [], []
    for job in jobs:
        r = results.result(job.key)
        if r["error"]:
            skips.append(Skip(job.key, r["error"]))
            continue
        rows.append({**job.meta, "measured_s": r["best_s"], "median_s": r["time_s"],
                     "best_threads": r["best_threads"], "spread": r["spread"],
                     "iqr_rel": r["iqr_rel"], "noise_pct": r["noise_pct"],
                     "rounds": r["rounds"]})
    return pd.DataFrame(rows), skips
