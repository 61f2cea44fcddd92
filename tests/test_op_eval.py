"""The ops-axis evaluation of passes (simulator.op_eval.evaluate_passes: the GEMMs,
norms, element-wise ops and embeddings of a pass, or of a request's prefill and decode
together, stacked and priced by one call of their formula) equals the per-op evaluation
element for element, on random configurations (hypothesis)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.hardware import as_hardware, cached_profile
from precsim.simulator.models import get_model
from precsim.simulator.op_eval import PassOps, evaluate_op, evaluate_passes
from precsim.simulator.ops import build_mixed_ops, build_ops
from precsim.simulator.quant import parse_quant
from precsim.simulator.roofline import EXTENSIVE_FIELDS

PROFILES = ("a100-sxm-80gb", "h100-sxm", "host", "snapdragon-8-gen3", "ternary-accel",
            "h100-tiles")
#: an engine with per-expert tile work (`overheads.expert_tile_rows`) on FP8 experts
TILED = cached_profile("h100-sxm").with_overrides({"overheads.expert_tile_rows": {
    "fp8_e4m3": {"value": 239, "assumed": "test"}}})
MODELS = ("llama-3.2-1b", "mistral-7b", "bitnet-b1.58-2b4t", "mixtral-8x7b",
          "qwen3-30b-a3b", "gpt-oss-20b")
QUANTS = ("W16A16", "W4A16-g128", "W8A8", "W4A8-KV4", "NVFP4", "FP8",
          "W4A16-g128@lm_head=W8A16")


def _equal(a, b) -> bool:
    """Same values (an array may carry extra leading length-1 axes), NaN equal to NaN."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if a.dtype == object or b.dtype == object or a.dtype.kind in "US":
        return bool(np.all(a == b))
    return bool(np.array_equal(a, b, equal_nan=True))


def _dims(value) -> int:
    """Dimensions of a value, leading length-1 axes aside."""
    shape = list(np.shape(value))
    while shape and shape[0] == 1:
        shape.pop(0)
    return len(shape)


def _same_cost(x, y, dims: int) -> None:
    """Equal fields, none with more dimensions than the pass's inputs (`dims`: an op
    stacked with another pass's must not gain that pass's axes)."""
    for name in EXTENSIVE_FIELDS + ("exec_dtype", "exec_path"):
        assert _equal(getattr(x, name), getattr(y, name)), name
        assert _dims(getattr(x, name)) <= dims, name
    assert list(x.bytes_moved) == list(y.bytes_moved)
    for level, moved in x.bytes_moved.items():
        assert _equal(moved, y.bytes_moved[level]), level
        assert _dims(moved) <= dims, level


def _hardware(profile: str):
    return as_hardware(TILED if profile == "h100-tiles" else cached_profile(profile))


def _check(specs, hw, quant, model, home, fused, *more) -> None:
    """`specs` (and the passes `more`: (specs, home) each) evaluated together equal each
    op evaluated alone."""
    passes = [PassOps(s, hw, quant, model, h, h) for s, h in ((specs, home), *more)]
    stacked = evaluate_passes(passes, fused)
    assert [len(c) for c in stacked] == [len(p.specs) for p in passes]
    for p, costs in zip(passes, stacked):
        dims = max(_dims(v) for spec in p.specs for v in (spec.count, *spec.params.values())
                   if not isinstance(v, (str, type(None))))
        for spec, cost in zip(p.specs, costs):
            _same_cost(cost, evaluate_op(spec, hw, quant, model, p.state_home, p.block_home,
                                         fused), dims)


@settings(max_examples=30, deadline=None)
@given(profile=st.sampled_from(PROFILES), model=st.sampled_from(MODELS),
       quant=st.sampled_from(QUANTS), batch=st.integers(1, 256),
       q_len=st.integers(1, 4096), past=st.integers(0, 8192),
       phase=st.sampled_from(("prefill", "decode")), fused=st.booleans(),
       home=st.integers(0, 3))
def test_stacked_pass_equals_per_op(profile, model, quant, batch, q_len, past, phase,
                                    fused, home):
    hw = _hardware(profile)
    q_len = 1 if phase == "decode" else q_len
    fmt, cfg = parse_quant(quant), get_model(model)
    specs = build_ops(cfg, fmt, float(batch), float(q_len), float(q_len + past), phase)
    _check(specs, hw, fmt, cfg, min(home, hw.main), fused)
    # a request's two passes share the calls (each op keeping its pass's weight home)
    decode = build_ops(cfg, fmt, float(batch), 1.0, float(q_len + past + 1), "decode")
    _check(specs, hw, fmt, cfg, min(home, hw.main), fused, (decode, hw.main))


