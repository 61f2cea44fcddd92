"""Shape-dependent efficiency of a matrix engine: tile, wave and K quantisation, split-K,
per-unit operand feed, and the blocks a flash-attention kernel visits.

A GEMM C[m,n] = A[m,k] W[k,n] runs as output tiles tm x tn, one per unit (SM, core) at a
time (NVIDIA, "Matrix Multiplication Background User's Guide", Deep Learning Performance
documentation: tile and wave quantization, with an A100 example). For a candidate tile
and a K split s (split-K: s units share one tile's K range, then their fp32 partial
tiles are reduced):

    T = ceil(m/tm) ceil(n/tn)                  tiles
    W = ceil(T s / U)                          waves on U units
    e_tile = a b / (tm tn), a = m / ceil(m/tm), b = n / ceil(n/tn)   (mean real extent)
    e_wave = T s / (W U)
    e_k = k / (s ceil(k / (s k_step)) k_step)  (each split a whole number of K steps)
    e_feed = min(1, (2 tm tn / r_u) / ((tm s_a + tn s_w) / f_u))

with r_u the achievable rate per unit and f_u the per-unit share of the nearest memory
level's achievable bandwidth (a tile's operands, staged per K step, must arrive as fast
as the engine consumes them: small tiles re-use too little). Per candidate the time is
2 k tm tn W U / (rate s e_k e_feed), non-decreasing in m, n and k, and the candidates
only shrink as the tiles grow, so the chosen time is non-decreasing too. The kernel's rate is the
achievable rate (the large-shape asymptote, `compute.<dtype>.achievable_fraction`)
times e = e_tile e_wave e_k e_feed; split-K adds R = 2 s m n ACC_BYTES bytes (partial
tiles written and read back by the reduction, in the same launch) where they are homed.
Splits are considered only where T < U (split-K raises occupancy), up to the profile's
`gemm.max_split`. Among the profile's
tiles and the SPLITS the choice is the one with the least modelled time max(flops /
(rate e), t_mem), t_mem the unsplit kernel's memory time plus R / bandwidth of R's home
(in series where R spills to main memory, overlapped where a cache holds it), as a
cuBLAS heuristic chooses (approximately; ties go to the fewer reduction bytes, then
the larger tile). The epilogue (writing C) is the output bytes the
GEMM already moves. Profiles without a `gemm` block: e = 1, no split (unchanged).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from precsim.simulator.hardware import NUMBER_TYPES, Hardware, array_operands, as_operand
from precsim.simulator.levels import level_bytes
from precsim.simulator.roofline import ACC_BYTES, home_level

#: K splits considered (where the tiles do not fill the units).
SPLITS = (1, 2, 3, 4, 6, 8, 12, 16)
#: Elements per candidate array in `gemm_efficiency` (candidates x elements of a block).
MAX_CANDIDATE_ELEMENTS = 1 << 18
#: Weight shapes (n, k) of at most this many elements have their terms kept
#: (`_shape_terms`), the SHAPE_MEMO_MAX most recent per profile.
SHAPE_MEMO_ELEMENTS, SHAPE_MEMO_MAX = 256, 64
#: Times within this factor of the least are tied (`_choose`; a 0-d operand).
_TIED = as_operand(1.0 + 1e-9)


@dataclass(frozen=True, eq=False)
class ShapeChoice:
    """The chosen tile and split per element: efficiency multiplying the achievable
    rate, the split-K reduction's bytes and their home level; `candidate()` gives the
    tile and split (tile_m, tile_n, split: formed when read, no price needs them)."""

    efficiency: object
    reduction_bytes: object
    reduction_home: object
    candidate: Callable[[], tuple]

    tile_m = property(lambda self: self.candidate()[0])
    tile_n = property(lambda self: self.candidate()[1])
    split = property(lambda self: self.candidate()[2])


@dataclass(frozen=True)
class _Structure:
    """Per-profile arrays (trailing profile shape): units (NaN: no `gemm` block), largest
    split, tiles (candidate axis first, padded with each profile's last tile), k_step,
    per-unit feed bandwidth, flash tile and efficiency (NaN / 1 where absent)."""

    units: np.ndarray
    max_split: np.ndarray
    tm: np.ndarray
    tn: np.ndarray
    k_step: np.ndarray
    feed: np.ndarray
    br: np.ndarray
    bc: np.ndarray
    flash_eff: np.ndarray


def structure(hw: Hardware) -> _Structure | None:
    """The profiles' `gemm` blocks packed (None when no profile has one); memoised in
    `hw.exec_cache`."""
    key = ("gemm_shape",)
    if key in hw.exec_cache:
        return hw.exec_cache[key]
    flat = list(hw.profiles.reshape(-1)) if hw.profiles.ndim else [hw.profiles[()]]
    specs = [p.gemm for p in flat]
    out = None
    if any(s is not None for s in specs):
        n_tiles = max(len(s.tiles.value) for s in specs if s is not None)

        def arr(values):
            a = np.array(values, dtype=float)
            return a.reshape(a.shape[:-1] + hw.profiles.shape) if hw.profiles.ndim \
                else a.reshape(a.shape[:-1])

        def tiles(s, axis):
            t = [x[axis] for x in s.tiles.value] if s else [1] * n_tiles
            return t + [t[-1]] * (n_tiles - len(t))

        def flash(s, axis):
            return s.flash_tile.value[0][axis] if s and s.flash_tile else np.nan
        nan = np.nan
        out = _Structure(
            units=arr([s.units.value if s else nan for s in specs]),
            max_split=arr([s.max_split.value if s and s.max_split else SPLITS[-1]
                           for s in specs]),
            tm=arr(np.array([tiles(s, 0) for s in specs]).T),
            tn=arr(np.array([tiles(s, 1) for s in specs]).T),
            k_step=arr([s.k_step.value if s else 1.0 for s in specs]),
            feed=arr([p.memory[0].achievable_bandwidth_bytes_per_s
                      / (s.units.value if s else 1.0) for p, s in zip(flat, specs)]),
            br=arr([flash(s, 0) for s in specs]), bc=arr([flash(s, 1) for s in specs]),
            flash_eff=arr([s.flash_efficiency.value if s and s.flash_efficiency else 1.0
                           for s in specs]))
    hw.exec_cache[key] = out
    return out


def _bandwidth_at(hw: Hardware, home):
    """Achievable bandwidth of level `home` (element-wise)."""
    bw = hw.exec_cache.get("bandwidths")
    if bw is None:
        bw = hw.exec_cache["bandwidths"] = (np.array(hw.bandwidth_bytes_per_s, dtype=float)
                                            if hw.is_single else
                                            np.broadcast_arrays(*hw.bandwidth_bytes_per_s))
    if not np.ndim(home):
        return bw[int(home)]
    return bw[home] if hw.is_single else np.choose(np.asarray(home, dtype=int), bw)


def gemm_efficiency(hw: Hardware, m, n, k, rate, s_a, s_w, memory_time,
                    flops=None) -> ShapeChoice | None:
    """The tile and split with the least modelled time (module docstring) for GEMMs
    (m, n, k) at achievable `rate` (ops/s) with operand bytes s_a, s_w and `memory_time`
    (the unsplit kernel's); None where no profile has a `gemm` block. Every candidate
    (tile, split) is priced at once along two leading axes; the choice is the least
    time, candidates within 1e-9 of it tied: the fewest reduction bytes, then the first
    in the profile's tile order and SPLITS. On one profile a large sweep is priced in
    blocks of elements (at most MAX_CANDIDATE_ELEMENTS per array). `flops`: the caller's
    2 m n k, if it has them (else formed here)."""
    st = structure(hw)
    if st is None:
        return None
    n_cands = st.tm.shape[0] * len(SPLITS)
    if type(flops) is np.ndarray and type(memory_time) is np.ndarray and hw.is_single \
            and flops.shape == memory_time.shape and type(rate) is float \
            and type(s_a) is float and type(s_w) is float:
        size, nd = flops.size, flops.ndim  # the elements: 2 m n k's shape (no broadcast)
    else:
        elements = np.broadcast(m, n, k, rate, s_a, s_w, memory_time)
        size, nd = elements.size, max(elements.ndim, np.ndim(st.units))
    step = max(1, MAX_CANDIDATE_ELEMENTS // n_cands)
    if size <= step or not hw.is_single:
        return _choose(hw, st, m, n, k, rate, s_a, s_w, memory_time, nd, flops)
    args = [np.asarray(a, dtype=float) for a in
            np.broadcast_arrays(m, n, k, rate, s_a, s_w, memory_time)]
    shape = args[0].shape
    parts = [_choose(hw, st, *(a.reshape(-1)[i:i + step] for a in args), 1)
             for i in range(0, size, step)]

    def joined(name):
        return np.concatenate([np.broadcast_to(getattr(p, name), np.shape(p.efficiency))
                               for p in parts]).reshape(shape)
    home = joined("reduction_home").astype(int)
    return ShapeChoice(efficiency=joined("efficiency"), reduction_bytes=joined("reduction_bytes"),
                       reduction_home=int(home.flat[0]) if np.all(home == home.flat[0])
                       else home,
                       candidate=lambda: tuple(joined(f) for f in ("tile_m", "tile_n", "split")))


def shaped_gemm(hw: Hardware, rate, fraction, levels: list, m, n, k, s_a, s_w, flops):
    """A GEMM plan's `rate` times the shape efficiency of the chosen tile and split
    (`gemm_efficiency`) and the bytes per level with the split-K reduction bytes added
    where they are homed (`fraction`: the plan's stream fraction, `flops` = 2 m n k); as
    they are where the profile has no `gemm` block."""
    t_mem = None  # the unsplit kernel's memory time: max_j bytes_j / (bw_j fraction)
    whole = type(fraction) is float and fraction == 1.0  # bw x 1.0 is bw: 0-d operands
    for b, bw, bw_0d in zip(levels, hw.bandwidth_bytes_per_s, array_operands(hw)[0]):
        t = b / (bw * fraction) if not whole else b / bw_0d if type(b) is np.ndarray \
            else b / bw
        t_mem = t if t_mem is None else np.maximum(t_mem, t)
    shape = gemm_efficiency(hw, m, n, k, rate, s_a, s_w, t_mem, flops)
    if shape is None:
        return rate, levels
    red, home = shape.reduction_bytes, shape.reduction_home
    if isinstance(home, int):
        return rate * shape.efficiency, _with_reduction(levels, home, red)
    return rate * shape.efficiency, level_bytes(  # the levels' bytes cross every level
        hw, ((hw.main, tuple(levels)), (home, red)))


def _with_reduction(levels: list, home: int, red) -> list:
    """`level_bytes` of the levels' bytes (crossing every level) and the reduction bytes
    `red` homed at level `home` (one for all elements): levels up to `home` plus `red`,
    the rest as they are (a 0-d or int sum alone plus 0.0), a level with the same bytes
    as the one before sharing its sum; the same additions in the same order."""
    out: list = []
    for j, b in enumerate(levels):
        if j and b is levels[j - 1] and j - 1 != home:
            out.append(out[-1])  # the same terms as the level before: its sum
        elif j <= home:
            out.append(b + red)
        else:
            out.append(b + 0.0 if type(b) is int or type(b) is np.ndarray and not b.ndim
                       else b)
    return out


def _candidate_axes(hw: Hardware, st: _Structure, nd: int) -> tuple:
    """The profiles' arrays with the two candidate axes (SPLITS, tiles) in front of `nd`
    element axes: has a gemm block, units, tm, tn, split, k_step, feed, max_split and
    the terms of `_choose` made of them alone (tm tn, the work's room (the tiles' room x
    split), 2 split ACC_BYTES where a split reduces (has a gemm block, split > 1; else 0),
    split k_step), the units as a 0-d array where one profile has them (an operand
    without a broadcast) and whether every profile has a gemm block;
    memoised per `nd` in `hw.exec_cache`."""
    key = ("gemm_candidate_axes", nd)
    if key in hw.exec_cache:
        return hw.exec_cache[key]

    def lead(a, axis):  # a per-profile or per-candidate array with the candidate axes
        a = np.asarray(a, dtype=float)
        pad = (1,) * (nd - a.ndim + (1 if axis is not None else 0))
        return a.reshape(a.shape[:1] + (1,) + pad + a.shape[1:]) if axis == 0 \
            else a.reshape((1,) + a.shape[:1] + pad + a.shape[1:]) if axis == 1 \
            else a.reshape((1, 1) + pad + a.shape)
    has = lead(~np.isnan(st.units), None) > 0
    tm, tn, split, max_split, k_step = (lead(st.tm, 1), lead(st.tn, 1),
                                        lead(np.array(SPLITS, dtype=float), 0),
                                        lead(st.max_split, None), lead(st.k_step, None))
    units = np.where(has, lead(st.units, None), 1.0)
    # a candidate is allowed where its tiles < room: every unsplit one, a split one where
    # the tiles do not fill the units (split <= max_split), no other; compared as tiles x
    # split < room x split (integers: the same test, `_choose`)
    room = np.where(split == 1, np.inf, np.where(split <= max_split, units, -np.inf))
    out = (has, units, tm, tn, split, k_step, lead(st.feed, None), max_split, tm * tn,
           room * split, np.where(has & (split > 1), 2.0 * split * ACC_BYTES, 0.0),
           split * k_step, units.reshape(()) if units.size == 1 else units)
    for a in out:
        a.flags.writeable = False  # shared by every call on this hardware
    out += (bool(has.all()),)
    hw.exec_cache[key] = out
    return out


def _feed_efficiency(hw: Hardware, axes: tuple, nd: int, rate, s_a, s_w):
    """min(1, (2 tm tn / (rate / units)) / ((tm s_a + tn s_w) / feed)) of every candidate
    and `rate` as an operand against the candidates (`as_operand`): no element's shape
    enters them, so they are memoised in `hw.exec_cache` for scalar rate and operand
    bytes."""
    key = None
    if type(rate) is float and type(s_a) is float and type(s_w) is float:
        key = ("gemm_feed", nd, rate, s_a, s_w)  # the common case, without conversions
    elif np.ndim(rate) == 0 and np.ndim(s_a) == 0 and np.ndim(s_w) == 0:
        key = ("gemm_feed", nd, float(rate), float(s_a), float(s_w))
    if key is not None:
        if not (key[2] == key[2] and key[3] == key[3] and key[4] == key[4]):
            key = None  # NaN: not a usable key
        else:
            hit = hw.exec_cache.get(key)
            if hit is not None:
                return hit
    _, units, tm, tn, _, _, feed = axes[:7]
    out = np.minimum(1.0, (2.0 * tm * tn / (rate / units)) / ((tm * s_a + tn * s_w) / feed))
    if key is not None:
        out.flags.writeable = False
        out = hw.exec_cache[key] = (out, as_operand(key[2]))  # (the number, not an array)
        return out
    return out, rate


def _shape_terms(hw: Hardware, axes: tuple, nd: int, n, k) -> tuple:
    """The candidate terms of `_choose` made of the weight shape (n, k) alone: cols =
    ceil(n / tn), n / cols, cols split (= the tiles x split of a row of tiles, exact in
    floating point: integers), e_k, tm tn and the work's room; memoised per (n, k) in
    `hw.exec_cache` for small arrays (weight shapes, fixed by the model: no request value
    enters them), there with every term shaped as the candidates x the shape's elements
    (the same values: an operation between arrays of one shape skips a broadcast)."""
    memo = key = None
    if n.size <= SHAPE_MEMO_ELEMENTS and k.size <= SHAPE_MEMO_ELEMENTS:
        memo = hw.exec_cache.setdefault(("gemm_nk", nd), {})
        key = (n.shape, n.tobytes(), k.shape, k.tobytes())
        hit = memo.get(key)
        if hit is not None:
            return hit
    tn, split, k_step, tile_area, room, split_step = (axes[3], axes[4], axes[5], axes[8],
                                                      axes[9], axes[11])
    cols = np.ceil(n / tn)
    out = (cols, n / cols, cols * split, k / (split * np.ceil(k / split_step) * k_step),
           tile_area, room)
    if memo is not None:  # shaped as the candidates x elements (a term without a split
        full = np.broadcast_shapes(*(a.shape for a in out))  # axis: as one split's)
        row = (1,) + full[1:]
        out = tuple(np.ascontiguousarray(np.broadcast_to(a, row if len(a) == 1 else full))
                    for a in out)
        for a in out:
            a.flags.writeable = False  # shared by every call with this weight shape
        while len(memo) >= SHAPE_MEMO_MAX:  # the oldest entry goes first
            memo.pop(next(iter(memo)))
        memo[key] = out
    return out


def _choose(hw: Hardware, st: _Structure, m, n, k, rate, s_a, s_w, memory_time,
            nd: int, flops=None) -> ShapeChoice:
    """`gemm_efficiency` of one block of elements (`nd` dimensions with the profiles');
    2 m n k (the same doubles whichever pair is multiplied first) formed where not
    given."""
    m, n, k = np.asarray(m, dtype=float), np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    axes = _candidate_axes(hw, st, nd)
    has, tm, tn, split, two_split_acc, units, every = (axes[0], axes[2], axes[3], axes[4],
                                                        axes[10], axes[12], axes[13])
    cols, n_cols, cols_split, e_k, tile_area, room = _shape_terms(hw, axes, nd, n, k)
    flops = 2.0 * m * n * k if flops is None else flops
    rows = np.ceil(m / tm)
    e_tile = (m / rows) * n_cols / tile_area
    e_feed, rate = _feed_efficiency(hw, axes, nd, rate, s_a, s_w)
    work = rows * cols_split  # tiles x split
    # the tiles fill the units or the split is out: tiles >= room as work >= room x split,
    # the same test (integers, exact below 2**53; above it both far past any room; a
    # product's rounding is monotonic and the rooms x split are exact)
    barred = work >= room
    e_wave = work / (np.ceil(work / units) * units)
    eff = e_tile * e_wave * e_k * e_feed
    if not every:
        eff = np.where(has, eff, 1.0)
    # 2 s m n ACC_BYTES as (2 s ACC_BYTES) m n: the same doubles (x ACC_BYTES, a power of
    # two, is exact); 0 unsplit: m, n are finite
    red = two_split_acc * m * n
    home = home_level(hw, red, True)
    t_red = red / _bandwidth_at(hw, home)
    if isinstance(home, int):  # one home for every candidate: in series or overlapped
        t_mem = memory_time + t_red if home == hw.main else np.maximum(memory_time, t_red)
    else:
        t_mem = np.maximum(memory_time, t_red)  # in series where homed in main memory
        np.add(memory_time, t_red, out=t_mem, where=home == hw.main)
    t = np.maximum(flops / (rate * eff), t_mem)
    np.copyto(t, np.inf, where=barred)  # (t is this call's own array)
    shape = t.shape
    n_tiles, size = shape[1], math.prod(shape[2:])
    # of the tied (within 1e-9 of the least time) the fewest reduction bytes, then the
    # first tile: the bytes grow with the split (0 unsplit; m n > 0), so the first tied
    # with candidates flat, SPLITS then tiles (with none tied, a NaN time: the first).
    # The least time is read at its argmin (cheaper than a min over the leading axis)
    flat, element = t.reshape((-1, size)), np.arange(size)
    least = flat[flat.argmin(axis=0), element]
    pick = (flat <= least * _TIED).argmax(axis=0)
    at = pick // n_tiles  # the split (the tile, pick % n_tiles, when read)

    def chosen(a, index):  # a's value per element at its leading axis's `index`
        if a.size == len(a):  # a candidate constant (one profile)
            return a.reshape(-1)[index].reshape(shape[2:])
        if a.shape[1:] != shape[2:]:
            a = np.broadcast_to(a, a.shape[:1] + shape[2:])
        return a.reshape((len(a), size))[index, element].reshape(shape[2:])
    red_c = chosen(red[:, 0], at)
    # the chosen bytes' home: `home_level` of them (element-wise; an int where uniform)
    home_c = home if isinstance(home, int) else home_level(hw, red_c, True)
    if eff.shape != shape:  # (the memory time may have axes the efficiency has not)
        eff = np.broadcast_to(eff, shape)
    return ShapeChoice(efficiency=chosen(eff.reshape((-1,) + shape[2:]), pick),
                       reduction_bytes=red_c, reduction_home=home_c,
                       candidate=lambda: (chosen(tm[0], pick % n_tiles),
                                          chosen(tn[0], pick % n_tiles),
                                          chosen(split[:, 0], at)))


def flash_blocks(q_len, kv_len, br, bc, causal: bool = True, tile_closed=None):
    """Br x Bc blocks a flash-attention kernel visits for q_len queries (the last of
    kv_len positions): every block of a query-row block up to its last row's diagonal
    when causal (blocks wholly above the diagonal are skipped, the diagonal ones
    computed in full), else all: sum over row blocks i of ceil(min(kv, p + (i+1) Br) /
    Bc), p = kv_len - q_len.

    With integral lengths and tile (1 to CLOSED_MAX) and Br a multiple of Bc, every row
    block i but the last reaches p + (i+1) Br < kv, so that its term is ceil(p / Bc) +
    (i+1) Br / Bc and the sum is closed: n ceil(p / Bc) + (Br / Bc) n (n + 1) / 2 +
    ceil(kv / Bc), n = ceil(q / Br) - 1 (the same integers, every partial sum below
    2**53; tests/test_gemm_shape.py checks it against the sum by row block).
    `tile_closed`: whether the tile is such (`closed_tile`), tested when None."""
    if not (type(q_len) in NUMBER_TYPES and type(kv_len) in NUMBER_TYPES):
        q_len, kv_len = np.asarray(q_len, dtype=float), np.asarray(kv_len, dtype=float)
    rows = ceil(q_len / br)
    if not causal:
        return _numpy(rows * ceil(kv_len / bc))
    if tile_closed is None:
        tile_closed = closed_tile(br, bc)
    if not (tile_closed and _integral(q_len, kv_len)):
        return _blocks_by_row(q_len, kv_len, br, bc, rows)
    n = rows - 1.0
    return _numpy(n * ceil((kv_len - q_len) / bc) + br / bc * (n * rows) / 2.0
                  + ceil(kv_len / bc))


def ceil(x):
    """np.ceil(x); for a positive finite Python float as a Python float (math.ceil: the
    same double, without a ufunc call on a number)."""
    if type(x) is float and 0.0 < x < math.inf:
        return float(math.ceil(x))
    return np.ceil(x)


def _numpy(x):
    """`x`, a Python float as numpy's (np.ceil's type on numbers)."""
    return np.float64(x) if type(x) is float else x


#: Lengths and tile sizes up to which `flash_blocks` counts in closed form.
CLOSED_MAX = 2.0 ** 26


def closed_tile(br, bc) -> bool:
    """Whether `flash_blocks` may count in closed form for a Br x Bc tile: integers from 1
    to CLOSED_MAX, Bc dividing Br."""
    return _integral(br, bc) and _divides(bc, br)


def _integral(*values) -> bool:
    """Whether every value is an integer from 1 to CLOSED_MAX everywhere (NaN is not)."""
    for v in values:
        if type(v) in NUMBER_TYPES or np.ndim(v) == 0:
            v = float(v)
            if not (1.0 <= v <= CLOSED_MAX and v.is_integer()):
                return False
        elif not ((v >= 1.0) & (v <= CLOSED_MAX) & (np.floor(v) == v)).all():
            return False
    return True


def _divides(bc, br) -> bool:
    """Whether the integers `bc` divide `br` everywhere."""
    if type(bc) in NUMBER_TYPES and type(br) in NUMBER_TYPES:
        return float(br) % float(bc) == 0.0
    return not np.fmod(br, bc).any()


def _blocks_by_row(q_len, kv_len, br, bc, rows):
    """`flash_blocks` (causal) summed over an axis of row blocks (`rows` of each)."""
    q, kv = np.asarray(q_len, dtype=float), np.asarray(kv_len, dtype=float)
    # the most row blocks, NaN ignored (np.nanmax); one axis per axis of the blocks
    rows = np.asarray(rows)
    i = np.arange(int(np.fmax.reduce(rows, axis=None)) if rows.size else 0, dtype=float)
    i = i.reshape((-1,) + (1,) * max(rows.ndim, kv.ndim, np.ndim(bc)))
    reach = np.minimum(kv, kv - q + (i + 1.0) * br)
    return np.add.reduce(np.where(i < rows, np.ceil(reach / bc), 0.0), axis=0)


def flash_waves(ctas, units):
    """Wave efficiency of `ctas` thread blocks on `units`: ctas / (ceil(ctas/U) U)."""
    return ctas / (ceil(ctas / units) * units)
