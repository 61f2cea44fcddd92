"""Kernel formulas: GEMM, dequantisation, element-wise, norms, embedding, attention.

Every function is vectorised: shapes, batch sizes and lengths may be numpy arrays, the
format may be an object array of QuantFormats and the profile an object array of
HardwareProfiles; results broadcast (numpy rules).

Each kernel counts its operations and the bytes it moves at every memory level, prices
them for every execution option of its operand types (simulator.mapping: which engine and
format path runs it) with the roofline (simulator.roofline: time and energy from ops and
bytes) and takes the option with the least time element-wise (`cheapest`).
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from precsim.simulator.attention import (any_of, attention_plans, cache_split,
                                         check_attention, conversions, flash_tiling,
                                         kv_reads, operand_plans, reread,
                                         scored_pairs)
from precsim.simulator.checks import check_positive, checked
from precsim.simulator.gemm_shape import shaped_gemm
from precsim.simulator.hardware import (EIGHT, ONE, TWO, ZERO, Hardware, as_hardware,
                                        as_operand, kernel_vector_terms, on_floats)
from precsim.simulator.levels import level_bytes
from precsim.simulator.mapping import cheapest, gemm_stream_share, plan_options
from precsim.simulator.quant import (QuantFormat, as_quant, dtype_bits, group_format,
                                     quant_attr,
                                     stream_bits, stream_dtype)
from precsim.simulator.roofline import (KernelCost, bytes_through, home_level, roofline_cost,
                                        staged_tiles)

#: Vector ops per element: quantise an activation (abs-max, scale, round+convert).
QUANTIZE_OPS = 3.0
#: Vector ops per attention score: scale, running max, exp, running sum, rescale.
SOFTMAX_OPS = 5.0
#: A plan's conversion rates (weights, activations: ops, seconds, joules per element).
_CONVERSIONS = tuple(f"{o}_convert_{x}" for o in "wa" for x in ("ops", "s", "j"))
#: Format objects whose shape-free terms are kept per packed profile (`_memo`).
FORMAT_MEMO_MAX = 64
#: `elementwise_cost`'s plan on the vector unit (read only: `roofline_cost` reads it).
_VECTOR_PLAN = MappingProxyType({"ops_per_s": 1.0, "energy_per_op_j": 0.0,
                                 "exec_dtype": "vector"})


# ---- kernels -------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _GroupTerms:
    """What no shape enters of a layer group's format on a profile: the format, its bytes
    per weight and activation element, the activation stream's bytes, per-channel scale
    bits, its (weight, activation) types' execution options (read-only mappings), per
    option whether it converts nothing (every conversion rate the number 0) and the
    weight and activation bytes as operands against arrays (`as_operand`)."""

    fmt: object
    s_w: object
    s_a: object
    s_stream: object
    channel_bits: object
    options: tuple
    plain: tuple
    operands: tuple


def _memo(hw: Hardware, kind: str, source, key: tuple, build):
    """build(), memoised in `hw.exec_cache[kind]` per (id(source), *key) for a single
    format object `source` (kept in the entry, so that its id is not reused; the
    FORMAT_MEMO_MAX most recent), built anew for an array of formats."""
    if not isinstance(source, QuantFormat):
        return build()
    memo, key = hw.exec_cache.setdefault(kind, {}), (id(source),) + key
    hit = memo.get(key)
    if hit is not None and hit[0] is source:
        return hit[1]
    value = build()
    while len(memo) >= FORMAT_MEMO_MAX:  # the oldest entry goes first
        memo.pop(next(iter(memo)))
    memo[key] = (source, value)
    return value


def _group_terms(hw: Hardware, quant, group: str) -> _GroupTerms:
    """`_GroupTerms` of `quant`'s layer group `group` on `hw` (memoised: `_memo`)."""
    def build():
        fmt = group_format(quant, group)
        w_dtype = quant_attr(fmt, lambda q: q.weight_dtype)
        a_dtype = quant_attr(fmt, lambda q: q.act_dtype)
        options = tuple(MappingProxyType(p) for p in plan_options(hw, w_dtype, a_dtype))
        s_w = quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
        s_a = quant_attr(fmt, lambda q: q.effective_act_bits) / 8.0
        return _GroupTerms(
            fmt=fmt, s_w=s_w, s_a=s_a, operands=(as_operand(s_w), as_operand(s_a)),
            s_stream=stream_bits(fmt) / 8.0,
            channel_bits=quant_attr(fmt, lambda q: q.channel_scale_bits),
            options=options, plain=tuple(all(type(p[f]) is float and p[f] == 0.0
                                             for f in _CONVERSIONS) for p in options))
    return _memo(hw, "group_terms", quant, (group,), build)


