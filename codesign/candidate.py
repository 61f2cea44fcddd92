"""A plan's answer: one (N, D, training format, serving format) and what it costs.

`Candidate` is what `planner.plan` returns as the optimum (and per format pair), and
what `plan`, `report` and `whatif` read. Its costs are split into the two phases
(`PhaseCost`: training on the training profile, serving over the model's life on the
deployment profile); `total` is their sum. `to_dict()` gives the flat JSON record of
`plan --json` (keys and order as recorded in tests/golden).
"""
from __future__ import annotations

from dataclasses import dataclass

from precsim.codesign.multidevice import APPROXIMATION
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

    def __add__(self, other: PhaseCost) -> PhaseCost:
        """Both phases together (field by field)."""
        return PhaseCost(self.time_s + other.time_s, self.energy_j + other.energy_j,
                         self.cost + other.cost, self.dollars + other.dollars)


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
    train_recipe: str | None = None   # simulator.training recipe (None: not priced)
    train_mfu: float | None = None    # model FLOPs utilisation of the training run
    serve_devices: int = 1            # devices of one serving replica (tensor parallel)
    serve_batch: int | None = None    # the request batch the planner chose (None: no serving)

    @property
    def tokens_per_param(self) -> float:
        return self.D / self.N

    @property
    def total(self) -> PhaseCost:
        """Training + serving: the objective's cost is `total.cost`."""
        return self.training + self.serving

    def to_dict(self) -> dict:
        """The flat JSON record (`plan --json` "optimum", a by_format row)."""
        total = self.total
        return {
            "train_format": self.train_format, "weight_bits": self.weight_bits,
            "act_bits": self.act_bits, "kv_bits": self.kv_bits,
            "train_dtype": self.train_dtype, "train_native": self.train_native,
            "train_recipe": self.train_recipe, "train_mfu": self.train_mfu,
            "train_device_hours": self.training.device_hours,
            "serve_format": self.serve_format, "P_post": self.P_post, "N": self.N,
            "D": self.D, "tokens_per_param": self.tokens_per_param, "loss": self.loss,
            "train_flops": self.train_flops, "train_time_s": self.training.time_s,
            "train_energy_j": self.training.energy_j, "serve_time_s": self.serving.time_s,
            "serve_energy_j": self.serving.energy_j, "time_s": total.time_s,
            "energy_j": total.energy_j, "dollars": total.dollars, "cost": total.cost,
            "tpot_s": self.tpot_s, "ttft_s": self.ttft_s, "serve_batch": self.serve_batch,
            "memory_bytes": self.memory_bytes,
            "N_at_grid_edge": self.N_at_grid_edge, "D_at_grid_edge": self.D_at_grid_edge,
            **self._layout()}

    def _layout(self) -> dict:
        """Multi-device serving keys (only when a replica spans several devices, so
        single-device plans keep their record): devices and the tensor-parallel layout."""
        if self.serve_devices == 1:
            return {}
        return {"serve_devices": self.serve_devices,
                "serve_layout": {"tp": self.serve_devices, "pp": 1, "ep": 1, "dp": 1},
                "serve_approximation": APPROXIMATION}
