"""Continuous batching at steady state: the mean engine step of a server kept full.

A serving engine (vLLM, SGLang; Orca-style iteration-level scheduling with chunked
prefill, Sarathi-Serve, Agrawal et al. 2024, arXiv 2403.02310) holding `batch` = B
requests, each with a P-token prompt and G generated tokens, replaces every finished
request at once. At steady state the B requests are spread evenly over their lives:

* every step emits one token per request (B tokens: B - 1 decode tokens and the
  first token of a joining prompt on a join step, B decode tokens otherwise);
* the decoding requests attend to P + G / 2 positions on average;
* B / G requests finish per step, so a share phi = B / G of the steps also prefills
  one whole prompt (one chunk: the engine's token budget is assumed >= P):
  t = t_decode + phi (t_join - t_decode), the same for energy (linear in phi, the
  mean over steps; phi > 1 counts several prompts per step at the marginal cost of one).

t_decode = `cost.decode_step_cost(B, P + G/2)`, t_join = `cost.mixed_step_cost(B - 1,
P + G/2, P)` of one device's shard (`parallel.shard`), each plus its exposed
collectives (`parallel.block_comm_s` over the pass's token rows; pipeline layouts are
refused). Board power (`simulator.power`) per step type; devices waiting on a
collective draw the `active` baseline, as in `parallel.simulate_parallel`.

Mean inter-token latency = t; output tokens/s = dp B / t; J per output token = E / B
(E: energy of the mean step on every device of a replica, prefill included); power =
E / t. Median inter-token latency: t_decode + k (t_join - t_decode) with k the median
of a Poisson(phi) count of joins per step (requests finish independently; phi < ln 2:
the median step is a pure decode step). Everything broadcasts over array inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from precsim.simulator.cost import decode_step_cost, mixed_step_cost
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.models import get_model
from precsim.simulator.parallel import (ParallelLayout, block_comm_s, check_layout, shard,
                                        topology_for)
from precsim.simulator.power import dynamic_split, power_and_energy
from precsim.simulator.quant import as_quant, stream_bits


@dataclass(frozen=True)
class SteadyState:
    """Mean step of a full server (module docstring): times in s, energy over every
    device of one replica, throughput over all dp replicas."""

    step_s: object
    median_step_s: object
    decode_step_s: object
    join_step_s: object
    joins_per_step: object
    output_tokens_per_s: object
    energy_per_token_j: object
    average_power_w: object
    devices_per_replica: object
    dynamic_j: dict  # mean step's dynamic energy by component (power.dynamic_split), J


def _step(profile, hw, cost, comm_s, devices):
    """(time s, energy J, dynamic energy by component J) of one pass over `devices`:
    board power of the shard's kernels plus the active baseline while waiting on
    collectives."""
    dynamic = dynamic_split(hw, cost)
    pe = power_and_energy(hw, cost.time_s, dynamic)
    waiting = profile.power.active.value * comm_s
    return (np.asarray(pe.time_s) + comm_s, devices * (np.asarray(pe.energy_j) + waiting),
            {k: devices * np.asarray(pe.split[k]) for k in dynamic})


def steady_state(profile, model, quant, batch, prompt_len, gen_len,
                 layout: ParallelLayout | None = None) -> SteadyState:
    """The mean step of `batch` concurrent requests of `prompt_len` prompt and `gen_len`
    generated tokens on one replica of `layout` (None: one device)."""
    model, quant = get_model(model), as_quant(quant)
    layout = layout or ParallelLayout()
    if np.any(np.asarray(layout.pp) > 1):
        raise InputError("steady state: pipeline layouts (pp > 1) are not modelled; "
                         "use tp / ep")
    b, p, g = (np.asarray(v, dtype=float) for v in (batch, prompt_len, gen_len))
    if np.any(b < 1) or np.any(p < 1) or np.any(g < 1):
        raise InputError(f"steady state: batch, prompt_len and gen_len must be >= 1; got "
                         f"{batch!r}, {prompt_len!r}, {gen_len!r}")
    topo = topology_for(profile, layout)
    check_layout(model, layout, topo)
    part = shard(model, layout)
    hw = as_hardware(profile)
    devices = np.asarray(layout.tp, dtype=float)
    sb = stream_bits(quant) / 8.0
    context = p + g / 2.0

    def comm(rows):  # exposed collectives of a pass over `rows` tokens (0 on one device)
        return part.n_layers * block_comm_s(topo, model, layout, rows, sb)

    t_dec, e_dec, d_dec = _step(profile, hw, decode_step_cost(hw, part, quant, b, context),
                                comm(b), devices)
    t_join, e_join, d_join = _step(profile, hw,
                                   mixed_step_cost(hw, part, quant, b - 1.0, context, p),
                                   comm(b - 1.0 + p), devices)
    phi = b / g

    def mean(dec, join):
        return dec + phi * (join - dec)
    t, e = mean(t_dec, t_join), mean(e_dec, e_join)
    k_median = poisson.ppf(0.5, phi)
    return SteadyState(step_s=t, median_step_s=t_dec + k_median * (t_join - t_dec),
                       decode_step_s=t_dec, join_step_s=t_join, joins_per_step=phi,
                       output_tokens_per_s=np.asarray(layout.dp, dtype=float) * b / t,
                       energy_per_token_j=e / b, average_power_w=e / t,
                       devices_per_replica=devices,
                       dynamic_j={k: mean(d_dec[k], d_join[k]) for k in d_dec})