@checked(check_positive, "m", "n", "k")
def gemm_cost(profile, m, n, k, quant="W16A16", *, group: str = "mlp", weight_home=None,
              act_home=None, out_home=None, out_bits=None,
              fused_dequant: bool = True, stream_scale=1.0) -> KernelCost:
    """C[m,n] = A[m,k] @ W[k,n]: GEMM (prefill) or GEMV-like (decode, small m).

    Weight bytes = k*n*effective_weight_bits/8 (+ per-channel scales) when read once;
    activations at the format's effective activation bits; output at `out_bits` (the
    activation stream, 16 bits, by default). `fused_dequant=False` models engines that
    dequantise weights to the execution type in a separate kernel first. Priced for
    every execution option of the pair; the fastest is taken element-wise.
    `stream_scale` scales the streaming share (an engine's slower kernel, e.g. the
    profile's `overheads.expert_stream` for grouped expert GEMMs).
    """
    hw = as_hardware(profile)
    terms = _group_terms(hw, quant, group)
    fmt, s_w, s_a = terms.fmt, terms.s_w, terms.s_a
    s_o = terms.s_stream if out_bits is None else \
        out_bits / (EIGHT if type(out_bits) is np.ndarray else 8.0)
    cb = terms.channel_bits  # None below: no per-channel scales (their bytes, 0, not added)
    channel = None if type(cb) in (int, float) and cb == 0 else n * cb / 8.0
    w_home = hw.main if weight_home is None else weight_home
    kn, mk, mn = k * n, m * k, m * n
    # numbers against arrays as 0-d operands (`as_operand`: the same doubles and types)
    s_w_0d, s_a_0d = terms.operands
    a_bytes, out_bytes = mk * (s_a_0d if type(mk) is np.ndarray else s_a), mn * s_o
    a_home = home_level(hw, a_bytes, True) if act_home is None else act_home
    o_home = home_level(hw, out_bytes, True) if out_home is None else out_home

    def traffic(s_w, channel):
        # re-reads per staging level (0 and 1 share 0's); each level's bytes (homed beyond)
        # and the weight bytes read once
        w_bytes = kn * (s_w_0d if s_w is terms.s_w and type(kn) is np.ndarray else s_w)
        w_bytes = w_bytes if channel is None else w_bytes + channel
        tm, tn = staged_tiles(hw, m, n, s_a, s_w,
                              max(np.ndim(w_bytes), np.ndim(a_bytes), hw.profiles.ndim))
        # max(1, m / tm), max(1, n / tn): the tiles are clipped to the problem (tm <= m,
        # tn <= n), so that the quotients are at least 1 (or NaN) as they are
        w_reads, a_reads = m / tm, n / tn
        w_moved, a_moved = w_bytes * w_reads, a_bytes * a_reads
        last = hw.n_levels - 1  # the staging entry of each level: j - 1, 0 for 0
        w_moved, a_moved = list(w_moved), list(a_moved)
        levels = level_bytes(hw, ((w_home, (w_moved[0], *w_moved[:last])),
                                  (a_home, (a_moved[0], *a_moved[:last])),
                                  (o_home, out_bytes)))
        return levels, w_reads[0], a_reads[0], w_bytes

    zero, flops = (ZERO * mn, TWO * mn * k) if type(mn) is np.ndarray else \
        (0.0 * mn, 2.0 * mn * k)
    unscaled = type(stream_scale) is float and stream_scale == 1.0

    def priced(plan, levels, w_reads, a_reads, stream=None, s_weight=s_w, plain=False):
        # more than one activation row: the library's GEMM path streams at its own share
        share, one = gemm_stream_share(plan, m), plan["stream_fraction"]
        if not (type(share) is float and type(one) is float and share == one):
            share = np.where(np.asarray(m) > ONE, share, one)  # (else all m stream alike)
        share = share if unscaled else stream_scale * share
        rate, levels = shaped_gemm(hw, plan["ops_per_s"], share, levels, m, n, k, s_a,
                                   s_weight, flops)
        plan = dict(plan, stream_fraction=share, ops_per_s=rate)
        if plain and type(zero) is not float \
                and np.shape(zero) == np.shape(w_reads) == np.shape(k):
            conv_ops = conv_s = conv_j = zero  # no conversion: its products (all 0, shaped)
        else:
            parts = ((kn * w_reads, "w"), (mk * a_reads, "a"))  # elements converted
            conv_ops, conv_s, conv_j = (_conversion(plan, *parts, field=f)
                                        for f in ("ops", "s", "j"))
        row_s = plan["row_s"]  # a GEMV's per-row time (none: zeros, as n x 0)
        fixed = zero if type(row_s) is float and row_s == 0.0 else \
            np.where(np.asarray(m) > ONE, 0.0, n * row_s)
        if stream is None:  # (else `traffic`'s weight bytes: the same products)
            stream = kn * s_weight if channel is None else kn * s_weight + channel
        return roofline_cost(hw, plan, flops, zero, conv_s, conv_j, conv_ops, levels,
                             1.0, fixed_s=fixed, stream_bytes=stream)

    options = terms.options
    if fused_dequant:
        fused = traffic(s_w, channel)
        return cheapest([priced(plan, *fused, plain=plain)
                         for plan, plain in zip(options, terms.plain)])
    costs = []
    for plan in options:
        needs = np.asarray(plan["w_convert_ops"]) > 0
        pre = _dequant(hw, kn, fmt, plan, weight_home).scaled(needs)
        plan = dict(plan, w_convert_ops=np.where(needs, 0.0, plan["w_convert_ops"]),
                    w_convert_s=np.where(needs, 0.0, plan["w_convert_s"]),
                    w_convert_j=np.where(needs, 0.0, plan["w_convert_j"]))
        s_exec = np.where(needs, dtype_bits(plan["exec_dtype"]) / 8.0, s_w)
        split = traffic(s_exec, None if channel is None else np.where(needs, 0.0, channel))
        costs.append(pre + priced(plan, *split[:3], s_weight=s_exec))
    return cheapest(costs)


