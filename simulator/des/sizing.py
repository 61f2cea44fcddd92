"""Deployment sizing: the fewest devices that meet latency SLOs, found by simulation.

Devices are independent replicas with the load split evenly: each sees a Poisson
stream at qps / n (random splitting of a Poisson process is Poisson), so one device is
simulated at that rate. The workload uses common random numbers (the same requests,
arrival times scaled by 1 / rate), so latency grows with the per-device rate and the
search over n is monotone. A deployment meets the SLOs when no request is rejected and
the p99 (numpy 'linear' percentile over served requests) of TTFT and of TPOT are within
their targets. Search: n = 1, 2, 4, ... until the SLOs hold, then bisection. Weights must
fit one device (no tensor parallelism is modelled); an SLO that even an idle device
cannot meet (a lone request's TTFT or TPOT above it) is reported as infeasible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from precsim.simulator.des.serving import (OnFull, SchedulerConfig, build_tables,
                                   max_iteration_tokens, simulate_serving)
from precsim.simulator.des.tables import device_memory, resolve
from precsim.simulator.des.workload import check_rate, poisson_workload
from precsim.simulator.errors import InputError
from precsim.simulator.power import power_params

SLO_PERCENTILE = 99
MAX_DEVICES = 1 << 16


@dataclass(frozen=True)
class SLO:
    """Latency targets at the SLO_PERCENTILE-th percentile."""

    ttft_s: float
    tpot_s: float

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tpot_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"SLO {name}: expected seconds > 0, got {value!r}")

    def met(self, summary: dict) -> bool:
        q = SLO_PERCENTILE
        ttft, tpot = summary[f"ttft_p{q}_s"], summary[f"tpot_p{q}_s"]
        return (summary["rejected"] == 0 and summary["served"] > 0
                and ttft <= self.ttft_s and (math.isnan(tpot) or tpot <= self.tpot_s))


@dataclass
class SizingResult:
    """Fewest devices for one format, or `devices=None` with the reason."""

    quant: str
    devices: int | None
    per_device_qps: float | None
    summary: dict | None
    reason: str
    trials: pd.DataFrame = field(repr=False)

    def as_dict(self) -> dict:
        q = SLO_PERCENTILE
        s = self.summary or {}
        return {"quant": self.quant, "devices": self.devices,
                "per_device_qps": self.per_device_qps, "meets_slo": self.devices is not None,
                "percentile": q, f"ttft_p{q}_s": s.get(f"ttft_p{q}_s"),
                f"tpot_p{q}_s": s.get(f"tpot_p{q}_s"),
                "throughput_tokens_per_s_per_device": s.get("throughput_tokens_per_s"),
                "energy_per_token_j": s.get("energy_per_token_j"),
                "energy_per_request_j": s.get("energy_per_request_j"),
                "average_power_w_per_device": s.get("average_power_w"),
                "energy_static_share": s["energy_static_j"] / s["energy_j"] if s else None,
                "utilization": s.get("utilization"),
                "kv_capacity_tokens": s.get("kv_capacity_tokens"),
                "weight_bytes": s.get("weight_bytes"), "reason": self.reason}


def size_deployment(profile, model, quant, qps: float, slo: SLO, *, n_requests: int = 2000,
                    seed: int = 0, prompt_tokens: int | str = 512,
                    output_tokens: int | str = 128, max_batch: int = 64,
                    max_batch_tokens: int = 8192, chunked_prefill_tokens: int | None = None,
                    on_full: OnFull = "wait", max_devices: int = MAX_DEVICES) -> SizingResult:
    """The fewest replicas meeting `slo` at total rate `qps` (see the module docstring)."""
    qps = check_rate(qps, "qps")
    profile, model, quant = resolve(profile, model, quant)
    base = poisson_workload(1.0, n_requests, seed, prompt_tokens, output_tokens)
    config = SchedulerConfig(kv_capacity_tokens=0, max_batch=max_batch,
                             max_batch_tokens=max_batch_tokens,
                             chunked_prefill_tokens=chunked_prefill_tokens, on_full=on_full,
                             power=power_params(profile))
    memory = device_memory(profile, model, quant, max_iteration_tokens(config, base))
    empty = pd.DataFrame(columns=["devices", "per_device_qps", "ttft_p99_s", "tpot_p99_s",
                                  "rejected", "meets_slo"])
    if not memory.fits:
        return SizingResult(quant.name, None, None, None,
                            f"weights ({memory.weight_bytes / 1e9:.2f} GB) and activations "
                            f"do not fit one {profile.name} "
                            f"({memory.capacity_bytes / 1e9:.2f} GB)", empty)
    config = replace(config, kv_capacity_tokens=memory.kv_capacity_tokens)
    if base.max_context_tokens > config.kv_capacity_tokens:
        return SizingResult(quant.name, None, None, None,
                            f"a request of {base.max_context_tokens} tokens exceeds the KV "
                            f"capacity of {config.kv_capacity_tokens} tokens", empty)
    tables = build_tables(profile, model, quant, base, config)
    trials: dict[int, dict] = {}

    def trial(n: int) -> bool:
        if n not in trials:
            rate = qps / n
            workload = replace(base, arrival_s=base.arrival_s / rate,
                               source=f"poisson(qps={rate:g}, n={n_requests}, seed={seed})")
            summary = simulate_serving(workload, tables, config).summary
            summary |= {"weight_bytes": memory.weight_bytes}
            trials[n] = summary | {"devices": n, "per_device_qps": rate,
                                   "meets_slo": slo.met(summary)}
        return trials[n]["meets_slo"]

    def frame() -> pd.DataFrame:
        q = SLO_PERCENTILE
        rows = [{"devices": n, "per_device_qps": t["per_device_qps"],
                 f"ttft_p{q}_s": t[f"ttft_p{q}_s"], f"tpot_p{q}_s": t[f"tpot_p{q}_s"],
                 "rejected": t["rejected"], "meets_slo": t["meets_slo"]}
                for n, t in sorted(trials.items())]
        return pd.DataFrame(rows)

    if not trial(max_devices):
        t = trials[max_devices]
        return SizingResult(
            quant.name, None, None, None,
            f"SLO not met even at {qps / max_devices:.3g} qps per device (TTFT p99 "
            f"{t['ttft_p99_s']:.4g} s, TPOT p99 {t['tpot_p99_s']:.4g} s)", frame())
    hi = 1
    while not trial(hi):
        hi = min(hi * 2, max_devices)
    lo = hi // 2  # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if trial(mid):
            hi = mid
        else:
            lo = mid
    return SizingResult(quant.name, hi, qps / hi, trials[hi], "fewest devices meeting the "
                        f"p{SLO_PERCENTILE} TTFT and TPOT SLOs", frame())


def compare_sizing(profile, model, quants: list, qps: float, slo: SLO, **kwargs
                   ) -> tuple[list[SizingResult], SizingResult | None]:
    """size_deployment for each format, and the best: fewest devices, then lowest energy
    per token (None when no format meets the SLOs)."""
    results = [size_deployment(profile, model, q, qps, slo, **kwargs) for q in quants]
    feasible = [r for r in results if r.devices is not None]
    best = min(feasible, key=lambda r: (r.devices, r.summary["energy_per_token_j"]),
               default=None)
    return results, best


def sizing_table(results: list[SizingResult]) -> pd.DataFrame:
    """One row per format (SizingResult.as_dict)."""
    return pd.DataFrame([r.as_dict() for r in results])
