"""Whole-model cost: prefill, one decode step, and a whole request, on a hardware profile.

`prefill_cost` / `decode_step_cost` price the operator graph of simulator.ops with the
kernel models of simulator.kernels (`prefill_cost(past_len=...)` a prompt chunk after
cached tokens, `mixed_step_cost` a chunked-prefill pass of decode tokens and prompt
chunks, `ragged_prefill_cost` a batch of prompts of unequal lengths); `simulate` adds a
request (prompt + generated tokens) and the memory footprint (simulator.footprint).
Every input may be a numpy array (batch, lengths, model fields from `model_for_params`,
an object array of formats or profiles): one call evaluates the whole broadcast grid.

Residency (weights re-used while they stay on chip are not fetched again):
* the persistent state (all weights + the KV cache of the step) lives on the nearest
  level that keeps data between kernels and holds it in its usable share; otherwise
  in main memory;
* with MobileLLM-style immediate block-wise weight sharing (block_repeat > 1) the
  repeated runs of a block read its weights from the nearest persistent level that
  holds one block's weights.

A request of G generated tokens = one prefill (produces the first token) + G - 1
decode steps with context P+1 ... P+G-1. Each request's steps are summed exactly when
at most `decode_nodes` of them, else with the composite midpoint rule on `decode_nodes`
contexts (exact wherever step cost is linear in context); always on `decode_nodes`
nodes, so that a request's result never depends on the others in the same call
(`decode_nodes_for`).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from precsim.simulator.compute_units import phase_profiles
from precsim.simulator.errors import InputError
from precsim.simulator.footprint import (activation_bytes, kv_cache_bytes, numpy_scalar,
                                         weight_bytes, weight_total)
from precsim.simulator.hardware import as_hardware, as_operand
from precsim.simulator.models import get_model
from precsim.simulator.op_eval import EvaluatedPass, PassOps, price_passes
from precsim.simulator.ops import (add_axis, build_mixed_ops, build_ops, model_add_axis,
                                   new_frozen)
from precsim.simulator.power import dynamic_split, memory_keys, power_per_phase, where
from precsim.simulator.quant import as_quant
from precsim.simulator.roofline import home_level


def _check_lengths(**values) -> None:
    for name, value in values.items():
        if isinstance(value, (int, float)) and 1 <= value < math.inf:
            continue  # the common scalar case, without numpy
        arr = np.asarray(value, dtype=float)
        if arr.size == 0:
            raise InputError(f"{name} is empty")
        if arr.min() >= 1 and arr.max() < math.inf:  # NaN fails
            continue
        bad = ~np.isfinite(arr) | (arr < 1)
        if bad.any():
            shown = arr[bad].reshape(-1)[0]
            raise InputError(f"{name} must be at least 1, got {shown:g}"
                             + (" (batch 0 has nothing to run)" if name == "batch" else ""))


# ---- phase cost ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PhaseCost:
    """Cost of one phase: its ops priced (simulator.op_eval.EvaluatedPass: `costs`, one
    KernelCost per op multiplied by its count, and their sums, every sum in the pass's
    common shape). Arrays broadcast over the inputs."""

    phase: str
    specs: tuple
    evaluated: EvaluatedPass
    level_names: tuple
    weights_home: object
    weight_bytes: dict

    @property
    def costs(self) -> tuple:
        """One KernelCost per op (split off the stacked evaluation on first access)."""
        return self.evaluated.costs

    @property
    def time_s(self):
        return self.evaluated.sums["time_s"]

    @property
    def energy_j(self):
        return self.evaluated.sums["energy_j"]

    @property
    def flops(self):
        return self.evaluated.other_sums["flops"]

    @property
    def vector_ops(self):
        return self.evaluated.other_sums["vector_ops"]

    @property
    def convert_ops(self):
        return self.evaluated.other_sums["convert_ops"]

    @property
    def convert_time_s(self):
        return self.evaluated.other_sums["convert_time_s"]

    @property
    def overhead_time_s(self):
        return self.evaluated.sums["overhead_time_s"]

    @property
    def n_kernels(self):
        return self.evaluated.sums["n_kernels"]

    @property
    def bytes_moved(self) -> dict:
        return dict(self.evaluated.sums["bytes_moved"])

    @property
    def main_memory_bytes(self):
        return self.bytes_moved[self.level_names[-1]]

    def reduce(self, weights, axis: int = -1) -> PhaseCost:
        """Weighted sum of every op over `axis` (decode steps along a trailing axis)."""
        home = self.weights_home
        if type(home) is not int and np.ndim(home):  # a level per element: take one
            home = np.take(np.broadcast_to(home, np.broadcast(home, weights).shape), 0,
                           axis=axis)
        new = object.__new__(PhaseCost)  # `dataclasses.replace` without its field checks
        new.__dict__.update(self.__dict__)
        new.__dict__.update(evaluated=self.evaluated.reduce(weights, axis), weights_home=home)
        return new

    @property
    def ops(self):
        """The per-op table as a pandas DataFrame (`rows`; pandas is imported here, the
        totals never need it)."""
        import pandas as pd
        return pd.DataFrame(self.rows())

    def rows(self) -> list[dict]:
        """One dict per op: op, phase, group, count, shape, exec_dtype, exec_path, bound,
        flops, vector/convert ops, bytes per level, time, energy, time components,
        kernels."""
        if np.ndim(self.time_s):
            raise InputError("the per-op table needs scalar inputs (one configuration); "
                             "index the swept arrays first")
        rows = []
        for spec, cost in zip(self.specs, self.costs):
            main = float(cost.main_memory_bytes)
            row = {"op": spec.name, "phase": self.phase, "group": spec.group,
                   "count": float(np.asarray(spec.count)), "shape": spec.shape(),
                   "exec_dtype": str(cost.exec_dtype), "exec_path": str(cost.exec_path),
                   "bound": str(cost.bound),
                   "flops": float(cost.flops), "vector_ops": float(cost.vector_ops),
                   "convert_ops": float(cost.convert_ops)}
            for name in self.level_names:
                row[f"bytes_{name}"] = float(cost.bytes_moved[name])
            row.update({"time_s": float(cost.time_s), "energy_j": float(cost.energy_j),
                        "compute_time_s": float(cost.compute_time_s),
                        "memory_time_s": float(cost.memory_time_s),
                        "overhead_time_s": float(cost.overhead_time_s),
                        "n_kernels": float(cost.n_kernels),
                        "ops_per_main_byte": (float(cost.flops + cost.vector_ops
                                                    + cost.convert_ops) / main
                                              if main > 0 else np.inf)})
            rows.append(row)
        return rows


def _price(passes, fused_dequant: bool) -> tuple:
    """Price passes, each (hw, model, quant, phase, specs, kv_bytes): its ops evaluated
    along an ops axis, shared by the passes on the same hardware and format
    (simulator.op_eval); weights (and the KV cache, kv_bytes) placed as in the module
    docstring. Passes of one (model, format) object pair (a request's prefill and decode)
    look their weight bytes up once (each PhaseCost its own dict)."""
    placed = []
    weights: dict = {}
    for hw, model, quant, _, specs, kv_bytes in passes:
        key = (id(model), id(quant))
        if key in weights:
            wb, total = weights[key]
            wb = dict(wb)
        else:
            wb, total = weights[key] = weight_bytes(model, quant), weight_total(model, quant)
        state_home = home_level(hw, total + kv_bytes, persistent_only=True)
        block_home = state_home  # read only where blocks repeat (op_eval.evaluate_op)
        if model.block_repeat != 1:
            block = (wb["attn"] + wb["mlp"]) / model.n_layers
            block_home = np.minimum(home_level(hw, block, persistent_only=True), state_home)
        placed.append((wb, new_frozen(PassOps, specs=specs, hw=hw, quant=quant, model=model,
                                      state_home=state_home, block_home=block_home)))
    costs = price_passes([ops for _, ops in placed], fused_dequant)
    return tuple(new_frozen(PhaseCost, phase=p[3], specs=p[4], evaluated=c,
                            level_names=p[0].level_names, weights_home=ops.state_home,
                            weight_bytes=wb) for p, (wb, ops), c in zip(passes, placed, costs))


def _phase(profile, model, quant, batch, q_len, kv_len, phase: str, flash: bool,
           cache_len=None, logit_rows=None) -> tuple:
    """The pass to `_price`: (hw, model, quant, phase, ops, KV-cache bytes)."""
    model = get_model(model)
    quant = as_quant(quant)
    hw = as_hardware(phase_profiles(profile, quant, phase))  # a SoC: the phase's unit
    return _pass(hw, model, quant, batch, q_len, kv_len, phase, flash, cache_len, logit_rows)


def _pass(hw, model, quant, batch, q_len, kv_len, phase: str, flash: bool, cache_len=None,
          logit_rows=None) -> tuple:
    """`_phase` of the phase's packed hardware, a loaded model and a parsed format (what
    `simulate` has resolved once for both passes)."""
    specs = build_ops(model, quant, batch, q_len, kv_len, phase, flash, cache_len=cache_len,
                      logit_rows=logit_rows)
    return hw, model, quant, phase, specs, kv_cache_bytes(model, quant, batch, kv_len)


def _check_counts(**values) -> None:
    for name, value in values.items():
        if isinstance(value, (int, float)) and 0 <= value < math.inf:
            continue  # the common scalar case, without numpy
        arr = np.asarray(value, dtype=float)
        if arr.size == 0:
            raise InputError(f"{name} is empty")
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            raise InputError(f"{name} must be at least 0, got {arr[bad].reshape(-1)[0]:g}")


def _emitting(last_chunk):
    """None when every sequence produces a token, else 0/1 per sequence."""
    if last_chunk is True:
        return None
    return np.asarray(last_chunk, dtype=bool).astype(float)


def prefill_cost(profile, model, quant, batch, prompt_len, *, flash: bool = True,
                 fused_dequant: bool = True, past_len=0.0, last_chunk=True) -> PhaseCost:
    """Process `prompt_len` tokens for each of `batch` sequences (produces token 1).

    With `past_len` > 0 this is a prefill chunk: `prompt_len` new tokens per sequence
    after `past_len` already in the KV cache; attention covers past_len + prompt_len
    keys (the cached ones read at the KV bits, `attention_cost` cache_len) and the new
    K/V are written to the cache. `last_chunk=False` (or an array of flags): the chunk
    is not the prompt's last, so it produces no token (no lm_head, no sampling).
    """
    return _price([_prefill_pass(profile, model, quant, batch, prompt_len, flash, past_len,
                                 last_chunk)], fused_dequant)[0]


def _prefill_pass(profile, model, quant, batch, prompt_len, flash: bool, past_len=0.0,
                  last_chunk=True) -> tuple:
    """`prefill_cost`'s pass, checked, to `_price`."""
    _check_lengths(batch=batch, prompt_len=prompt_len)
    _check_counts(past_len=past_len)
    emits = _emitting(last_chunk)
    return _phase(profile, model, quant, batch, prompt_len, prompt_len + past_len, "prefill",
                  flash, cache_len=past_len, logit_rows=None if emits is None else batch * emits)