def matrix_rate(profile, quant="W16A16", *, group: str = "mlp"):
    """Achievable matrix ops/s of the group's fastest execution option (the plan's rate
    before any shape efficiency)."""
    options = _group_terms(as_hardware(profile), quant, group).options
    return np.maximum.reduce([np.asarray(p["ops_per_s"], dtype=float) for p in options])


def dequant_cost(profile, n_elements, quant, *, group: str = "mlp", home=None) -> KernelCost:
    """A stand-alone dequantisation kernel: read packed weights (+ scales), write them in
    the execution type, at the profile's conversion cost per element (the fastest
    execution option)."""
    check_positive(n_elements=n_elements)
    hw = as_hardware(profile)
    terms = _group_terms(hw, quant, group)
    return cheapest([_dequant(hw, n_elements, terms.fmt, plan, home) for plan in terms.options])


def _dequant(hw: Hardware, n_elements, fmt, plan: dict, home) -> KernelCost:
    """`dequant_cost` in one execution plan."""
    exec_bits = dtype_bits(plan["exec_dtype"])
    read = n_elements * quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    write = n_elements * exec_bits / 8.0
    r_home = hw.main if home is None else home
    w_home = home_level(hw, write, True)
    levels = [bytes_through(hw, r_home, j, read) + bytes_through(hw, w_home, j, write)
              for j in range(hw.n_levels)]
    ops = n_elements * plan["w_convert_ops"]
    return roofline_cost(hw, dict(plan, ops_per_s=1.0, energy_per_op_j=0.0, stream_fraction=1.0,
                            launch_s=hw.launch_s),
                   0.0 * read, 0.0 * read,
                   n_elements * plan["w_convert_s"], n_elements * plan["w_convert_j"], ops,
                   levels, 1.0)