@settings(max_examples=15, deadline=None)
@given(profile=st.sampled_from(PROFILES), model=st.sampled_from(MODELS),
       quant=st.sampled_from(QUANTS), seed=st.integers(0, 2**16))
def test_stacked_grid_and_mixed_pass_equal_per_op(profile, model, quant, seed):
    """Swept batch / lengths (arrays of different shapes) and a chunked-prefill pass."""
    rng = np.random.default_rng(seed)
    hw = _hardware(profile)
    fmt, cfg = parse_quant(quant), get_model(model)
    batch = rng.integers(1, 128, size=(3, 1)).astype(float)
    q_len = rng.integers(1, 2048, size=(1, 4)).astype(float)
    specs = build_ops(cfg, fmt, batch, q_len, q_len + 7.0, "prefill")
    steps = build_ops(cfg, fmt, batch[..., None], 1.0, q_len[..., None] + np.arange(1.0, 5.0),
                      "decode")  # a trailing axis of steps: priced apart from the prefill
    _check(specs, hw, fmt, cfg, hw.main, True, (steps, hw.main))
    mixed = build_mixed_ops(cfg, fmt, rng.integers(0, 32, size=2).astype(float), 300.0,
                            rng.integers(0, 512, size=2).astype(float), 64.0)
    _check(mixed, hw, fmt, cfg, hw.main, True)


def test_a_mobilellm_style_repeated_block_is_priced_per_op():
    """block_repeat > 1 (weights re-read from the block's home) keeps the per-op path."""
    cfg = dataclasses.replace(get_model("llama-3.2-1b"), block_repeat=2)
    hw = as_hardware(cached_profile("a100-sxm-80gb"))
    fmt = parse_quant("W8A8")
    _check(build_ops(cfg, fmt, 4.0, 1.0, 100.0, "decode"), hw, fmt, cfg, hw.main, True)


def test_a_swept_request_keeps_the_grid_shape_in_its_decode_totals():
    """The decode steps are reduced per shape of value (roofline.reduce_costs), yet every
    op's sum has the pass's common shape: a total built from ops that depend on no swept
    input (kernels per decode step) still spans the grid."""
    from precsim.simulator.cost import simulate
    batch = np.array([1.0, 8.0])[:, None, None]
    prompt = np.array([64.0, 512.0, 4096.0])[None, :, None]
    gen = np.array([1.0, 33.0, 65.0, 500.0])[None, None, :]
    totals = simulate("a100-sxm-80gb", "llama-3.2-1b", "W16A16", batch, prompt, gen).totals
    for name in ("kernels_per_decode_step", "tpot_s", "e2e_latency_s", "energy_j"):
        assert np.shape(totals[name]) == (2, 3, 4), name
    one = simulate("a100-sxm-80gb", "llama-3.2-1b", "W16A16", 8, 512, 33).totals
    assert totals["kernels_per_decode_step"][1, 1, 1] == one["kernels_per_decode_step"]


@settings(max_examples=10, deadline=None)
@given(profile=st.sampled_from(PROFILES), model=st.sampled_from(MODELS),
       quant=st.sampled_from(QUANTS), seed=st.integers(0, 2**16))
def test_phase_sums_on_the_stacked_arrays_equal_the_per_op_sums(profile, model, quant, seed):
    """A phase's totals are summed on the stacked arrays (and a decode's weighted over
    its steps after the ops sum): equal, to summation order (rel 1e-12), to the sequential
    sum of the per-op costs; every sum of a phase has the pass's common shape (a swept
    request too)."""
    from precsim.simulator.cost import simulate
    from precsim.simulator.roofline import add_all
    rng = np.random.default_rng(seed)
    hw = TILED if profile == "h100-tiles" else cached_profile(profile)
    swept = rng.integers(0, 2)
    batch = rng.integers(1, 64, size=(2, 1)).astype(float) if swept else 4.0
    gen = rng.integers(1, 300, size=3).astype(float) if swept else 100.0
    result = simulate(hw, model, quant, batch, 700.0, gen)
    for phase in (result.prefill, result.decode):
        for name in EXTENSIVE_FIELDS:
            if name in ("compute_time_s", "memory_time_s"):
                continue  # not phase totals
            expected = add_all(getattr(c, name) for c in phase.costs)
            got = getattr(phase, name)
            assert np.shape(got) == np.broadcast_shapes(np.shape(got), np.shape(expected))
            assert np.shape(got) == np.shape(phase.time_s), name
            np.testing.assert_allclose(got, np.broadcast_to(expected, np.shape(got)),
                                       rtol=1e-12, atol=0, err_msg=name)
        for level, moved in phase.bytes_moved.items():
            expected = add_all(c.bytes_moved[level] for c in phase.costs)
            np.testing.assert_allclose(moved, np.broadcast_to(expected, np.shape(moved)),
                                       rtol=1e-12, atol=0, err_msg=level)


