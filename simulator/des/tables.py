"""Iteration cost tables for the serving DES, built from the simulator's cost model.

Every table is one vectorised call of `simulator.cost` over a grid; the DES then looks
iterations up (exact along the batch axis, linear interpolation along length axes),
which is what makes 10,000-request simulations take well under a second of cost work.

- decode: `decode_step_cost(batch = 1..max_batch, context = grid)`; an iteration of b
  sequences holding C context tokens in all is read at (b, C / b). Step cost is linear
  in context per op (and piecewise linear overall), so interpolation is exact between
  the kinks of max(compute, memory).
- prefill: `prefill_cost(batch = 1..max_batch, prompt_len = grid)`; k prompts of T tokens
  in all are read at (k, T / k): exact for equal lengths, the attention term is
  under-counted by the variance of the lengths. The grid holds the workload's own
  prompt lengths (up to 256 distinct), so equal-length prefills are exact.
- mixed (chunked prefill): one forward pass of b decode tokens plus prompt chunks
  (past_i cached tokens, take_i new ones). It is composed from the cost model's per-op
  costs: the non-attention ops of `prefill_cost(1, b + sum take)` (weights read once
  for all rows), the attention op of `decode_step_cost(b, C / b)`, and for each chunk
  A(past + take) - A(past), where A(L) is the attention op of `prefill_cost(1, L)`
  without its launch gap (the causal pairs of a chunk are exactly P(past + take) -
  P(past), P(n) = n(n+1)/2), plus one attention launch. To be replaced by a cost-model
  call once `simulator.cost` prices a chunk with past context (q_len < kv_len) and a
  mixed decode + prefill pass itself.

Energies come from the same calls (they include static power while busy); the DES adds
static power while idle.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from simulator.cost import (PhaseCost, activation_bytes, decode_step_cost, kv_cache_bytes,
                            prefill_cost, weight_bytes)
from simulator.errors import InputError
from simulator.kernels import as_quant
from simulator.models import TransformerConfig, get_model
from simulator.profiles import HardwareProfile, load_profile
from simulator.quant import QuantFormat

#: grid points along context / prompt-length axes (plus the workload's own lengths)
LENGTH_POINTS = 129
MAX_EXACT_LENGTHS = 256


def length_grid(max_len: int, exact: np.ndarray | None = None,
                points: int = LENGTH_POINTS) -> np.ndarray:
    """Sorted grid on [1, max_len]: every integer when short, else `points` evenly
    spaced, plus `exact` lengths when there are at most MAX_EXACT_LENGTHS of them."""
    max_len = max(int(max_len), 1)
    grid = np.arange(1, max_len + 1, dtype=float) if max_len <= points \
        else np.linspace(1.0, float(max_len), points)
    if exact is not None:
        distinct = np.unique(np.asarray(exact, dtype=float))
        if distinct.size <= MAX_EXACT_LENGTHS:
            grid = np.union1d(grid, distinct)
    return grid


def _split_attention(cost: PhaseCost) -> tuple[dict, dict]:
    """(non-attention ops, attention op) time / energy / launch sums of a phase."""
    rest = {"time_s": 0.0, "energy_j": 0.0}
    attn = {"time_s": 0.0, "energy_j": 0.0, "overhead_time_s": 0.0}
    for spec, op in zip(cost.specs, cost.costs):
        part = attn if spec.kind == "attention" else rest
        for key in part:
            part[key] = part[key] + np.asarray(getattr(op, key))
    return rest, attn


class _Row:
    """Linear interpolation on one sorted grid, in plain Python (fast for scalars)."""

    __slots__ = ("x", "ys")

    def __init__(self, x: np.ndarray, *ys: np.ndarray):
        self.x = x.tolist()
        self.ys = [y.tolist() for y in ys]

    def __call__(self, value: float) -> tuple[float, ...]:
        x = self.x
        i = bisect.bisect_left(x, value)
        if i < len(x) and x[i] == value:
            return tuple(y[i] for y in self.ys)
        if i == 0 or i == len(x):
            raise InputError(f"length {value:g} outside the cost table [{x[0]:g}, "
                             f"{x[-1]:g}]; rebuild the tables for this workload")
        w = (value - x[i - 1]) / (x[i] - x[i - 1])
        return tuple(y[i - 1] + w * (y[i] - y[i - 1]) for y in self.ys)


@dataclass
class CostTables:
    """Iteration time / energy for the serving DES (implements serving.IterationCosts).

    Build with `build_cost_tables`; lookups raise InputError outside the tables.
    """

    max_batch: int
    max_context: int
    max_prompt: int
    chunk_tokens: int | None
    static_power_w: float
    decode_rows: list = field(repr=False)
    prefill_rows: list = field(repr=False)
    linear_row: _Row | None = field(default=None, repr=False)
    attn_row: _Row | None = field(default=None, repr=False)
    attn_launch: tuple[float, float] = (0.0, 0.0)

    def _check_batch(self, n: int) -> None:
        if not 1 <= n <= self.max_batch:
            raise InputError(f"batch {n} outside the cost table (1..{self.max_batch})")

    def prefill(self, n_seqs: int, prompt_tokens: int) -> tuple[float, float]:
        self._check_batch(n_seqs)
        return self.prefill_rows[n_seqs - 1](prompt_tokens / n_seqs)

    def decode(self, batch: int, context_tokens: int) -> tuple[float, float]:
        self._check_batch(batch)
        time_s, energy_j, _, _ = self.decode_rows[batch - 1](context_tokens / batch)
        return time_s, energy_j

    def mixed(self, batch: int, context_tokens: int,
              chunks: list[tuple[int, int]]) -> tuple[float, float]:
        """b decode tokens + prompt chunks [(past tokens, new tokens), ...] in one pass."""
        if self.linear_row is None or self.attn_row is None:
            raise InputError("these cost tables were built without chunked prefill")
        new = sum(take for _, take in chunks)
        time_s, energy_j = self.linear_row(batch + new)
        if batch:
            self._check_batch(batch)
            _, _, attn_t, attn_e = self.decode_rows[batch - 1](context_tokens / batch)
            time_s += attn_t
            energy_j += attn_e
        if chunks:
            time_s += self.attn_launch[0]
            energy_j += self.attn_launch[1]
            for past, take in chunks:
                hi_t, hi_e = self.attn_row(past + take)
                lo_t, lo_e = self.attn_row(past) if past else (0.0, 0.0)
                time_s += hi_t - lo_t
                energy_j += hi_e - lo_e
        return time_s, energy_j


def build_cost_tables(profile: HardwareProfile, model: TransformerConfig, quant: QuantFormat,
                      max_batch: int, max_context: int, max_prompt: int,
                      chunk_tokens: int | None = None, prompt_lengths: np.ndarray | None = None,
                      flash: bool = True) -> CostTables:
    """Tables covering batches 1..max_batch, contexts up to max_context tokens per
    sequence and prompts up to max_prompt tokens (`prompt_lengths`: exact grid points)."""
    batches = np.arange(1, max_batch + 1, dtype=float)[:, None]
    ctx = length_grid(max_context)
    dec = decode_step_cost(profile, model, quant, batches, ctx[None, :], flash=flash)
    _, dec_attn = _split_attention(dec)
    shape = (max_batch, ctx.size)
    dec_cols = [np.broadcast_to(a, shape) for a in (dec.time_s, dec.energy_j,
                                                     dec_attn["time_s"],
                                                     dec_attn["energy_j"])]
    decode_rows = [_Row(ctx, *(c[i] for c in dec_cols)) for i in range(max_batch)]
    plen = length_grid(max_prompt, prompt_lengths)
    pre = prefill_cost(profile, model, quant, batches, plen[None, :], flash=flash)
    pre_cols = [np.broadcast_to(a, (max_batch, plen.size)) for a in (pre.time_s,
                                                                      pre.energy_j)]
    prefill_rows = [_Row(plen, *(c[i] for c in pre_cols)) for i in range(max_batch)]
    tables = CostTables(max_batch=max_batch, max_context=int(max_context),
                        max_prompt=int(max_prompt), chunk_tokens=chunk_tokens,
                        static_power_w=profile.static_power_w, decode_rows=decode_rows,
                        prefill_rows=prefill_rows)
    if chunk_tokens is not None:
        rows = length_grid(chunk_tokens, points=max(LENGTH_POINTS, 4 * max_batch + 1))
        lin, _ = _split_attention(prefill_cost(profile, model, quant, 1.0, rows, flash=flash))
        tables.linear_row = _Row(rows, np.broadcast_to(lin["time_s"], rows.shape),
                                 np.broadcast_to(lin["energy_j"], rows.shape))
        _, attn = _split_attention(prefill_cost(profile, model, quant, 1.0, plen,
                                                flash=flash))
        launch = np.broadcast_to(attn["overhead_time_s"], plen.shape)
        tables.attn_row = _Row(plen, attn["time_s"] - launch,
                               attn["energy_j"] - launch * profile.static_power_w)
        tables.attn_launch = (float(launch[0]), float(launch[0]) * profile.static_power_w)
    return tables


@dataclass(frozen=True)
class DeviceMemory:
    """Main-memory budget of one device: weights, activation workspace, KV cache."""

    capacity_bytes: float
    weight_bytes: float
    activation_bytes: float
    kv_bytes_per_token: float

    @property
    def kv_capacity_bytes(self) -> float:
        return self.capacity_bytes - self.weight_bytes - self.activation_bytes

    @property
    def kv_capacity_tokens(self) -> int:
        return max(0, math.floor(self.kv_capacity_bytes / self.kv_bytes_per_token))

    @property
    def fits(self) -> bool:
        return self.kv_capacity_bytes > 0


def device_memory(profile: HardwareProfile, model: TransformerConfig, quant: QuantFormat,
                  max_iteration_tokens: int) -> DeviceMemory:
    """KV budget = main memory - weights (at the weight format) - activations of the
    largest iteration (cost.activation_bytes of one pass of `max_iteration_tokens`);
    KV bytes per token at the KV format (cost.kv_cache_bytes)."""
    weights = float(sum(np.asarray(v) for v in weight_bytes(model, quant).values()))
    acts = float(activation_bytes(model, quant, 1.0, float(max_iteration_tokens)))
    return DeviceMemory(capacity_bytes=profile.main_memory.capacity_bytes,
                        weight_bytes=weights, activation_bytes=acts,
                        kv_bytes_per_token=float(kv_cache_bytes(model, quant, 1.0, 1.0)))


def resolve(profile, model, quant) -> tuple[HardwareProfile, TransformerConfig, QuantFormat]:
    """Load a profile, model and format from names (or pass objects through)."""
    model = get_model(model)
    if not model.is_discrete:
        raise InputError(f"model {model.name}: serving needs a real model with integer "
                         "shapes, not a continuous sweep")
    quant = as_quant(quant)
    if not isinstance(quant, QuantFormat):
        raise InputError("serving simulates one quant format at a time")
    return load_profile(profile), model, quant