def elementwise_cost(profile, read_bytes, write_bytes, vector_ops, *, read_home=None,
                     write_home=None, n_kernels: float = 1.0, exec_dtype: str = "vector",
                     half_elements=0.0, kernel: str | None = None,
                     kernel_rows=None) -> KernelCost:
    """A streaming kernel (norm, activation, residual add, RoPE, softmax, sampling):
    no re-use, every byte crosses each level between its home and the engine.
    `half_elements`: elements read or written in a 16-bit float type; a vector unit
    computing in a wider type widens / narrows each at DEFAULT_HALF_OPS vector ops
    (`widen_ops`), as PyTorch's CPU kernels compute bf16 in fp32. A `kernel` the
    profile's `vector` block names runs its ops at its own rate and widens at its own
    cost (`hardware.kernel_vector_terms`); `kernel_rows` (1.0 / 0.0 along the leading
    axis, rows of other kernels: no 16-bit elements) where only those rows run it (the
    others x 1.0: exact)."""
    hw = as_hardware(profile)
    terms = kernel_vector_terms(hw, kernel) if kernel else None
    if not (type(half_elements) in (int, float) and half_elements == 0
            and _float_values(vector_ops)):  # else + 0 widening ops: the same values
        factor = _widen_factor(hw, kernel, terms)
        vector_ops = vector_ops + (half_elements if factor is ONE and on_floats(half_elements)
                                   else factor * np.asarray(half_elements, dtype=float))
    if terms:  # a profile names the kernel (its scale as an operand against arrays)
        vector_ops = vector_ops * (terms[0] if kernel_rows is None else np.where(
            kernel_rows != ZERO, _kernel_scale(hw, kernel, terms), ONE))
    r_home = home_level(hw, read_bytes, True) if read_home is None else read_home
    w_home = home_level(hw, write_bytes, True) if write_home is None else write_home
    levels = level_bytes(hw, ((r_home, read_bytes), (w_home, write_bytes)))
    plan = _VECTOR_PLAN if exec_dtype == "vector" else \
        {"ops_per_s": 1.0, "energy_per_op_j": 0.0, "exec_dtype": exec_dtype}
    return roofline_cost(hw, plan, None, vector_ops, None, None, None, levels, n_kernels)


def _kernel_scale(hw: Hardware, kernel: str, terms: tuple):
    """`kernel`'s vector-op scale (`terms[0]`, `kernel_vector_terms`) as an operand,
    kept per profile."""
    key = ("kernel_scale", kernel)
    scale = hw.exec_cache.get(key)
    if scale is None:
        scale = hw.exec_cache[key] = as_operand(terms[0])
    return scale


def _float_values(x) -> bool:
    """Whether `x` is a float64 numpy scalar or array with axes (x + a numpy 0.0 keeps
    its type)."""
    return type(x) is np.float64 or (type(x) is np.ndarray and x.ndim > 0
                                     and x.dtype == np.float64)


def widen_ops(profile, half_elements, kernel: str | None = None):
    """Vector ops to move `half_elements` 16-bit float elements into or out of the vector
    unit's type: the profile's `vector.widen_ops_per_element` (default DEFAULT_HALF_OPS;
    `vector.widen_by_kernel` of `kernel` where given) each where that type is wider than
    16 bits, else 0."""
    hw = as_hardware(profile)
    terms = kernel_vector_terms(hw, kernel) if kernel else None
    return _widen_factor(hw, kernel, terms) * np.asarray(half_elements, dtype=float)


def _widen_factor(hw: Hardware, kernel, terms):
    """`widen_ops`' ops per element, kept per profile (and kernel named by a profile:
    its `terms`, `kernel_vector_terms`): no shape enters it. A single 1.0 is `ONE`
    (x 1.0 is exact: `elementwise_cost` adds the elements themselves)."""
    key = "widen_factor" if not terms else ("widen_factor", kernel)
    factor = hw.exec_cache.get(key)
    if factor is None:
        factor = np.where(np.asarray(hw.vector_bits) > 16, hw.widen_ops, 0.0)
        if terms:  # its own (> 0 if widening)
            factor = np.where(factor > 0, terms[1], 0.0)
        hw.exec_cache[key] = factor = ONE if factor.ndim == 0 and factor == 1.0 else factor
    return factor


@checked(check_positive, "rows", "width")
def norm_cost(profile, rows, width, *, in_bits=16.0, out_bits=16.0, kind: str = "rmsnorm",
              fused_residual: bool = True, quantize_out: bool = False, **homes) -> KernelCost:
    """RMSNorm / LayerNorm over `rows` x `width`, optionally fused with the residual add:
    an element-wise kernel of `norm_terms`' bytes, ops and 16-bit elements, widened on a
    wider vector unit (`widen_ops`) at the norm kind's own rate where a profile names
    it."""
    reads, writes, ops, half = norm_terms(rows, width, in_bits, out_bits, kind,
                                          fused_residual, quantize_out)
    return elementwise_cost(profile, reads, writes, ops, half_elements=half, kernel=kind,
                            **homes)


