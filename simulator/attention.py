"""Attention's terms for `simulator.kernels.attention_cost`: the input checks and cache
split, the execution plans, the (query, key) pairs computed, the flash tiling, the K/V
re-reads and the conversions of the K/V read."""
from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import numpy as np

from precsim.simulator.checks import check_positive
from precsim.simulator.errors import InputError
from precsim.simulator.gemm_shape import (ceil, closed_tile, flash_blocks, flash_waves,
                                          structure)
from precsim.simulator.hardware import (NUMBER_TYPES, ONE, TWO, ZERO, Hardware, as_operand,
                                        on_floats)
from precsim.simulator.mapping import attention_rule, pick_plan, plan_options
from precsim.simulator.roofline import ACC_BYTES, staging_bytes

#: max(1, ...) of a number share that is 1 (`kv_reads`).
_NUMPY_ONE = np.float64(1.0)


def causal_pairs(q_len, kv_len, window=None):
    """(query, key) pairs a causal mask keeps when q_len new tokens follow kv_len - q_len
    cached ones: S(kv) - S(kv - q) with S(n) = sum_{p<n} min(p + 1, window), i.e.
    n(n+1)/2 without a window (or n <= window), else w(w+1)/2 + (n - w) w. Without a
    window (kv (kv + 1) - b (b + 1)) / 2, b = kv - q: the same double (halving is exact;
    1 and 2 as 0-d operands against float64 arrays, `on_floats`)."""
    if window is None:
        b = kv_len - q_len
        one, two = (ONE, TWO) if on_floats(kv_len) and on_floats(b) else (1, 2.0)
        return (kv_len * (kv_len + one) - b * (b + one)) / two

    def prefix(n):
        w = window
        return np.where(n <= w, n * (n + 1) / 2.0, w * (w + 1) / 2.0 + (n - w) * w)
    return prefix(kv_len) - prefix(kv_len - q_len)


def check_attention(batch, q_len, kv_len, n_heads, n_kv_heads, head_dim, cache_len=None):
    """`attention_cost`'s input checks: sizes positive and finite, kv_len >= q_len,
    0 <= cache_len <= kv_len."""
    check_positive(batch=batch, q_len=q_len, kv_len=kv_len, n_heads=n_heads,
                   n_kv_heads=n_kv_heads, head_dim=head_dim)
    if any_of(kv_len, q_len, lambda kv, q: kv < q):
        raise InputError("attention: kv_len must be at least q_len")
    if cache_len is not None and any_of(cache_len, kv_len, lambda c, kv: (c < 0) | (c > kv)):
        raise InputError("attention: cache_len must be between 0 and kv_len")


def cache_split(q_len, kv_len, cache_len, kv_from_cache, kv_home, fresh_kv_home):
    """(cache_len, fresh_kv_home) with `attention_cost`'s defaults: without `cache_len`,
    every key is cached when `kv_from_cache` (default: q_len == 1) and none otherwise,
    the fresh K/V then placed by `kv_home`."""
    if cache_len is None:
        if kv_from_cache is None:
            kv_from_cache = bool(np.all(np.asarray(q_len) == 1))
        cache_len = kv_len if kv_from_cache else 0.0
        if not kv_from_cache and fresh_kv_home is None:
            fresh_kv_home = kv_home  # kv_home placed the (fresh) K/V before cache_len
    return cache_len, fresh_kv_home