def test_a_request_sums_only_what_its_totals_read():
    """A pass sums its fields in two groups (simulator.pass_sums.SUM_GROUPS, together every
    extensive field once): a request's totals read the first group only; the second is
    summed when first asked for and equals the sum of the per-op costs."""
    from precsim.simulator.cost import simulate
    from precsim.simulator.pass_sums import SUM_GROUPS
    from precsim.simulator.roofline import add_all
    assert sorted(SUM_GROUPS[0] + SUM_GROUPS[1]) == sorted(EXTENSIVE_FIELDS)
    result = simulate("a100-sxm-80gb", "llama-3.2-1b", "W16A16", 1, 512, 128)
    for phase in (result.prefill, result.decode):
        assert "other_sums" not in phase.evaluated.__dict__
    flops = add_all(c.flops for c in result.prefill.costs)
    assert result.prefill.flops == pytest.approx(flops, rel=1e-12)
    assert "other_sums" in result.prefill.evaluated.__dict__


def test_norms_and_streaming_ops_share_one_call_at_the_norm_kind_rate():
    """A request's norms, element-wise ops and KV appends (both passes) are priced by one
    element-wise call (a "stream" step, the later batches "=" steps reusing it), each op
    equal to its own evaluation, also where the profile runs the norm kind at its own
    rate and widening (its rows only: the element-wise ops keep the common rate)."""
    from precsim.simulator.op_eval import _plan
    own = cached_profile("host").with_overrides({
        "vector.rate_by_kernel": {"rmsnorm": {"value": "7 GOP/s", "assumed": "test"}},
        "vector.widen_by_kernel": {"rmsnorm": {"value": 0.75, "assumed": "test"}}})
    fmt, cfg = parse_quant("W16A16"), get_model("llama-3.2-1b")
    prefill = build_ops(cfg, fmt, 2.0, 100.0, 100.0, "prefill")
    decode = build_ops(cfg, fmt, 2.0, 1.0, 101.0, "decode")
    for hw in (as_hardware(own), _hardware("host")):
        _check(prefill, hw, fmt, cfg, hw.main, True, (decode, hw.main))
    hw = as_hardware(own)
    steps = _plan([PassOps(s, hw, fmt, cfg, hw.main, hw.main) for s in (prefill, decode)])
    kinds = [step[1] for step in steps]
    assert kinds.count("stream") == 1 and kinds.count("=") >= 1
    ops = steps[kinds.index("stream")][2]
    assert {(prefill, decode)[pi][i].kind for pi, i in ops} == {"norm", "elementwise"}
    norm = next(s for s in prefill if s.kind == "norm")
    plain = evaluate_op(norm, _hardware("host"), fmt, cfg, 0, 0, True)
    assert evaluate_op(norm, hw, fmt, cfg, 0, 0, True).compute_time_s != plain.compute_time_s