def norm_terms(rows, width, in_bits, out_bits, kind: str, fused_residual: bool,
               quantize_out) -> tuple:
    """A norm's (bytes read, bytes written, vector ops, 16-bit elements): fused with the
    residual add it reads residual + update and writes the new residual and the
    normalised output. Vector ops per element: rmsnorm 4 (square, accumulate, scale,
    weight), layernorm 5 (sum and sum of squares in one pass, then subtract, scale,
    affine), +1 for the residual add, +QUANTIZE_OPS when the output is quantised; the
    16-bit elements: the inputs and the new residual if 16-bit, the output if 16-bit.
    Only + - * / on `rows` and `width` (request placeholders pass: simulator.op_template)."""
    elems = rows * width
    base = (4.0 if kind == "rmsnorm" else 5.0) + (1.0 if fused_residual else 0.0)
    ops = np.where(quantize_out, base + QUANTIZE_OPS, base)  # small integers: exact
    n_in = 2 if fused_residual else 1
    in_bytes = elems * in_bits / 8.0  # one input (the residual)
    reads = in_bytes * n_in
    writes = _plus(elems * out_bits / 8.0, in_bytes if fused_residual else 0.0)
    half = elems * (np.where(np.asarray(in_bits) <= 16, n_in + (1 if fused_residual else 0),
                             0) + (np.asarray(out_bits) == 16))
    return reads, writes, elems * ops, half


@checked(check_positive, "tokens", "d_model")
def embedding_cost(profile, tokens, d_model, quant="W16A16", *, group: str = "embedding",
                   weight_home=None, out_bits=None) -> KernelCost:
    """Gather `tokens` rows of d_model from the (possibly quantised) table and write them
    to the activation stream; quantised rows are converted on the way."""
    hw = as_hardware(profile)

    def build():  # bytes per table and stream element (also as operands), the plans
        fmt = group_format(quant, group)
        # bytes per element: bits / 8 (x bits / 8 is x (bits / 8): a power of 2 scales)
        sizes = (quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0,
                 stream_bits(fmt) / 8.0)
        plans = tuple(MappingProxyType(dict(plan, exec_dtype="gather", stream_fraction=1.0,
                                            launch_s=hw.launch_s))
                      for plan in plan_options(hw, quant_attr(fmt, lambda q: q.weight_dtype),
                                               stream_dtype(fmt)))
        return sizes, (*map(as_operand, sizes), ZERO), plans, tuple(map(_gathers, plans))
    numbers, operands, plans, gathers = _memo(hw, "embedding_terms", quant, (group,), build)
    elems = tokens * d_model
    # against an array the numbers as 0-d operands (the same doubles, no temporary)
    w_bytes, s_bytes, zero = operands if type(elems) is np.ndarray else (*numbers, 0.0)
    read = elems * w_bytes
    write = elems * (s_bytes if out_bits is None else out_bits / 8.0)
    r_home = hw.main if weight_home is None else weight_home
    w_home = home_level(hw, write, True)
    levels = level_bytes(hw, ((r_home, read), (w_home, write)))
    zero = zero * elems

    def converted(rate):  # elements x rate (0 x elements: the zeros already made)
        return zero if type(rate) is float and rate == 0.0 else elems * rate
    arrays = type(elems) is np.ndarray  # a plain gather of arrays: a streaming kernel
    return cheapest([roofline_cost(hw, plan, None, zero, None, None, None, levels, 1.0)
                     if gather and arrays else
                     roofline_cost(hw, plan, zero, zero, converted(plan["w_convert_s"]),
                                   converted(plan["w_convert_j"]),
                                   converted(plan["w_convert_ops"]), levels, 1.0)
                     for plan, gather in zip(plans, gathers)])


def _gathers(plan) -> bool:
    """Whether an embedding `plan` converts nothing (every weight conversion rate the
    number 0) at a positive finite rate and finite energy per op: its no matrix ops and
    no conversion then add exact zeros (0 / rate, 0 x energy, the overlap of no matrix
    ops), so `roofline_cost` prices it as a streaming kernel (flops=None) with the same
    doubles and fewer operations (its zero fields new zeros of the elements' shape)."""
    rate, energy = plan["ops_per_s"], plan["energy_per_op_j"]
    return all(type(plan[f]) is float and plan[f] == 0.0 for f in _CONVERSIONS[:3]) \
        and type(rate) in (float, np.float64) and 0.0 < rate < np.inf \
        and type(energy) in (float, np.float64) and abs(energy) < np.inf


