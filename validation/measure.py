"""Measure a list of held-out cases; what cannot run is skipped with the reason.

Returns a DataFrame with one row per measured case (name, kind, op, format, shape,
measured time, run-to-run spread, within-run IQR). `measured_s` is the fastest call at
the configured threads or on one thread (`bench.time_best_of_threads`): other processes
only slow calls down (on a loaded machine every parallel call waits milliseconds at the
OpenMP barrier), and the simulator models the machine without them; `median_s` keeps the
median at the configured threads and `best_threads` the thread count of the best and a
list of `Skip`s naming each skipped case or format and why (kernel missing on this
PyTorch/device, error).
Cases are timed in `rounds` passes over the whole list (fresh tensors for each kernel
case, the same model for the transformer's passes), keeping each case's fastest:
interference from other tenants comes in bursts that then slow one pass of a case, not
all of them. A case's `spread` is the larger of the spread of its repeat medians within
the kept pass and (max - min) / min of the passes' fastest calls: fresh tensors, and a
minute later the shared VM's memory bandwidth, can run at another speed (the same
one-token torch._int_mm: 41 and 68-74 GB/s ten minutes apart on the 2-core host).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from precsim.validation.bench import BenchSettings, time_best_of_threads
from precsim.validation.formats import FORMATS, probe_formats
from precsim.validation.kernels import MATMUL_KINDS, KernelCase, build_case
from precsim.validation.torchenv import load_torch


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


def _row(case: Case, timing, threads: int, device: str, extra: dict | None = None) -> dict:
    return {"name": case.name, "kind": case.kind, "op": case.op, "format": case.fmt,
            "shape": case.shape_text, "device": device, "measured_s": timing.best_s,
            "median_s": timing.median_s, "best_threads": threads, "spread": timing.spread, "iqr_rel": timing.iqr_rel, "repeats": timing.repeats,
            **(extra or {})}


def measure_cases(cases: Sequence[Case], device: str, settings: BenchSettings,
                  model_factory: Callable[[str], object] | None = None,
                  cold_bytes: float | None = None, progress: Callable[[str], None] | None = None,
                  rounds: int = 1) -> tuple[pd.DataFrame, list[Skip]]:
    """Time every case; a format whose kernel fails its probe is skipped as a whole."""
    torch = load_torch()
    formats = sorted({c.fmt for c in cases if c.kind in MATMUL_KINDS or
                      isinstance(c, ModelCase)})
    probes = probe_formats(device, [f for f in formats if f in FORMATS] or None) \
        if formats else {}
    skips = [Skip(f"format {p.fmt} (every case)", p.reason)
             for p in probes.values() if not p.available]
    unavailable = {p.fmt for p in probes.values() if not p.available}
    rows: dict[str, dict] = {}
    models: dict[str, object] = {}
    failed: set[str] = set()
    passes: dict[str, list[float]] = {}  # each pass's fastest call, per case
    for case in list(cases) * rounds:
        if case.fmt in unavailable or case.name in failed:
            continue
        if progress:
            progress(case.name)
        try:
            if isinstance(case, ModelCase):
                if model_factory is None:
                    raise ValueError("no model factory given for transformer cases")
                if case.fmt not in models:  # kept for the later passes
                    models[case.fmt] = model_factory(case.fmt)
                model = models[case.fmt]
                fn = (model.decode_step(case.batch, case.length) if case.phase == "decode"
                      else model.prefill(case.batch, case.length))
                extra = {"weight_bytes": model.weight_bytes}
            else:
                fn = build_case(case, device, cold_bytes=cold_bytes)
                extra = {}
            with torch.inference_mode():
                timing, threads = time_best_of_threads(fn, settings, device)
        except (RuntimeError, NotImplementedError, ValueError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            skips.append(Skip(case.name, f"{type(exc).__name__}: {first[:200]}"))
            failed.add(case.name)
            continue
        row = _row(case, timing, threads, device, extra)
        passes.setdefault(case.name, []).append(timing.best_s)
        if case.name not in rows or row["measured_s"] < rows[case.name]["measured_s"]:
            rows[case.name] = row
    models.clear()
    for name, row in rows.items():  # the passes' disagreement is run-to-run spread too
        best = passes[name]
        row["spread"] = max(row["spread"], (max(best) - min(best)) / min(best))
    return pd.DataFrame(list(rows.values())), skips