@pytest.mark.parametrize("model", ["llama-3.2-1b", "mixtral-8x7b"])
def test_a_layout_prices_each_step_once_and_keeps_each_passs_order(model):
    """`_layout` of a plan: one call per stacked step and per op priced alone, none for a
    "=" step (its rows read the call of the step it names); each pass's parts and single
    ops in the order the steps emit them, every op once; a GEMM call's adapter bound to
    whether its ops include expert GEMMs."""
    from precsim.simulator.op_eval import _layout, _plan
    hw, fmt, cfg = _hardware("h100-tiles"), parse_quant("FP8"), get_model(model)
    passes = [PassOps(s, hw, fmt, cfg, hw.main, hw.main)
              for s in (build_ops(cfg, fmt, 2.0, 100.0, 100.0, "prefill"),
                        build_ops(cfg, fmt, 2.0, 1.0, 101.0, "decode"))]
    steps = _plan(passes)
    calls, layout = _layout(steps, passes)
    assert len(calls) == sum(len(s[2]) if s[1] is None else s[1] != "=" for s in steps)
    for pi, (parts, singles) in enumerate(layout):
        emitted = [(idx, rows) for s in steps if s[1] for qi, idx, rows in s[6] if qi == pi]
        assert [(idx, rows) for idx, _, rows in parts] == emitted
        assert [i for s in steps if s[1] is None for qi, i in s[2] if qi == pi] \
            == [i for i, _ in singles]
        assert sorted([i for idx, _, _ in parts for i in idx] + [i for i, _ in singles]) \
            == list(range(len(passes[pi].specs)))
        for (idx, c, rows), step in zip(parts, (s for s in steps if s[1] and any(
                qi == pi for qi, _, _ in s[6]))):
            lead = steps[step[2]] if step[1] == "=" else step
            assert calls[c][3] == lead[2]  # the call of the step (of the step "=" names)
        assert all(calls[c][1] is None and calls[c][3] == ((pi, i),) for i, c in singles)
    gemms = [call for call in calls if call[1] == "gemm"]
    assert gemms and all(call[2].args == (any(
        passes[pi].specs[i].params.get("experts") for pi, i in call[3]),) for call in gemms)
    assert any(call[2].args[0] for call in gemms) == (cfg.n_experts > 0)


@settings(max_examples=30, deadline=None)
@given(fields=st.integers(1, 7), shape=st.lists(st.integers(1, 4), max_size=3),
       less=st.integers(0, 3), seed=st.integers(0, 2**16), swap=st.booleans())
def test_blocks_of_different_dimensions_add_with_the_fewer_padded_after_the_fields(
        fields, shape, less, seed, swap):
    """`pass_sums.blocks_added`: (fields, *shape) + (fields, *shape[k:]) is the sum
    with the smaller's axes after the fields' axis, either way round."""
    from precsim.simulator.pass_sums import blocks_added
    rng = np.random.default_rng(seed)
    big = rng.standard_normal((fields, *shape))
    cut = min(less, len(shape))
    small = rng.standard_normal((fields, *shape[cut:]))
    a, b = (small, big) if swap else (big, small)
    expected = big + small.reshape((fields,) + (1,) * cut + small.shape[1:])
    assert np.array_equal(blocks_added(a, b), expected)


@settings(max_examples=40, deadline=None)
@given(fields=st.integers(1, 11), size=st.integers(2, 7), runs=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_run_sums_equal_each_runs_own_reduce_bit_for_bit(fields, size, runs, seed):
    """`pass_sums.run_sums` (one reduce over the block reshaped into runs) gives each run
    exactly the doubles of the per-pass reduce it replaces (`np.add.reduce` of the
    slice), on magnitudes and signs that make the summation order show."""
    from precsim.simulator.pass_sums import run_sums
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((fields, size * runs)) \
        * 10.0 ** rng.integers(-8, 9, (fields, size * runs))
    sums = run_sums(block, size)
    assert sums.shape == (fields, runs)
    for j in range(runs):
        assert np.array_equal(sums[:, j],
                              np.add.reduce(block[:, j * size:(j + 1) * size], axis=1))


def test_row_runs_only_where_the_passes_tile_a_scalar_call_in_equal_short_runs():
    """`pass_sums.row_runs`: the run length where the passes' rows tile the call's ops
    axis in runs of one length from 2 to 7 with scalar inputs; nothing otherwise (one-row
    runs, unequal or long runs, gaps, array inputs)."""
    from precsim.simulator.pass_sums import row_runs

    def runs(cuts, n, nd=0):
        parts = [[((), 0, slice(a, b))] for a, b in cuts]
        return row_runs(parts, [(n, nd)]).get(0)
    assert runs([(0, 3), (3, 6), (6, 9), (9, 12)], 12) == 3
    assert runs([(5, 10), (0, 5)], 10) == 5
    assert runs([(0, 1), (1, 2)], 2) is None  # one row: read, not summed
    assert runs([(0, 2), (2, 5)], 5) is None  # unequal
    assert runs([(0, 8), (8, 16)], 16) is None  # 8 and more: numpy's pairwise sum
    assert runs([(0, 3), (6, 9)], 9) is None  # a gap
    assert runs([(0, 3), (3, 6)], 6, nd=1) is None  # array inputs: blocks per pass