def mixed_step_cost(profile, model, quant, decode_batch, decode_context_len, prefill_tokens,
                    prefill_past_len=0.0, *, last_chunk=True, ragged: bool = False,
                    flash: bool = True, fused_dequant: bool = True) -> PhaseCost:
    """One forward pass of chunked prefill (Sarathi-Serve / vLLM): `decode_batch` decode
    tokens, each attending to `decode_context_len` positions (its own included, as in
    `decode_step_cost`), plus a prompt chunk of `prefill_tokens` new tokens after
    `prefill_past_len` cached ones (`last_chunk`: it is the prompt's last chunk and
    produces a token).

    Weights are read once for all decode_batch + prefill_tokens rows; lm_head and
    sampling run for decode_batch + last_chunk sequences; attention is one kernel with a
    decode part (as `decode_step_cost`) and a chunk part (as `prefill_cost` with
    past_len), the op table's `attention` and `prefill_attention` rows. Either side may
    be 0 (decode_batch 0: `prefill_cost(1, prefill_tokens, past_len=prefill_past_len)`;
    prefill_tokens 0: `decode_step_cost(decode_batch, decode_context_len)`), not both.
    `ragged=True`: the last axis of prefill_tokens / prefill_past_len / last_chunk
    lists the chunks of the pass (0 tokens: no chunk), every other input broadcasts
    against the remaining axes, and attention is charged per chunk (sum of L_i^2, not
    k mean(L)^2). Ops and arrays as in `prefill_cost`; phase "mixed".
    """
    return _mixed(profile, model, quant, decode_batch, decode_context_len, prefill_tokens,
                  prefill_past_len, last_chunk, ragged, flash, fused_dequant, "mixed")