@dataclass(frozen=True, eq=False)
class _AttentionTerms:
    """What no shape enters of attention in a format on a profile: its stream and KV
    types, stream bits, bytes per Q and per cached K/V element (and the latter as a 0-d
    operand, `hardware.on_floats`), and the plans of a kernel reading the cache
    everywhere (True) or nowhere (False), filled on first use
    (`attention.attention_plans`)."""

    sdt: object
    kv_dtype: object
    sb: object
    s_q: object
    s_c: object
    s_c_operand: object
    plans: dict


def _attention_terms(hw: Hardware, quant) -> _AttentionTerms:
    """`_AttentionTerms` of `quant` on `hw` (memoised per format object: `_memo`)."""
    def build():
        fmt = as_quant(quant)
        sb = stream_bits(fmt)
        s_c = quant_attr(fmt, lambda q: q.effective_kv_bits) / 8.0
        return _AttentionTerms(sdt=stream_dtype(fmt),
                               kv_dtype=quant_attr(fmt, lambda q: q.kv_dtype), sb=sb,
                               s_q=sb / 8.0, s_c=s_c, s_c_operand=as_operand(s_c),
                               plans={})
    return _memo(hw, "attention_terms", quant, (), build)


def _conversion(plan, *parts, field: str):
    """Conversion `field` (ops, s or j) of each (elements, operand) part at its operand's
    rate in `plan` ("w" weights / the KV cache, "a" activations / fresh K/V), summed in
    order."""
    return _add_up([n * plan[f"{operand}_convert_{field}"] for n, operand in parts])


def _add_up(values: Sequence):
    """values[0] + values[1] + ... in order (sum() without its leading 0 + values[0]:
    the same value, one operation fewer on arrays); 0 for none."""
    if not values:
        return 0
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


@checked(check_attention, "batch", "q_len", "kv_len", "n_heads", "n_kv_heads",
         "head_dim", "cache_len")
