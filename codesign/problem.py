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


#: Kumar et al. 2024 Table 2: γ_post of δ_PTQ ∝ exp(−P_post/γ_post) (lawcore/precision.py).
KUMAR_GAMMA_POST = 0.5907


def quantized_shares(model_options: dict | None = None) -> dict[str, float]:
    """Share of the non-embedding parameters (the laws' N) in attention and in the MLP of
    the parametric family `model_for_params(N, **model_options)`: attention
    (2 + 2/gqa_ratio)·d², MLP 3·d·d_ff per block, the same at every N."""
    from precsim.simulator.models import model_for_params
    m = model_for_params(1e9, **(model_options or {}))
    attn = 2 * m.d_model * m.n_heads * m.hd + 2 * m.d_model * m.n_kv_heads * m.hd
    mlp = 3 * m.d_model * m.d_ff
    return {"attn": float(attn / (attn + mlp)), "mlp": float(mlp / (attn + mlp))}


def post_training_bits(fmt: QuantFormat | None, gamma_post: float = KUMAR_GAMMA_POST,
                       model_options: dict | None = None) -> float:
    """P_post of a serving format; inf (no PTQ) when no group of N is below 16 bits.

    One weight format: its weight bits. Per-group overrides (`W16A16@mlp=W4A16-g128`):
    Kumar's δ_PTQ ∝ exp(−P_post/γ_post) summed over the parameters, each share s_g of N
    degraded at its own bits (16-bit groups: 0), i.e. the P_post with the same δ_PTQ:
    P_post = −γ_post·ln(Σ_g s_g·exp(−P_g/γ_post)). Embedding and lm_head are not in N
    (Kumar counts non-embedding parameters) and do not enter. Exact for the δ_PTQ of
    kumar2024(-b) and lowbit-qat; a stated approximation for other PTQ laws (docs/laws.md).
    """
    if fmt is None:
        return np.inf
    if not fmt.overrides:
        return np.inf if fmt.weight_bits >= 16 else float(fmt.weight_bits)
    shares = quantized_shares(model_options)
    bits = {g: fmt.for_group(g).weight_bits for g in shares}
    quantized = [g for g in shares if bits[g] < 16]
    if not quantized:
        return np.inf
    if len(quantized) == len(shares) and len({bits[g] for g in quantized}) == 1:
        return float(bits[quantized[0]])
    total = sum(shares[g] * np.exp(-bits[g] / gamma_post) for g in quantized)
    return float(-gamma_post * np.log(total))


#: The plan JSON's statement of how serving-time activation/KV quantization is priced.
SERVING_QUANT_PROXY = {
    "approximation": True,
    "rule": "activations and KV cache quantized at serving time: the law's activation and "
            "KV factors at min(training bits, serving bits) (the proxy of docs/laws.md; "
            "no law here was fitted on post-training activation/KV quantization)"}


def serving_act_kv_bits(train: TrainFormat, fmt: QuantFormat | None) -> tuple[float, float]:
    """(P_a, P_kv) the law sees for a model trained in `train` and served in `fmt`.

    Proxy (stated, not measured): quantizing activations or the KV cache at serving time
    costs what Kumar et al.'s f_a, f_kv cost at the lower of the training and serving bits
    (attention and MLP overrides included: the lowest activation bits of the two).
    """
    if fmt is None:
        return float(train.act_bits), float(train.kv_bits)
    act = min(fmt.for_group(g).act_bits for g in ("attn", "mlp"))
    return float(min(train.act_bits, act)), float(min(train.kv_bits, fmt.kv_bits))


def law_gamma_post(law: Law) -> float:
    """The law's γ_post where it has Kumar's δ_PTQ form, else Kumar's (an approximation)."""
    return float(law.constants.get("gamma_post", KUMAR_GAMMA_POST))


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