def ragged_prefill_cost(profile, model, quant, prompt_lens, *, past_lens=0.0,
                        last_chunk=True, flash: bool = True, fused_dequant: bool = True
                        ) -> PhaseCost:
    """Prefill of prompts of unequal lengths in one batch: `prompt_lens` (..., k), the
    last axis the k sequences of a batch (0: an empty slot), other inputs broadcasting
    against the leading axes. GEMMs run over sum(L_i) rows, attention costs sum of the
    per-sequence attentions (causal pairs sum L_i(L_i + 1)/2) in one launch; lm_head
    over the sequences present. Equal lengths give `prefill_cost(k, L)` (to rounding).
    `past_lens` / `last_chunk`: per-sequence chunks after cached tokens, as in
    `mixed_step_cost(0, 1, prompt_lens, past_lens, ragged=True)`, which this is."""
    lens = np.asarray(prompt_lens, dtype=float)
    if lens.ndim == 0:
        lens = lens[None]
    return _mixed(profile, model, quant, 0.0, 1.0, lens, past_lens, last_chunk, True, flash,
                  fused_dequant, "prefill")


def _mixed(profile, model, quant, decode_batch, decode_context_len, prefill_tokens,
           prefill_past_len, last_chunk, ragged, flash, fused_dequant, phase) -> PhaseCost:
    _check_counts(decode_batch=decode_batch, prefill_tokens=prefill_tokens,
                  prefill_past_len=prefill_past_len)
    b = np.asarray(decode_batch, dtype=float)
    tokens = np.asarray(prefill_tokens, dtype=float)
    if ragged and tokens.ndim == 0:
        raise InputError("ragged prefill: prefill_tokens needs a trailing axis of chunks")
    total = np.sum(tokens, axis=-1) if ragged else tokens
    if np.any(b + total <= 0):
        raise InputError("a pass needs at least one decode token or prompt token "
                         "(decode_batch and prefill_tokens are both 0)")
    _check_lengths(decode_context_len=np.where(b > 0, decode_context_len, 1.0))
    model = get_model(model)
    quant = as_quant(quant)
    hw = as_hardware(phase_profiles(profile, quant, phase))
    specs = build_mixed_ops(model, quant, b, decode_context_len, tokens, prefill_past_len,
                            last_chunk, flash, ragged, phase)
    dec_kv = np.where(b > 0, kv_cache_bytes(model, quant, np.maximum(b, 1.0),
                                            np.where(b > 0, decode_context_len, 1.0)), 0.0)
    x_model, x_quant = ((model_add_axis(model), quant[..., None] if isinstance(
        quant, np.ndarray) else quant) if ragged else (model, quant))
    chunk_kv = np.where(tokens > 0, kv_cache_bytes(x_model, x_quant, 1.0,
                                                   prefill_past_len + tokens), 0.0)
    kv = dec_kv + (np.sum(chunk_kv, axis=-1) if ragged else chunk_kv)
    return _price([(hw, model, quant, phase, specs, kv)], fused_dequant)[0]


