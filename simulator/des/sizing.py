"""Deployment sizing: the fewest devices that meet latency SLOs, found by simulation.

Devices are independent replicas with the load split evenly: each sees a Poisson
stream at qps / n (random splitting of a Poisson process is Poisson), so one device is
simulated at that rate. The workload uses common random numbers (the same requests,
arrival times scaled by 1 / rate), so latency grows with the per-device rate and the
search over n is monotone. A deployment meets the SLOs when no request is rejected and
the p99 (numpy 'linear' percentile over served requests) of TTFT and of TPOT are within
their targets. Search: n = 1, 2, 4, ... until the SLOs hold, then bisection. A replica
is one device, or the tp x pp devices of a `parallel.ParallelLayout` (`layout`), whose
shard must fit each device; `compare_sizing` searches formats x layouts for the fewest
devices. An SLO that even an idle replica cannot meet (a lone request's TTFT or TPOT
above it) is reported as infeasible.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from precsim.simulator.des.serving import (OnFull, SchedulerConfig, build_tables,
                                   max_iteration_tokens, simulate_serving)
from precsim.simulator.des.tables import device_memory, resolve
from precsim.simulator.des.workload import check_rate, check_span, poisson_workload
from precsim.simulator.parallel import replica
from precsim.simulator.power import power_params
from precsim.simulator.slo import SLO, SLO_PERCENTILE

__all__ = ["SLO", "SLO_PERCENTILE", "compare_sizing", "size_deployment"]
MAX_DEVICES = 1 << 16


@dataclass
class SizingResult:
    """Fewest devices for one format, or `devices=None` with the reason."""

    quant: str
    devices: int | None
    per_device_qps: float | None
    summary: dict | None
    reason: str
    trials: pd.DataFrame = field(repr=False)
    layout: dict | None = None

    def as_dict(self) -> dict:
        q = SLO_PERCENTILE
        s = self.summary or {}
        where = {} if self.layout is None else {"layout": self.layout}
        return {"quant": self.quant, **where, "devices": self.devices,
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
                    on_full: OnFull = "wait", max_devices: int = MAX_DEVICES,
                    layout=None) -> SizingResult:
    """The fewest replicas meeting `slo` at total rate `qps` (see the module docstring);
    `devices` counts replicas x devices per replica."""
    qps = check_rate(qps, "qps")
    check_span(qps / max(1, max_devices), n_requests,  # the lowest per-replica rate tried
               f"qps {qps:g} split over up to {max(1, max_devices)} devices")
    profile, model, quant = resolve(profile, model, quant)
    part, wrap, _ = replica(profile, model, quant, layout)
    per = 1 if part is model else int(layout.tp * layout.pp)
    shown = None if layout is None else layout.describe()
    base = poisson_workload(1.0, n_requests, seed, prompt_tokens, output_tokens)
    config = SchedulerConfig(kv_capacity_tokens=0, max_batch=max_batch,
                             max_batch_tokens=max_batch_tokens,
                             chunked_prefill_tokens=chunked_prefill_tokens, on_full=on_full,
                             power=power_params(profile), devices=per)
    memory = device_memory(profile, part, quant, max_iteration_tokens(config, base))
    empty = pd.DataFrame(columns=["devices", "per_device_qps", "ttft_p99_s", "tpot_p99_s",
                                  "rejected", "meets_slo"])
    if not memory.fits:
        return SizingResult(quant.name, None, None, None,
                            f"weights ({memory.weight_bytes / 1e9:.2f} GB) and activations "
                            f"do not fit one {profile.name} "
                            f"({memory.capacity_bytes / 1e9:.2f} GB)", empty, shown)
    config = replace(config, kv_capacity_tokens=memory.kv_capacity_tokens)
    if base.max_context_tokens > config.kv_capacity_tokens:
        return SizingResult(quant.name, None, None, None,
                            f"a request of {base.max_context_tokens} tokens exceeds the KV "
                            f"capacity of {config.kv_capacity_tokens} tokens", empty, shown)
    tables = wrap(build_tables(profile, part, quant, base, config))
    trials: dict[int, dict] = {}
    max_devices = max(1, max_devices // per)   # replicas

    def trial(n: int) -> bool:
        if n not in trials:
            rate = qps / n
            workload = replace(base, arrival_s=base.arrival_s / rate,
                               source=f"poisson(qps={rate:g}, n={n_requests}, seed={seed})")
            summary = simulate_serving(workload, tables, config).summary
            summary |= {"weight_bytes": memory.weight_bytes}
            trials[n] = summary | {"devices": n * per, "per_device_qps": rate,
                                   "meets_slo": slo.met(summary)}
        return trials[n]["meets_slo"]

    def frame() -> pd.DataFrame:
        q = SLO_PERCENTILE
        rows = [{"devices": t["devices"], "per_device_qps": t["per_device_qps"],
                 f"ttft_p{q}_s": t[f"ttft_p{q}_s"], f"tpot_p{q}_s": t[f"tpot_p{q}_s"],
                 "rejected": t["rejected"], "meets_slo": t["meets_slo"]}
                for n, t in sorted(trials.items())]
        return pd.DataFrame(rows)

    if not trial(max_devices):
        t = trials[max_devices]
        return SizingResult(
            quant.name, None, None, None,
            f"SLO not met even at {qps / max_devices:.3g} qps per device (TTFT p99 "
            f"{t['ttft_p99_s']:.4g} s, TPOT p99 {t['tpot_p99_s']:.4g} s)", frame(), shown)
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
    return SizingResult(quant.name, hi * per, qps / hi, trials[hi], "fewest devices "
                        f"meeting the p{SLO_PERCENTILE} TTFT and TPOT SLOs", frame(), shown)


def compare_sizing(profile, model, quants: list, qps: float, slo: SLO, layouts=(None,),
                   **kwargs) -> tuple[list[SizingResult], SizingResult | None]:
    """size_deployment for each format x layout, and the best: fewest devices, then
    lowest energy per token (None when none meets the SLOs)."""
    results = [size_deployment(profile, model, q, qps, slo, layout=lay, **kwargs)
               for q in quants for lay in layouts]
    feasible = [r for r in results if r.devices is not None]
    best = min(feasible, key=lambda r: (r.devices, r.summary["energy_per_token_j"]),
               default=None)
    return results, best


def sizing_table(results: list[SizingResult]) -> pd.DataFrame:
    """One row per format (SizingResult.as_dict)."""
    return pd.DataFrame([r.as_dict() for r in results])
