"""A plan's answer: one (N, D, training format, serving format) and what it costs.

`Candidate` is what `planner.plan` returns as the optimum (and per format pair), and
what `plan`, `report` and `whatif` read. Its costs are split into the two phases
(`PhaseCost`: training on the training profile, serving over the model's life on the
deployment profile); totals are their sums. `to_dict()` gives the flat JSON record of
`plan --json` (keys and order as recorded in tests/golden).
"""
from __future__ import annotations

from dataclasses import dataclass

from precsim.codesign.problem import SECONDS_PER_HOUR


@dataclass(frozen=True)
class PhaseCost:
    """Device time, energy and cost of one phase (training or serving)."""

    time_s: float       # device-seconds
    energy_j: float
    cost: float         # in the objective's unit ($, J or device-seconds)
    dollars: float      # device-hours x $/device-hour + kWh x $/kWh, whatever the objective

    @property
    def device_hours(self) -> float:
        """time_s / 3600."""
        return self.time_s / SECONDS_PER_HOUR


@dataclass(frozen=True)
class Candidate:
    """A configuration reaching the target loss, its costs, SLO figures and flags."""

    train_format: str
    weight_bits: float
    act_bits: float
    kv_bits: float
    train_dtype: str | None     # element type the training GEMMs run in
    train_native: bool | None   # that type runs on a native engine of the profile
    serve_format: str | None    # None: no deployment, served as trained
    P_post: float | None        # post-training bits (the serving weight bits); None: no PTQ
    N: float
    D: float
    loss: float
    train_flops: float
    training: PhaseCost
    serving: PhaseCost
    tpot_s: float
    ttft_s: float
    memory_bytes: float         # weights + KV cache + activations when served
    N_at_grid_edge: bool        # N is the first or last point of the search grid
    D_at_grid_edge: bool        # D is the lowest point of the D grid

    @property
    def tokens_per_param(self) -> float:
        return self.D / self.N

    @property
    def time_s(self) -> float:
        """Training + serving device-seconds."""
        return self.training.time_s + self.serving.time_s

    @property
    def energy_j(self) -> float:
        return self.training.energy_j + self.serving.energy_j

    @property
    def dollars(self) -> float:
        return self.training.dollars + self.serving.dollars

    @property
    def cost(self) -> float:
        """The objective: training cost + serving cost."""
        return self.training.cost + self.serving.cost

    @property
    def device_hours(self) -> float:
        return self.training.device_hours + self.serving.device_hours

    def to_dict(self) -> dict:
        """The flat JSON record (`plan --json` "optimum", a by_format row)."""
        return {
            "train_format": self.train_format, "weight_bits": self.weight_bits,
            "act_bits": self.act_bits, "kv_bits": self.kv_bits,
            "train_dtype": self.train_dtype, "train_native": self.train_native,
            "serve_format": self.serve_format, "P_post": self.P_post, "N": self.N,
            "D": self.D, "tokens_per_param": self.tokens_per_param, "loss": self.loss,
            "train_flops": self.train_flops, "train_time_s": self.training.time_s,
            "train_energy_j": self.training.energy_j, "serve_time_s": self.serving.time_s,
            "serve_energy_j": self.serving.energy_j, "time_s": self.time_s,
            "energy_j": self.energy_j, "dollars": self.dollars, "cost": self.cost,
            "tpot_s": self.tpot_s, "ttft_s": self.ttft_s, "memory_bytes": self.memory_bytes,
            "N_at_grid_edge": self.N_at_grid_edge, "D_at_grid_edge": self.D_at_grid_edge}