def decode_step_cost(profile, model, quant, batch, context_len, *, flash: bool = True,
                     fused_dequant: bool = True) -> PhaseCost:
    """One decode step: one new token per sequence attending to `context_len` positions
    (the new one included)."""
    return _price([_decode_pass(profile, model, quant, batch, context_len, flash)],
                  fused_dequant)[0]


def _decode_pass(profile, model, quant, batch, context_len, flash: bool) -> tuple:
    """`decode_step_cost`'s pass, checked, to `_price`."""
    _check_lengths(batch=batch, context_len=context_len)
    return _phase(profile, model, quant, batch, 1.0, context_len, "decode", flash)


# ---- whole request -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SimulationResult:
    """A request: `prefill` and `decode` (summed over all decode steps) phase costs, the
    per-op table `ops` (scalar inputs) and `totals`."""

    prefill: PhaseCost
    decode: PhaseCost
    totals: dict

    @property
    def ops(self):
        """The per-op DataFrame (prefill rows, then decode), built on each access (never
        for the totals alone)."""
        import pandas as pd
        return pd.concat([self.prefill.ops, self.decode.ops], ignore_index=True)

    def rows(self) -> list[dict]:
        """The rows of `ops` as dicts, without pandas."""
        return self.prefill.rows() + self.decode.rows()


