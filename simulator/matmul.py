"""The training matmul: time and energy of large-GEMM FLOPs in a format (the planner's
training cost), the limit of `kernels.gemm_cost` for large shapes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precsim.simulator.hardware import as_hardware
from precsim.simulator.checks import check_positive
from precsim.simulator.mapping import cheapest, plan_options
from precsim.simulator.quant import dtype_bits
from precsim.simulator.roofline import ACC_BYTES, output_tile, roofline_cost, staging_bytes


@dataclass(frozen=True, eq=False)
class MatmulCost:
    """Time and energy of large-GEMM FLOPs in a format, and how they run."""

    time_s: object
    energy_j: object
    exec_dtype: object
    exec_path: object


def matmul_cost(profile, flops, weight_dtype: str, act_dtype: str | None = None, *,
                reuse: float | None = None) -> MatmulCost:
    """Time and energy to execute `flops` of large GEMMs in a format (training planner).

    The limit of `gemm_cost` for m = n = k -> infinity, per FLOP: operands homed in main
    memory cross every level, re-read once per output tile of the level staging them
    (weights s_w / (2 tm), activations s_a / (2 tn) bytes per FLOP at the element
    types' widths; outputs and launches vanish); each operand element is converted once
    per `reuse` multiply-adds (default: the output-tile side that fits the nearest
    level, i.e. conversions per FLOP = ops / (2 * tile)). Then, as in every kernel,
    t = max(flops / achievable(exec dtype), max_j bytes_j / bw_j) + t_convert and
    E = flops x energy/op + conversions + sum_j bytes_j x energy/byte_j (dynamic; the
    board baseline: simulator.power), for each execution option
    (`mapping.exec_options`); the fastest is taken.
    """
    check_positive(flops=flops)
    hw = as_hardware(profile)
    act_dtype = act_dtype or weight_dtype
    s_w, s_a = dtype_bits(weight_dtype) / 8.0, dtype_bits(act_dtype) / 8.0
    levels = []
    for j in range(hw.n_levels):
        tm, tn = output_tile(np.inf, np.inf, s_a, s_w, staging_bytes(hw, j))
        levels.append(flops * (s_w / (2.0 * tm) + s_a / (2.0 * tn)))
    if reuse is None:
        reuse = np.sqrt(np.maximum(hw.usable(0) / ACC_BYTES, 1.0))
    elems = flops / (2.0 * reuse)
    costs = [roofline_cost(hw, p, flops, 0.0 * flops,
                           elems * (p["w_convert_s"] + p["a_convert_s"]),
                           elems * (p["w_convert_j"] + p["a_convert_j"]),
                           elems * (p["w_convert_ops"] + p["a_convert_ops"]), levels, 0.0)
             for p in plan_options(hw, weight_dtype, act_dtype)]
    best = cheapest(costs)
    return MatmulCost(best.time_s, best.energy_j, best.exec_dtype, best.exec_path)