def attention_cost(profile, batch, q_len, kv_len, n_heads, n_kv_heads, head_dim,
                   quant="W16A16", *, kv_from_cache: bool | None = None, flash: bool = True,
                   causal: bool = True, window=None, kv_home=None, q_home=None,
                   out_bits=None, epilogue_ops=0.0, cache_len=None, fresh_kv_home=None,
                   out_home=None, n_kernels=None) -> KernelCost:
    """Scaled dot-product attention for `batch` sequences, q_len queries over kv_len keys
    (the q_len new positions are the last of the kv_len).

    Of the kv_len keys, `cache_len` are read from the KV cache at the format's effective
    KV bits (converted when the KV type is not native; home `kv_home`, default main
    memory) and the other kv_len - cache_len are fresh in the activation stream (home
    `fresh_kv_home`, default the nearest persistent level holding them). Default
    `cache_len`: kv_len with `kv_from_cache` (decode: q_len = 1, the new token's K/V
    already appended), else 0 (prefill: q_len = kv_len). A prefill chunk of q new tokens
    after p cached ones is q_len = q, kv_len = p + q, cache_len = p (the p cached keys
    at KV bits, the q fresh ones at stream bits, as SGLang's extend attention reads
    them). The kernel runs in the KV cache's execution plan when it reads the cache.
    flash=True: one tiled kernel; scores never leave the chip; masked blocks skipped;
    K/V re-read once per query tile that does not fit the staging level (grouped-query
    heads share one K/V read). flash=False: QK^T, softmax and PV as three kernels with
    the full q_len x kv_len score matrix written and read twice. `epilogue_ops` are
    extra vector ops on the output (e.g. quantising it for the next GEMM). A sliding
    `window` limits each query to the last `window` keys and the cache read to them.
    `n_kernels` overrides the launches (1 flash, 3 unfused), e.g. 0 for a part of a
    kernel that is launched with another; `q_home` / `out_home` place Q and the output.
    """
    cache_len, fresh_kv_home = cache_split(q_len, kv_len, cache_len, kv_from_cache,
                                           kv_home, fresh_kv_home)
    hw = as_hardware(profile)
    terms = _attention_terms(hw, quant)
    sb, s_q, s_c = terms.sb, terms.s_q, terms.s_c
    s_o = (sb if out_bits is None else out_bits) / 8.0
    every_cached = cache_len is kv_len  # (kv_len > 0)
    (options, skips, shares, out_ops, plain), cached = attention_plans(
        hw, terms, cache_len, q_len, every_cached)
    if shares is not None:
        n_kv_heads = np.where(shares, n_kv_heads, n_heads)  # each head reads its own
    pairs = scored_pairs(q_len, kv_len, window, causal, flash, skips)
    # fresh keys: none where every key is cached (kv - kv: 0, NaN for NaN: not > 0)
    fresh_len = 0.0 if every_cached else kv_len - cache_len
    if window is not None:
        cache_len = np.minimum(cache_len, window)  # the rolling cache holds `window` positions
        cached = any_of(cache_len, 0.0, operator.gt)
    computed, rate = flash_tiling(hw, q_len, kv_len, n_heads, pairs,
                                  flash and window is None and shares is None, causal)
    flops = 4.0 * batch * n_heads * head_dim * computed
    q_elems = batch * q_len * n_heads * head_dim
    vec = _plus(_plus(SOFTMAX_OPS * batch * n_heads * computed, epilogue_ops),
                out_ops * q_elems)
    q_bytes, o_bytes = q_elems * s_q, q_elems * s_o
    kv = []  # (home, bytes, bytes per element, operand) of the cached and fresh K/V read
    if cached:
        c_bytes = 2.0 * batch * n_kv_heads * cache_len * head_dim
        kv.append((hw.main if kv_home is None else kv_home,
                   c_bytes * (terms.s_c_operand if on_floats(c_bytes) else s_c), s_c, "w"))
    if not every_cached and any_of(fresh_len, 0.0, operator.gt):
        f_bytes = 2.0 * batch * n_kv_heads * fresh_len * head_dim * s_q
        kv.append((home_level(hw, f_bytes, True) if fresh_kv_home is None
                   else fresh_kv_home, f_bytes, s_q, "a"))
    q_placed = q_home is None
    if q_placed:
        q_home = home_level(hw, q_bytes, True)
    if out_home is not None:
        o_home = out_home
    else:  # the output's bytes: Q's where the stream and output bits agree (numbers)
        o_home = q_home if type(o_bytes) is float and o_bytes == q_bytes and q_placed \
            else home_level(hw, o_bytes, True)
    tensors = [(q_home, q_bytes), (o_home, o_bytes)]
    if flash:
        rows = q_len * (n_heads / n_kv_heads)  # query rows sharing one K/V head
        # 1 x kv_len is kv_len: one product fewer for a decode step
        reads = kv_reads(hw, head_dim, s_q, rows, pairs,
                         kv_len if type(q_len) in (int, float) and q_len == 1
                         else q_len * kv_len,
                         getattr(kv[0][1], "shape", ()) if len(kv) == 1 else None)
    else:
        reads = [1.0] * hw.n_levels
    # each K/V part: its bytes moved per level, and its elements read into the engine,
    # converted as its operand (loops: no comprehension frame per call)
    parts = []
    for home, nbytes, elem_bytes, operand in kv:
        part = reread(nbytes, reads)
        tensors.append((home, part))
        parts.append((nbytes, elem_bytes, operand, part[0] if type(part) is tuple else part))
    if not flash:  # the score matrix, written and read twice
        score = batch * n_heads * q_len * (cache_len + fresh_len) * sb / 8.0
        tensors.append((home_level(hw, score, True), 4.0 * score))
    levels = level_bytes(hw, tensors)
    if n_kernels is None:
        n_kernels = 1.0 if flash else 3.0
    unscaled = type(rate) is float and rate == 1.0  # the plans' own rates
    if unscaled and on_floats(flops):
        options = operand_plans(terms, options)
    costs = []
    for plan, is_plain in zip(options, plain):
        costs.append(roofline_cost(hw, plan if unscaled
                                   else dict(plan, ops_per_s=plan["ops_per_s"] * rate),
                                   flops, vec, *conversions(plan, parts, reads[0], is_plain),
                                   levels, n_kernels))
    return cheapest(costs)


def _plus(total, term):
    """total + term for a float `total`, a zero term left out where the sum would keep
    total's type (x + 0 is x for the non-negative totals here)."""
    if type(term) in (int, float, np.float64) and term == 0 and (
            type(term) is int or type(total) not in (int, float)
            or type(term) is float and type(total) is float):
        return total
    return total + term