def simulate(profile, model, quant, batch, prompt_len, gen_len, *, flash: bool = True,
             fused_dequant: bool = True, decode_nodes: int = 64) -> SimulationResult:
    """Serve `batch` requests of `prompt_len` prompt tokens and `gen_len` generated ones.

    totals: ttft_s (prefill), tpot_s (mean decode step), decode_tokens_per_s (batch /
    tpot), prefill_tokens_per_s, e2e_latency_s, energy_j, energy_per_token_j (per
    generated token), energy_per_request_j, average_power_w, the split energy_static_j
    (idle + active baseline), energy_compute_j, energy_memory_j (per level) and
    throttled (the power cap bound: times and energies are after throttling;
    simulator.power), memory_bytes = weight_bytes + kv_cache_bytes (prompt + generated
    positions) + activation_bytes, capacity_bytes (main memory), fits, bytes_moved.
    """
    if not (type(batch) is type(prompt_len) is type(gen_len) is int
            and batch >= 1 and prompt_len >= 1 and gen_len >= 1):  # Python ints >= 1 pass
        _check_lengths(batch=batch, prompt_len=prompt_len, gen_len=gen_len)
    if decode_nodes < 1:
        raise InputError("decode_nodes must be at least 1")
    model = get_model(model)
    quant = as_quant(quant)
    hw = as_hardware(phase_profiles(profile, quant, "prefill"))
    dec_hw = as_hardware(phase_profiles(profile, quant, "decode"))
    # a number as a numpy double (np.asarray(gen_len, dtype=float) - 1.0 gives one too)
    steps = (np.float64(gen_len) if type(gen_len) in (int, float)
             else np.asarray(gen_len, dtype=float)) - 1.0
    offsets, weights = decode_nodes_for(steps, decode_nodes)
    quant_x = quant[..., None] if isinstance(quant, np.ndarray) else quant
    prefill, nodes = _price([  # one evaluation of both passes' ops (simulator.op_eval)
        # `_prefill_pass` and `_decode_pass` without their checks (the lengths are checked,
        # contexts prompt_len + offsets >= 1) on what is resolved above
        _pass(hw, model, quant, batch, prompt_len, prompt_len + 0.0, "prefill", flash,
              cache_len=0.0),
        _pass(dec_hw.expand(), model_add_axis(model), quant_x, add_axis(batch), 1.0,
              add_axis(prompt_len) + offsets, "decode", flash)], fused_dequant)
    decode = nodes.reduce(weights)
    totals = _totals((hw, dec_hw), model, quant, batch, prompt_len, gen_len, steps,
                     prefill, decode, flash)
    return new_frozen(SimulationResult, prefill=prefill, decode=decode, totals=totals)


#: Per node count n (a fidelity option, not a request value): k + 1.0 and k + 0.5 for
#: k = 0 .. n - 1 and n, as read-only arrays / 0-d operands (`hardware.as_operand`).
_NODES: dict = {}


def _nodes(decode_nodes: int) -> tuple:
    """(k + 1.0, k + 0.5, n, 0.5) of `decode_nodes_for`, kept per node count."""
    kept = _NODES.get(decode_nodes)
    if kept is None:
        if len(_NODES) >= 16:  # a few node counts in use: the oldest goes first
            _NODES.pop(next(iter(_NODES)))
        k = np.arange(decode_nodes, dtype=float)
        first, mid = k + 1.0, k + 0.5
        first.flags.writeable = mid.flags.writeable = False
        kept = _NODES[decode_nodes] = (first, mid, as_operand(decode_nodes), as_operand(0.5))
    return kept


def decode_nodes_for(steps, decode_nodes: int = 64):
    """(context offsets, weights), each with a trailing axis of `decode_nodes`, such that
    the decode time of `steps` steps (contexts P+1 ... P+steps) is the weighted sum of
    step costs at P + offsets. Per element: exact (offsets 1..decode_nodes, weight 1 up
    to `steps`, else 0) when steps <= decode_nodes, else the composite midpoint rule
    (offsets 0.5 + (k + 0.5) steps / decode_nodes, weight steps / decode_nodes). The rule
    and the node count never depend on other elements, so a vectorised call equals
    the scalar calls element for element (a number computes only its rule: the values
    `np.where` would pick; offsets may be a shared read-only array)."""
    first, mid, n, half = _nodes(decode_nodes)
    steps = np.asarray(steps, dtype=float)
    if steps.ndim == 0:
        if float(steps) <= decode_nodes:
            return first, (first <= steps).astype(float)
        weights = np.empty(decode_nodes)  # np.full(decode_nodes, steps / decode_nodes)
        weights.fill(float(steps) / decode_nodes)
        return half + mid * steps / n, weights
    steps_x = steps[..., None]
    exact = steps_x <= decode_nodes
    offsets = np.where(exact, first, half + mid * steps_x / n)
    weights = np.where(exact, (first <= steps_x).astype(float), steps_x / decode_nodes)
    return offsets, weights