def any_of(a, b, test) -> bool:
    """Whether `test(a, b)` holds anywhere: Python numbers compared directly, anything
    else as arrays."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(test(a, b))
    if isinstance(b, (int, float)):  # an array against a number
        return bool(test(np.asarray(a), b).any())
    return bool(test(np.asarray(a), np.asarray(b)).any())


def attention_plans(hw: Hardware, terms, cache_len, q_len=1.0, every_cached=False):
    """((options, skips masked, shares K/V or None without a rule, output ops, whether
    each option converts nothing: `plain`), whether the kernel reads the cache anywhere
    (everywhere if `every_cached`, else where cache_len > 0): the KV cache's execution
    options where the
    kernel reads the cache, the stream type's elsewhere, replaced by the profiles'
    `attention` rule (`attention_rule`: tiles by q_len). Kept in `terms.plans` (a
    kernels._AttentionTerms) where the kernel reads the cache everywhere or nowhere and
    no profile has a rule (the plans then depend on nothing else; a rule's may depend
    on shapes)."""
    if every_cached or isinstance(cache_len, (int, float)):
        cached = some = every = every_cached or cache_len > 0
    else:
        cached = np.asarray(cache_len) > 0
        some, every = bool(cached.any()), bool(cached.all())
    if some == every and some in terms.plans:
        return terms.plans[some], some
    sdt, kv_dtype = terms.sdt, terms.kv_dtype
    options_c = plan_options(hw, kv_dtype, sdt) if some else None
    options_f = plan_options(hw, sdt, sdt) if not every else None
    if options_c is None or options_f is None:
        options = options_c or options_f
    else:
        options = [pick_plan(cached, options_c[min(i, len(options_c) - 1)],
                              options_f[min(i, len(options_f) - 1)])
                   for i in range(max(len(options_c), len(options_f)))]
    rule = attention_rule(hw, kv_dtype, sdt, q_len)
    if rule is not None:
        has_rule, skips, shares, rule_plan = rule
        rule_plan = dict(rule_plan)
        out_ops = rule_plan.pop("output_ops")
        if not isinstance(has_rule, bool):
            out_ops = np.where(has_rule, out_ops, 0.0)
        options = [pick_plan(has_rule, rule_plan, o) for o in options]
        return (options, skips, shares, out_ops, [plain(o) for o in options]), some
    out = options, True, None, 0.0, [plain(o) for o in options]
    if some == every:
        out = (tuple(MappingProxyType(p) for p in options), True, None, 0.0,
               tuple(out[4]))
        terms.plans[some] = out
    return out, some


def operand_plans(terms, options):
    """`options` kept in `terms.plans` (a tuple) with the numbers the roofline applies to
    a float64 array of flops (ops_per_s, energy_per_op_j) as 0-d operands (`on_floats`),
    kept with them; other options as they are."""
    if type(options) is not tuple:
        return options
    key = ("operands", id(options))
    kept = terms.plans.get(key)
    if kept is None or kept[0] is not options:
        kept = terms.plans[key] = (options, tuple(
            MappingProxyType(dict(p, ops_per_s=as_operand(p["ops_per_s"]),
                                  energy_per_op_j=as_operand(p["energy_per_op_j"])))
            for p in options))
    return kept[1]


def plain(plan) -> bool:
    """Whether `plan` converts neither operand (every conversion rate a number 0)."""
    return all(type(plan[o + f]) is float and plan[o + f] == 0.0
               for o in ("w", "a") for f in _CONVERT)


def scored_pairs(q_len, kv_len, window, causal: bool, flash: bool, skips):
    """(query, key) pairs computed: the causal (windowed) ones (`causal_pairs`) in a
    flash kernel that skips masked blocks, else all q_len x kv_len (numpy numbers)."""
    pairs = causal_pairs(q_len, kv_len, window) if (causal and flash) else q_len * kv_len
    if skips is True:  # np.where(True, pairs, q_len x kv_len) of pairs' shape
        return pairs if isinstance(pairs, np.ndarray) else np.float64(pairs)
    return np.where(skips, pairs, q_len * kv_len)


def flash_tiling(hw: Hardware, q_len, kv_len, n_heads, pairs, tiled: bool, causal: bool):
    """(pairs computed, rate factor) of a flash kernel on profiles with a
    `gemm.flash_tile` Br x Bc, for prompt queries (q_len > 1): the blocks it visits
    (`gemm_shape.flash_blocks`: causal blocks above the diagonal skipped, the diagonal
    ones computed in full) x Br x Bc, at `gemm.flash_efficiency` x the wave efficiency
    of one sequence's heads x ceil(q_len / Br) thread blocks on `gemm.units`
    (FlashAttention-2 parallelises over batch, heads and query blocks, [fa2] Sec. 3.2;
    sequences are priced as if each filled its own waves, so that a batch costs the sum
    of its sequences, as the serving tables add them: conservative for batches of short
    prompts). Elsewhere (no tile, decode, sliding window, an `attention` rule):
    (`pairs`, 1)."""
    if not tiled or hw.is_single and type(q_len) in NUMBER_TYPES and not q_len > 1:
        return pairs, 1.0  # (one profile's) decode
    tiles = hw.exec_cache.get("flash_tiles")
    if tiles is None:  # (profiles with a tile, units or 1, any tile, one profile's numbers:
        # Br, Bc and units as Python floats (`ceil`), the efficiency as numpy's, and
        # whether its tile counts in closed form; no tile without a gemm block)
        st = structure(hw)
        if st is None:
            hw.exec_cache["flash_tiles"] = (None, None, False, None)
            return pairs, 1.0
        has_tile = ~np.isnan(st.br)
        units = np.where(np.isnan(st.units), 1.0, st.units)
        one = None
        if hw.is_single:
            br, bc = float(st.br), float(st.bc)
            one = (br, bc, np.float64(st.flash_eff), float(units), closed_tile(br, bc))
        tiles = hw.exec_cache["flash_tiles"] = (has_tile, units, bool(has_tile.any()), one)
    if not tiles[2]:
        return pairs, 1.0
    if hw.is_single and not (isinstance(q_len, np.ndarray) and q_len.ndim):
        # one profile (with a tile), one query length
        if not q_len > 1:  # decode
            return pairs, 1.0
        br, bc, eff, units, closed = tiles[3]
        visited = flash_blocks(q_len, kv_len, br, bc, causal, closed) * br * bc
        return visited, eff * flash_waves(n_heads * ceil(q_len / br), units)
    st = structure(hw)
    has = tiles[0] & (np.asarray(q_len) > 1)
    if hw.is_single and not has.any():  # decode: `pairs` spans every shape used below
        return pairs, 1.0
    br, bc = np.where(has, st.br, 1.0), np.where(has, st.bc, 1.0)
    q, kv = np.where(has, q_len, 1.0), np.where(has, kv_len, 1.0)
    visited = flash_blocks(q, kv, br, bc, causal) * br * bc
    ctas = n_heads * np.ceil(q_len / br)
    rate = st.flash_eff * flash_waves(ctas, tiles[1])
    return np.where(has, visited, pairs), np.where(has, rate, 1.0)


def kv_reads(hw: Hardware, head_dim, s_q, rows, pairs, all_pairs, shape=None) -> list:
    """Per level, the times a flash kernel reads K/V across the boundary below it: once
    per tile of query rows (sharing one K/V head) whose Q and fp32 accumulators fill the
    staging level (`staging_bytes`: levels 0 and 1 share level 0, and one array), scaled
    by the share of pairs computed (pairs / all_pairs, at most 1; `pairs` has its
    shape); at least once: max(1, rows / tile x share), exactly 1 where rows <= tile / 2
    (then given as 1.0 where `pairs` is an array of the K/V bytes' `shape`: x 1 changes
    neither their values, shape nor type; as a numpy 1 for a number share, as max(1,
    ...) gives; the share is then not needed)."""
    tiles = _query_tiles(hw, head_dim, s_q)
    once = type(rows) in (int, float) and getattr(pairs, "shape", ()) == shape
    one = 1.0 if isinstance(pairs, np.ndarray) and pairs.ndim else _NUMPY_ONE
    if once and tiles[2] is not None and rows <= tiles[2]:  # every tile holds the rows
        return [one] * len(tiles[1])
    staged, frac = [], None
    for tq in tiles[0]:
        if once and type(tq) is float and rows <= tq / 2.0:
            staged.append(one)
            continue
        if frac is None:
            frac = pairs / all_pairs
        staged.append(np.maximum(1.0, rows / tq * frac))
    return [staged[i] for i in tiles[1]]


def _query_tiles(hw: Hardware, head_dim, s_q) -> tuple:
    """(query rows per tile of each staging level, at least 1 (NaN stays); the index of
    each level's staging level in them; half the least tile where every tile is a
    number, else None), kept per profile for number sizes."""
    try:
        key = ("query_tiles", head_dim, s_q)
        tiles = hw.exec_cache.get(key)
    except TypeError:  # array sizes: not kept
        key = tiles = None
    if tiles is None:
        per_row = head_dim * (s_q + ACC_BYTES)
        first: dict = {}  # staging level: the first level it stages
        for j in range(hw.n_levels):
            first.setdefault(max(j - 1, 0), j)
        tq = [staging_bytes(hw, j) / per_row for j in first.values()]
        tq = [max(t, 1.0) if type(t) is float else np.maximum(t, 1.0) for t in tq]
        numbers = all(type(t) is float and t == t for t in tq)  # (NaN != NaN)
        tiles = (tq, [list(first).index(max(j - 1, 0)) for j in range(hw.n_levels)],
                 min(t / 2.0 for t in tq) if numbers else None)
        if key is not None:
            hw.exec_cache[key] = tiles
    return tiles


def reread(nbytes, reads: Sequence):
    """`nbytes` x reads[level] per level (one product per distinct reads value; x 1.0
    left out): a tuple, or the one product alone where one reads value serves every level
    (`level_bytes` adds it at every level it crosses: the same sums)."""
    out, done = [], {}
    for r in reads:
        moved = done.get(id(r))
        if moved is None:
            moved = done[id(r)] = nbytes if type(r) is float and r == 1.0 else nbytes * r
        out.append(moved)
    return moved if len(done) == 1 else tuple(out)


def conversions(plan, parts: Sequence, reads0, is_plain: bool = False) -> list:
    """[time, energy, ops] converting each K/V part (bytes, bytes per element, operand,
    its bytes read into the engine: bytes x reads0) at its operand's rate in `plan`
    ("w" the KV cache, "a" fresh K/V), summed over the parts in order: elements
    (bytes / bytes per element x reads0) x rate; a zero rate's term as the bytes read
    x 0 (the same zeros, NaN where they are); fields with the same rates share a sum
    (all three for a plan converting nothing, `is_plain`)."""
    if is_plain:
        total = 0
        for i, part in enumerate(parts):
            zero = part[3] * (ZERO if on_floats(part[3]) else 0.0)
            total = zero if i == 0 else total + zero
        return [total, total, total]
    out, done, elements = [], {}, {}
    for field in _CONVERT:
        rates, key = [], []  # (loops: no comprehension frame per call)
        for part in parts:
            rates.append(plan[part[2] + field])
            key.append((type(rates[-1]), rates[-1]))
        key = tuple(key)  # equal numbers: equal sums
        try:
            hash(key)
        except TypeError:  # arrays of rates (several profiles): a sum of their own
            key = field
        if key not in done:
            total = 0
            for i, ((nbytes, elem_bytes, _, moved), r) in enumerate(zip(parts, rates)):
                if type(r) is float and r == 0.0:
                    term = moved * (ZERO if on_floats(moved) else 0.0)
                else:
                    if i not in elements:
                        elements[i] = nbytes / elem_bytes * reads0
                    term = elements[i] * r
                total = term if i == 0 else total + term
            done[key] = total
        out.append(done[key])
    return out


_CONVERT = ("_convert_s", "_convert_j", "_convert_ops")
