"""Serving a plan's model on several devices when one does not hold it.

The study option `deployments[i].max_devices_per_replica` (default 1: one device, the
planner declares a model that does not fit infeasible) lets `planner.serving_costs`
price a serving format whose model does not fit one device on the smallest tensor-
parallel layout (tp = 2, 4, 8, ... within one node of the profile's
`interconnect.devices_per_node`, at most the option) whose per-device shard fits,
through `simulator.parallel.simulate_parallel` (Megatron-LM tensor parallelism, two
all-reduces per block on the device link; docs/parallelism.md). One call per degree
evaluates the whole N grid.

Heads: a discrete model needs whole heads per device (tp divides n_heads, and tp
divides n_kv_heads or is a multiple of it: a KV head is then replicated); the
parametric family (`model_for_params`, continuous shapes) only needs n_heads >= tp:
its fractional heads split evenly, standing for a real model whose head count is
rounded to a multiple of tp (flagged in `APPROXIMATION`).

Device time: the replica's end-to-end latency counts every one of its devices, so
device-hours (and dollars) scale with devices per replica; energy per token is the
replica's (all devices, `simulate_parallel`).
"""
from __future__ import annotations

import numpy as np

from precsim.simulator.collectives import Topology
from precsim.simulator.cost import simulate
from precsim.simulator.parallel import ParallelLayout, simulate_parallel

#: Totals `planner.serving_costs` reads (all per replica; memory per device).
KEYS = ("e2e_latency_s", "energy_per_token_j", "tpot_s", "ttft_s", "memory_bytes", "fits")
APPROXIMATION = ("multi-device serving of the parametric family: its continuous heads "
                 "split evenly over tp devices (a real model rounds heads to a multiple "
                 "of tp)")


def tp_degrees(profile, max_devices: int) -> list[int]:
    """Powers of two 2..min(max_devices, devices per node); [] without a device link."""
    topo = Topology.of(profile)
    n = min(int(max_devices), topo.devices_per_node if topo.link_bytes_per_s else 1)
    return [2 ** i for i in range(1, int(np.log2(n)) + 1)] if n >= 2 else []


def splits_heads(model, tp: int) -> np.ndarray:
    """Whether `tp` devices each hold whole heads (discrete model) or at least one head
    (continuous family), elementwise over the model's shape arrays."""
    h, kv = np.asarray(model.n_heads, float), np.asarray(model.n_kv_heads, float)
    if not model.is_discrete:
        return h >= tp
    return (h % tp == 0) & ((kv % tp == 0) | (tp % kv == 0))


def serving_totals(profile, model, fmt, workload, max_devices: int = 1, batch=None,
                   **kwargs) -> dict[str, np.ndarray]:
    """`KEYS` of one request batch of `workload` on one device where the model fits,
    else on the smallest fitting tensor-parallel replica, plus `devices_per_replica`
    (1 on one device; where nothing fits, 1 and `fits` False). `batch`: instead of
    `workload.batch`, e.g. an array broadcast against the model's shapes. `kwargs` pass
    to `cost.simulate`."""
    args = (workload.batch if batch is None else batch, workload.prompt_len,
            workload.output_len)
    one = simulate(profile, model, fmt, *args, **kwargs).totals
    shape = np.broadcast(*(np.asarray(one[k]) for k in KEYS)).shape
    out = {k: np.array(np.broadcast_to(one[k], shape), dtype=bool if k == "fits" else float)
           for k in KEYS}
    devices = np.ones(shape)
    todo = ~out["fits"]
    for tp in tp_degrees(profile, max_devices):
        if not todo.any():
            break
        tot = simulate_parallel(profile, model, fmt, *args, ParallelLayout(tp=tp),
                                **kwargs).totals
        take = todo & splits_heads(model, tp) & np.asarray(tot["fits"], bool)
        for k in KEYS:
            out[k] = np.where(take, tot[k], out[k])
        devices = np.where(take, float(tp), devices)
        todo &= ~take
    out["devices_per_replica"] = devices
    return out