#: NaN as a numpy double: the totals of a scalar request without decode steps.
_NAN = np.float64(np.nan)


def _as_total(v):
    """A total as `footprint.numpy_scalar` gives it (numpy doubles as they are, Python
    floats as numpy doubles, without its call)."""
    return v if type(v) is np.float64 else np.float64(v) if type(v) is float \
        else numpy_scalar(v)


def _totals(hws, model, quant, batch, prompt_len, gen_len, steps, prefill, decode, flash):
    # board power per phase (simulator.power): baseline, cap, throttled time; a SoC's
    # phases may run on different units (same envelope, each unit's dynamic energy)
    # a scalar request: power on Python floats (simulator.power), its results, sizes and
    # steps then as numpy doubles (the same doubles, the same operations: numpy's results;
    # `where` picks as np.where does), so every total is one already; arrays as they are,
    # every total then as `numpy_scalar` gives it
    hw, dec_hw = hws
    pre, dec = prefill.evaluated.sums, decode.evaluated.sums
    times = pre["time_s"], dec["time_s"]
    numbers = type(steps) is type(times[0]) is type(times[1]) is np.float64
    pre_p, dec_p = power_per_phase(hws, times,
                                   (dynamic_split(hw, prefill), dynamic_split(dec_hw, decode)))
    split = {k: pre_p.split[k] + dec_p.split[k] for k in pre_p.split}
    weights = weight_total(model, quant)
    cap = hw.main_capacity_bytes
    with nullcontext() if numbers else np.errstate(divide="ignore", invalid="ignore"):
        if numbers:
            f64 = np.float64
            steps, nan, cap = float(steps), _NAN, f64(cap)
            tokens = prompt_len + gen_len
            kv = f64(kv_cache_bytes(model, quant, batch, tokens))
            acts = f64(activation_bytes(model, quant, batch, prompt_len, flash))
            ttft, pre_e = f64(pre_p.time_s), f64(pre_p.energy_j)
            dec_t, dec_e = f64(dec_p.time_s), f64(dec_p.energy_j)
            split = {k: f64(v) for k, v in split.items()}
        else:
            nan = np.nan
            tokens = np.asarray(prompt_len) + np.asarray(gen_len)
            kv = kv_cache_bytes(model, quant, batch, tokens)
            acts = activation_bytes(model, quant, batch, prompt_len, flash)
            ttft, pre_e, dec_t, dec_e = pre_p.time_s, pre_p.energy_j, dec_p.time_s, dec_p.energy_j
        decoding = steps > 0
        per_step = where(decoding, steps, 1)
        tpot = where(decoding, dec_t / per_step, nan)
        energy = pre_e + dec_e
        e2e = ttft + dec_t
        need = weights + kv + acts
        pre_moved, dec_moved = pre["bytes_moved"], dec["bytes_moved"]
        totals = {
            "ttft_s": ttft, "tpot_s": tpot, "decode_tokens_per_s": batch / tpot,
            "prefill_tokens_per_s": batch * prompt_len / ttft, "e2e_latency_s": e2e,
            "energy_j": energy, "energy_per_token_j": energy / (batch * gen_len),
            "decode_energy_per_token_j": where(decoding, dec_e / (batch * per_step), nan),
            "average_power_w": energy / e2e, "energy_per_request_j": energy / batch,
            "energy_static_j": pre_p.static_j + dec_p.static_j,
            "energy_compute_j": split["compute"],
            "energy_memory_j": {level: split[key] for key, level, _ in memory_keys(hw)},
            "throttled": pre_p.throttled | dec_p.throttled,
            "weight_bytes": weights,
            "weight_bytes_by_group": {k: _as_total(v) for k, v in prefill.weight_bytes.items()},
            "kv_cache_bytes": kv, "activation_bytes": acts, "memory_bytes": need,
            "capacity_bytes": cap, "fits": need <= cap,
            "bytes_moved": {k: pre_moved[k] + dec_moved[k] for k in prefill.level_names},
            "launch_overhead_s": pre["overhead_time_s"] + dec["overhead_time_s"],
            "kernels_per_decode_step": where(decoding, dec["n_kernels"] / per_step, nan),
        }
    if numbers:  # numpy doubles and booleans already
        return totals
    # every total (and dict entry) as `numpy_scalar` gives it; every dict a new one
    return {k: {kk: _as_total(vv) for kk, vv in v.items()} if type(v) is dict else _as_total(v)
            for k, v in totals.items()}
