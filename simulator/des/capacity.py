"""Is a serving run overloaded? The analytic sustainable rate and the observed backlog.

Sustainable rate (requests/s) of one device or replica at its steady batch B:

    mu = B / (B * t_prefill + o * t_decode(B))

t_prefill: prefill time per request (prompts of the mean length p, grouped as the
scheduler groups them: min(B, max_batch_tokens // p) per iteration); t_decode(B): one
decode step of B sequences at the mean context p + o/2; o: mean output tokens. B is
the scheduler's max batch, capped by the KV cache: floor(kv_capacity / (p + o)).
Costs come from the same tables the DES runs on (`IterationCosts`).

Observed backlog growth: requests in the system (arrived, not yet finished or
rejected) at each arrival, least-squares slope over the second half of the arrival
window (requests/s); about 0 for a stable queue, about rate - mu when overloaded.
A run is overloaded when the arrival rate exceeds mu, or when the backlog grows by
more than half the arrival rate (a burst the steady-state estimate cannot see).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the observed backlog growth (fraction of the arrival rate) that flags overload alone
GROWTH_FRACTION = 0.5


@dataclass(frozen=True)
class Overload:
    """Arrival rate vs sustainable rate (requests/s) and the observed backlog growth."""

    arrival_rate_per_s: float
    sustainable_rate_per_s: float
    steady_batch: int
    backlog_growth_per_s: float

    @property
    def overloaded(self) -> bool:
        return bool(self.arrival_rate_per_s > self.sustainable_rate_per_s
                    or self.backlog_growth_per_s > GROWTH_FRACTION * self.arrival_rate_per_s)

    def as_dict(self) -> dict:
        return {"overloaded": self.overloaded,
                "arrival_rate_per_s": self.arrival_rate_per_s,
                "sustainable_rate_per_s": self.sustainable_rate_per_s,
                "steady_batch": self.steady_batch,
                "backlog_growth_per_s": self.backlog_growth_per_s}


def sustainable_rate(costs, max_batch: int, max_batch_tokens: int, kv_capacity_tokens: int,
                     mean_prompt: float, mean_output: float) -> tuple[float, int]:
    """(mu in requests/s, steady batch B) from the iteration costs (module docstring)."""
    p = max(1, int(round(mean_prompt)))
    o = max(1.0, float(mean_output))
    batch = int(min(max_batch, kv_capacity_tokens // (p + o)))
    if batch < 1:
        return 0.0, 0
    group = int(max(1, min(batch, max_batch_tokens // p)))
    prefill_s = costs.prefill(group, group * p)[0] / group
    decode_s = costs.decode(batch, int(batch * (p + o / 2)))[0]
    return float(batch / (batch * prefill_s + o * decode_s)), batch


def arrival_rate(arrival_s: np.ndarray) -> float:
    """Requests per second over the arrival window: (n - 1) / (last - first); NaN when
    every request arrives at once (no rate to sustain: never flagged overloaded)."""
    span = float(arrival_s[-1] - arrival_s[0])
    return float((len(arrival_s) - 1) / span) if span > 0 else float("nan")


def backlog_growth(requests: pd.DataFrame) -> float:
    """Slope (requests/s) of the backlog at each arrival over the second half of arrivals."""
    arrival = requests["arrival_s"].to_numpy()
    done = np.where(requests["rejected"].to_numpy(), arrival,
                    requests["finish_s"].to_numpy())
    done = np.sort(np.nan_to_num(done, nan=np.inf))
    backlog = np.arange(1, len(arrival) + 1) - np.searchsorted(done, arrival, side="right")
    half = len(arrival) // 2
    t, n = arrival[half:], backlog[half:]
    if len(t) < 2 or t[-1] <= t[0]:
        return 0.0
    return float(np.polyfit(t - t[0], n, 1)[0])


def overload(costs, requests: pd.DataFrame, max_batch: int, max_batch_tokens: int,
             kv_capacity_tokens: int) -> Overload:
    """The `Overload` verdict of one serving run (`requests`: the DES request frame)."""
    mu, batch = sustainable_rate(costs, max_batch, max_batch_tokens, kv_capacity_tokens,
                                 requests["prompt_tokens"].mean(),
                                 requests["output_tokens"].mean())
    return Overload(arrival_rate(requests["arrival_s"].to_numpy()), mu, batch,
                    backlog_growth(requests))
