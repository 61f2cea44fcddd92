"""What a plan is asked: the problem (`PlanProblem`) and its objective (`CostWeights`).

The joins a plan needs from lawcore (the 16-bit baseline loss, the post-training bits
of a serving format) live here too, so that `codesign.study` can build a problem
(`study.problem_from_study`) without importing the planner's search.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from precsim.codesign.study import TrainFormat, Workload
    from precsim.lawcore import Law
    from precsim.simulator.profiles import HardwareProfile
    from precsim.simulator.quant import QuantFormat

SECONDS_PER_HOUR = 3600.0
JOULES_PER_KWH = 3.6e6


def baseline_loss(law: Law, N: float, D: float) -> float:
    """Loss of the 16-bit baseline: trained at 16 bits, served unquantised."""
    return float(law.predict(N, D, 16.0, 16.0, 16.0, None))


def post_training_bits(fmt: QuantFormat | None) -> float:
    """P_post of a serving format: its weight bits; inf (no PTQ) at >= 16 bits or none."""
    if fmt is None or fmt.weight_bits >= 16:
        return np.inf
    return float(fmt.weight_bits)


@dataclass(frozen=True)
class CostWeights:
    """The objective as a linear form in device-seconds and joules of each phase."""

    objective: str
    train_dollars_per_device_hour: float = 0.0
    deploy_dollars_per_device_hour: float = 0.0
    dollars_per_kwh: float = 0.0

    def cost(self, phase: str, time_s, energy_j, objective: str | None = None):
        """time_s (time), energy_j (energy) or device-hours x $/h + kWh x $/kWh."""
        objective = objective or self.objective
        if objective == "time":
            return np.asarray(time_s) * 1.0
        if objective == "energy":
            return np.asarray(energy_j) * 1.0
        rate = (self.train_dollars_per_device_hour if phase == "train"
                else self.deploy_dollars_per_device_hour)
        return (np.asarray(time_s) * rate / SECONDS_PER_HOUR
                + np.asarray(energy_j) * self.dollars_per_kwh / JOULES_PER_KWH)


def cost_text(value: float | None, objective: str) -> str:
    """A value of the objective for people: $, kWh or device-hours."""
    if value is None or not np.isfinite(value):
        return "-"
    if objective == "dollars":
        return f"${value:,.0f}"
    if objective == "energy":
        return f"{value / JOULES_PER_KWH:,.4g} kWh"
    return f"{value / SECONDS_PER_HOUR:,.4g} device-h"


@dataclass(frozen=True)
class PlanProblem:
    """Everything one plan needs (built from a study by `study.problem_from_study`)."""

    law: Law
    target_loss: float
    train_formats: tuple[TrainFormat, ...]
    serve_formats: tuple[QuantFormat, ...]   # empty without a deployment profile
    N_grid: np.ndarray
    D_grid: np.ndarray
    weights: CostWeights
    train_profile: HardwareProfile | None = None
    train_layout: dict = field(default_factory=dict)   # simulator.training.token_costs
    deploy_profile: HardwareProfile | None = None
    workload: Workload | None = None         # deployment only
    bisection_steps: int = 30
    model_options: dict[str, float] = field(default_factory=dict)
    max_devices_per_replica: int = 1         # >1: serve on tensor-parallel replicas

    @property
    def serve_axis(self) -> tuple[QuantFormat | None, ...]:
        """Serving formats searched; (None,) = no deployment, the model as trained."""
        return self.serve_formats if self.deploy_profile is not None else (None,)
