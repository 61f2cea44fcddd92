"""Iteration cost tables for the serving DES, built from the simulator's cost model.

Every table is one vectorised call of `simulator.cost` over a grid; the DES then looks
iterations up (exact along the batch axis, linear interpolation along length axes),
which is what makes 10,000-request simulations take well under a second of cost work.

- decode: `decode_step_cost(batch = 1..max_batch, context = grid)`; an iteration of b
  sequences holding C context tokens in all is read at (b, C / b). Step cost is linear
  in context per op (and piecewise linear overall), so interpolation is exact between
  the kinks of max(compute, memory).
- prefill: k prompts of lengths L_i (T tokens in all) are priced as
  `ragged_prefill_cost(L)`: `prefill_cost(batch = 1..max_batch, prompt_len = grid)` read
  at (k, T / k), plus sum_i A(L_i) - k A(T / k), where A(L) is the attention op of
  `prefill_cost(1, L)` (attention is charged sum L_i^2, not k mean(L)^2; the other ops
  only see the T rows). Exact for equal lengths; the grid holds the workload's own
  prompt lengths (up to 256 distinct).
- mixed (chunked prefill): one forward pass of b decode tokens plus prompt chunks
  (past_i cached tokens, take_i new ones, last_i: the prompt's last chunk) is priced
  as `mixed_step_cost` with the chunks along its ragged axis, taken apart into the
  parts it sums, each a table from one cost-model call: the non-attention ops over
  b + sum take rows without lm_head (`mixed_step_cost(0, 1, rows, last_chunk=False)`);
  lm_head + sampling for the b + sum last sequences that produce a token (the decode
  table's); the decode attention part (the decode table's attention op); each chunk's
  attention part on a (past, take) grid (the `prefill_attention` op of
  `mixed_step_cost(1, 1, take, past)`, launched with the decode part); and one
  attention launch when there is no decode part. Exact at grid points, except that
  each table places Q, the attention output and the weights by its own pass.

Energies come from the same calls (they include static power while busy); the DES adds
static power while idle.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from precsim.simulator.cost import (PhaseCost, activation_bytes, decode_step_cost, kv_cache_bytes,
                            mixed_step_cost, prefill_cost, weight_bytes)
from precsim.simulator.errors import InputError
from precsim.simulator.models import TransformerConfig, get_model
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import QuantFormat, as_quant

#: grid points along context / prompt-length axes (plus the workload's own lengths)
LENGTH_POINTS = 129
MAX_EXACT_LENGTHS = 256
#: ops of a pass charged per sequence that produces a token
HEAD_OPS = ("lm_head", "sampling")


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


def _op_sums(cost: PhaseCost, keep) -> dict:
    """time / energy / launch sums of the ops of a phase for which keep(spec) holds."""
    out = {"time_s": 0.0, "energy_j": 0.0, "overhead_time_s": 0.0}
    for spec, op in zip(cost.specs, cost.costs):
        if keep(spec):
            for key in out:
                out[key] = out[key] + np.asarray(getattr(op, key))
    return out


def _split_attention(cost: PhaseCost) -> tuple[dict, dict]:
    """(non-attention ops, attention ops) time / energy / launch sums of a phase."""
    return (_op_sums(cost, lambda spec: spec.kind != "attention"),
            _op_sums(cost, lambda spec: spec.kind == "attention"))


class _Row:
    """Linear interpolation on one sorted grid, in plain Python (fast for scalars)."""

    __slots__ = ("x", "ys")

    def __init__(self, x: np.ndarray, *ys: np.ndarray):
        self.x = x.tolist()
        self.ys = [np.broadcast_to(y, x.shape).tolist() for y in ys]

    def __call__(self, value: float) -> tuple[float, ...]:
        i, w = _locate(self.x, value)
        if w == 0.0:
            return tuple(y[i] for y in self.ys)
        return tuple(y[i] + w * (y[i + 1] - y[i]) for y in self.ys)


def _locate(x: list, value: float) -> tuple[int, float]:
    """(i, w): value = x[i] + w (x[i+1] - x[i]), 0 <= w < 1."""
    i = bisect.bisect_left(x, value)
    if i < len(x) and x[i] == value:
        return i, 0.0
    if i == 0 or i == len(x):
        raise InputError(f"length {value:g} outside the cost table [{x[0]:g}, "
                         f"{x[-1]:g}]; rebuild the tables for this workload")
    return i - 1, (value - x[i - 1]) / (x[i] - x[i - 1])


class _Grid:
    """Bilinear interpolation on a sorted x grid times a sorted y grid (plain Python)."""

    __slots__ = ("x", "y", "zs")

    def __init__(self, x: np.ndarray, y: np.ndarray, *zs: np.ndarray):
        self.x, self.y = x.tolist(), y.tolist()
        self.zs = [np.broadcast_to(z, (x.size, y.size)).tolist() for z in zs]

    def __call__(self, xv: float, yv: float) -> tuple[float, ...]:
        i, u = _locate(self.x, xv)
        j, v = _locate(self.y, yv)
        out = []
        for z in self.zs:
            lo = z[i][j] if v == 0.0 else z[i][j] + v * (z[i][j + 1] - z[i][j])
            if u:
                hi = z[i + 1][j] if v == 0.0 else \
                    z[i + 1][j] + v * (z[i + 1][j + 1] - z[i + 1][j])
                lo += u * (hi - lo)
            out.append(lo)
        return tuple(out)


@dataclass
class CostTables:
    """Iteration time / energy for the serving DES (implements serving.IterationCosts).

    Build with `build_cost_tables`; lookups raise InputError outside the tables.
    """

    max_batch: int
    max_context: int
    max_prompt: int
    chunk_tokens: int | None
    decode_rows: list = field(repr=False)
    prefill_rows: list = field(repr=False)
    linear_row: _Row | None = field(default=None, repr=False)
    attn_row: _Row | None = field(default=None, repr=False)
    attn_launch_s: float = 0.0  # launches draw no dynamic energy
    head_rows: list = field(default_factory=list, repr=False)
    chunk_attn: _Grid | None = field(default=None, repr=False)

    def _check_batch(self, n: int) -> None:
        if not 1 <= n <= self.max_batch:
            raise InputError(f"batch {n} outside the cost table (1..{self.max_batch})")

    def prefill(self, n_seqs: int, prompt_tokens: int,
                prompt_lens: list[int] | None = None) -> tuple[float, float]:
        """`n_seqs` prompts of `prompt_tokens` tokens in all (lengths `prompt_lens`, if
        known: attention per prompt, as `ragged_prefill_cost`)."""
        self._check_batch(n_seqs)
        mean = prompt_tokens / n_seqs
        time_s, energy_j = self.prefill_rows[n_seqs - 1](mean)
        if prompt_lens is not None and any(n != prompt_lens[0] for n in prompt_lens):
            at, ae = self.attn_row(mean)
            time_s -= n_seqs * at
            energy_j -= n_seqs * ae
            for n in prompt_lens:
                t, e = self.attn_row(n)
                time_s += t
                energy_j += e
        return time_s, energy_j

    def decode(self, batch: int, context_tokens: int) -> tuple[float, float]:
        self._check_batch(batch)
        time_s, energy_j, _, _ = self.decode_rows[batch - 1](context_tokens / batch)
        return time_s, energy_j

    def mixed(self, batch: int, context_tokens: int,
              chunks: list[tuple]) -> tuple[float, float]:
        """b decode tokens + prompt chunks [(past tokens, new tokens[, last chunk of its
        prompt: default True]), ...] in one pass (chunked prefill)."""
        if self.linear_row is None or self.chunk_attn is None:
            raise InputError("these cost tables were built without chunked prefill")
        new = sum(chunk[1] for chunk in chunks)
        emitting = batch + sum(1 for chunk in chunks if len(chunk) < 3 or chunk[2])
        time_s, energy_j = self.linear_row(batch + new)
        if emitting:
            self._check_batch(emitting)
            head_t, head_e = self.head_rows[emitting - 1]
            time_s += head_t
            energy_j += head_e
        if batch:
            self._check_batch(batch)
            _, _, attn_t, attn_e = self.decode_rows[batch - 1](context_tokens / batch)
            time_s += attn_t
            energy_j += attn_e
        elif chunks:
            time_s += self.attn_launch_s
        for chunk in chunks:
            t, e = self.chunk_attn(chunk[0], chunk[1])
            time_s += t
            energy_j += e
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
    _, attn = _split_attention(prefill_cost(profile, model, quant, 1.0, plen, flash=flash))
    launch = np.broadcast_to(attn["overhead_time_s"], plen.shape)
    tables = CostTables(max_batch=max_batch, max_context=int(max_context),
                        max_prompt=int(max_prompt), chunk_tokens=chunk_tokens,
                        decode_rows=decode_rows,
                        prefill_rows=prefill_rows,
                        attn_row=_Row(plen, attn["time_s"] - launch, attn["energy_j"]),
                        attn_launch_s=float(launch[0]))
    if chunk_tokens is not None:
        rows = length_grid(chunk_tokens, points=max(LENGTH_POINTS, 4 * max_batch + 1))
        lin, _ = _split_attention(mixed_step_cost(profile, model, quant, 0.0, 1.0, rows,
                                                  last_chunk=False, flash=flash))
        tables.linear_row = _Row(rows, lin["time_s"], lin["energy_j"])
        head = _op_sums(dec, lambda spec: spec.name in HEAD_OPS)
        head_cols = [np.broadcast_to(head[k], shape)[:, 0].tolist()
                     for k in ("time_s", "energy_j")]
        tables.head_rows = list(zip(*head_cols))
        exact = None if prompt_lengths is None else \
            np.asarray(prompt_lengths)[np.asarray(prompt_lengths) <= chunk_tokens]
        take = length_grid(chunk_tokens, exact)
        past = np.union1d([0.0], length_grid(max_prompt))
        chunk = mixed_step_cost(profile, model, quant, 1.0, 1.0, take[None, :],
                                past[:, None], last_chunk=False, flash=flash)
        part = _op_sums(chunk, lambda spec: spec.name == "prefill_attention")
        tables.chunk_attn = _Grid(past, take, part["time_s"], part["energy_j"])
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
