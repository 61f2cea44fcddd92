"""Dequantise-then-matmul chains: a packed weight unpacked by element-wise passes into a
workspace (plain-PyTorch dequantisation), then a matmul on the materialised weight.

Each pass is an `elementwise_cost` (the first reads the packed weight from main memory;
the later ones read and write the workspace where `chain_hit_share` keeps it), and the
passes do not necessarily hide their memory traffic under their arithmetic: the
profile's `vector.dequant_overlap` o (default 1, the roofline's perfect overlap) prices
a pass as max(t_math, t_memory) + (1 - o) min(t_math, t_memory), the form of
`overheads.matmul_overlap`. Measured on the 2-vCPU Xeon VM (docs/validation.md): an
int8 -> bf16 `copy_` from a cache-resident source runs at the vector rate alone (62 ps
per weight on two threads, 130 on one), from a source in main memory at 88-106 (165-266)
ps, about the arithmetic plus the main-memory read; a bf16 row-scale `mul` 86-93 ps from
a cached source, 160-190 from main memory. The matmul on the just-written workspace
reads it at the main-memory rate: on one core the bf16 GEMV inside the chains took
141-215 ps per weight (five shapes, both chains, per-pass CPU time), the rate of the same
GEMV on weights rotating through main memory (170-192), not that of a weight repeated
in the cache (114-118).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from precsim.simulator import kernels as sk
from precsim.simulator.hardware import Hardware
from precsim.simulator.roofline import KernelCost, chain_hit_share


def dequant_overlap(hw: Hardware):
    """The profile's `vector.dequant_overlap` (1 where absent), per profile of `hw`."""
    def value(p) -> float:
        item = p.vector.dequant_overlap if p.vector else None
        return item.value if item else 1.0
    if hw.is_single:
        return value(hw.profiles.item())
    return np.vectorize(value, otypes=[float])(hw.profiles)


def serial_pass(cost: KernelCost, overlap) -> KernelCost:
    """`cost` of an element-wise pass with (1 - overlap) x min(t_math, t_memory) added:
    the share of its shorter time the pass does not hide under the longer."""
    extra = (1.0 - np.asarray(overlap, dtype=float)) * np.minimum(
        np.asarray(cost.compute_time_s), np.asarray(cost.memory_time_s))
    return cost._with({"time_s": np.asarray(cost.time_s) + extra})


def dequant_chain_cost(hw: Hardware, m, n, k, passes: Sequence[Sequence[float]],
                       footprint_per_weight: float, quant: str = "BF16") -> KernelCost:
    """Element-wise `passes` over the n x k weight, then the `quant` GEMM (m x n x k) on
    the materialised weight. A pass is (bytes read, bytes written, vector ops, 16-bit
    elements widened or narrowed, elements) per weight; the first reads the packed
    weight from main memory. The tensors passed between the kernels are read from the
    cache holding them for the share of the chain's footprint (`footprint_per_weight`
    bytes per weight of distinct data per call) that stays cached (`chain_hit_share`),
    else from main memory; each pass is `serial_pass` at `vector.dequant_overlap`; the
    matmul streams the materialised weight at the main-memory rate (module docstring)."""
    weights = float(n * k)
    overlap = dequant_overlap(hw)

    def chain(home):
        cost = None
        for i, (read, write, ops, half, per_weight) in enumerate(passes):
            elems = weights * per_weight
            step = serial_pass(sk.elementwise_cost(
                hw, elems * read, elems * write, elems * ops, half_elements=elems * half,
                read_home=hw.main if i == 0 else home, write_home=home), overlap)
            cost = step if cost is None else cost + step
        return cost + sk.gemm_cost(hw, m, n, k, quant, weight_home=hw.main)

    home, share = chain_hit_share(hw, weights * footprint_per_weight, 2.0 * weights)
    cached = chain(home)
    if home == hw.main or share == 1.0:
        return cached
    return cached.scaled(share) + chain(hw.main).scaled(1.0 - share)
