"""The speed work of the scalar and grid API (benchmarks/cli_speed.py measures it): the
caches never serve a stale or shared result, `.ops` is built only when asked for and is
the per-phase tables stacked, and `simulate_grid` rows equal the scalar calls."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import precsim
from precsim.codesign.commands.simulate import _text_table
from precsim.simulator import hardware
from precsim.simulator.hardware import as_hardware
from precsim.simulator.power import power_params

A100 = "a100-sxm-80gb"
ROOT = Path(__file__).resolve().parent.parent


def _close(a, b) -> bool:
    if isinstance(b, str):  # a name (e.g. totals["runtime"])
        return a == b
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                            rtol=1e-12, atol=0.0, equal_nan=True))


def test_a_name_loads_once_and_packs_once():
    first, again = precsim.load_profile(A100), precsim.load_profile(A100)
    assert first is again
    assert as_hardware(first) is as_hardware(again) is as_hardware(A100)


def test_an_edited_profile_never_gets_the_original_result():
    base = precsim.load_profile(A100)
    before = precsim.simulate(base, "llama-2-7b", batch=4).totals["tpot_s"]
    # half the HBM bandwidth (a what-if edit is a new, re-validated profile object)
    slow = base.with_overrides({"memory.hbm.bandwidth.value": "1.0195 TB/s"})
    edited = precsim.simulate(slow, "llama-2-7b", batch=4).totals["tpot_s"]
    after = precsim.simulate(base, "llama-2-7b", batch=4).totals["tpot_s"]
    assert edited > 1.5 * before  # decode streams the weights: about twice as long
    assert after == before
    assert as_hardware(slow) is not as_hardware(base)


def test_a_profile_file_edited_on_disk_is_read_again(tmp_path):
    path = tmp_path / "chip.yaml"
    shutil.copy(hardware.cached_profile(A100).path, path)
    first = precsim.simulate(str(path), "llama-2-7b").totals["tpot_s"]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("value: 2.039 TB/s", "value: 1.0195 TB/s"), encoding="utf-8")
    stamp = os.stat(path).st_mtime_ns + 10**9  # a new mtime even on a coarse clock
    os.utime(path, ns=(stamp, stamp))
    assert precsim.simulate(str(path), "llama-2-7b").totals["tpot_s"] > 1.5 * first


def test_one_relative_path_in_two_folders_is_two_profiles(tmp_path, monkeypatch):
    source = hardware.cached_profile(A100).path
    for folder, bandwidth in (("a", "2.039 TB/s"), ("b", "1.0195 TB/s")):
        (tmp_path / folder).mkdir()
        text = open(source, encoding="utf-8").read()
        (tmp_path / folder / "chip.yaml").write_text(
            text.replace("value: 2.039 TB/s", f"value: {bandwidth}"), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "a")
    fast = precsim.simulate("./chip.yaml", "llama-2-7b").totals["tpot_s"]
    monkeypatch.chdir(tmp_path / "b")
    assert precsim.simulate("./chip.yaml", "llama-2-7b").totals["tpot_s"] > 1.5 * fast


def test_eviction_from_the_packing_cache_keeps_results(monkeypatch):
    monkeypatch.setattr(hardware, "PACKED_MAX", 2)
    base = precsim.load_profile(A100)
    variants = [base.with_overrides({"memory.hbm.bandwidth.value": f"{bw} TB/s"})
                for bw in (1.0, 1.5, 2.0)]
    first = [precsim.simulate(p, "llama-2-7b").totals["tpot_s"] for p in variants]
    assert len(hardware._PACKED) <= 2
    again = [precsim.simulate(p, "llama-2-7b").totals["tpot_s"] for p in variants]
    assert first == again and first[0] > first[1] > first[2]


def test_the_memoised_power_envelope_is_the_profiles():
    profile = precsim.load_profile(A100)
    hw = as_hardware(profile)
    assert power_params(hw) is power_params(hw)
    fresh = power_params(np.asarray(profile, dtype=object))
    assert all(_close(a, b) for a, b in zip(dataclasses.astuple(power_params(hw)),
                                            dataclasses.astuple(fresh)))


def test_editing_a_result_does_not_leak_into_the_next_call():
    first = precsim.simulate(A100, "llama-2-7b", batch=2)
    expected = {k: (dict(v) if isinstance(v, dict) else v) for k, v in first.totals.items()}
    first.totals["tpot_s"] = -1.0
    first.totals["bytes_moved"]["hbm"] = -1.0
    first.totals["weight_bytes_by_group"].clear()
    table = first.ops
    table.loc[:, "time_s"] = -1.0
    second = precsim.simulate(A100, "llama-2-7b", batch=2)
    assert second.totals["tpot_s"] == expected["tpot_s"] > 0
    assert second.totals["bytes_moved"] == expected["bytes_moved"]
    assert second.totals["weight_bytes_by_group"] == expected["weight_bytes_by_group"]
    assert (second.ops["time_s"] > 0).all() and (first.ops["time_s"] > 0).all()


def test_ops_is_built_on_access_as_the_phase_tables_stacked():
    result = precsim.simulate("h100-sxm", "llama-3-8b", "W4A16-g128", batch=8)
    ops = result.ops
    stacked = pd.concat([result.prefill.ops, result.decode.ops], ignore_index=True)
    pd.testing.assert_frame_equal(ops, stacked)
    pd.testing.assert_frame_equal(ops, pd.DataFrame(result.rows()))  # the pandas-free rows
    assert ops is not result.ops  # a fresh table each time: editing one changes no other
    assert list(ops.columns[:5]) == ["op", "phase", "group", "count", "shape"]
    assert set(ops["phase"]) == {"prefill", "decode"}
    # the table adds up to the phases' times (before the power cap's throttling)
    by_phase = ops.groupby("phase")["time_s"].sum()
    assert by_phase["prefill"] == pytest.approx(result.prefill.time_s, rel=1e-12)
    assert by_phase["decode"] == pytest.approx(result.decode.time_s, rel=1e-12)


def test_the_cli_text_table_lays_out_as_pandas_did():
    columns = {"phase": ["prefill", "decode"], "op": ["qkv_proj", "lm_head"],
               "time": ["6.192 ms", "1 us"], "share": ["0.5%", "12.0%"]}
    assert _text_table(columns) == pd.DataFrame(columns).to_string(index=False)
    assert _text_table({"a": ["x"], "longer": ["y"]}).splitlines() == ["a longer", "x      y"]


@pytest.mark.parametrize(("profile", "model", "quant"), [
    (A100, "llama-2-7b", "W16A16"),
    ("h100-sxm", "llama-3-8b", "W4A16-g128"),
])
def test_grid_rows_equal_the_scalar_calls(profile, model, quant):
    batch, prompt, gen = [1, 16], [128, 2048], [1, 40, 300]  # gen > 64: midpoint rule
    grid = precsim.simulate_grid(profile, model, quant, batch=batch, prompt=prompt,
                                 gen=gen)
    assert len(grid) == 12
    assert grid[["batch", "prompt", "gen"]].iloc[1].tolist() == [1, 128, 40]
    for row in grid.itertuples(index=False):
        one = precsim.simulate(profile, model, quant, batch=int(row.batch),
                               prompt=int(row.prompt), gen=int(row.gen)).totals
        for key, value in one.items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for name, v in items:
                column = key if name is None else f"{key}_{name}"
                assert _close(getattr(row, column), v), (column, row)


def test_grid_input_errors_name_the_argument():
    with pytest.raises(precsim.InputError, match="gen must be"):
        precsim.simulate_grid(A100, "llama-2-7b", gen=[[1, 2]])
    with pytest.raises(precsim.InputError, match="batch must be"):
        precsim.simulate_grid(A100, "llama-2-7b", batch=[])
    with pytest.raises(precsim.InputError, match="--prompt must be at least 1"):
        precsim.simulate_grid(A100, "llama-2-7b", prompt=[0, 8])


def test_grid_keeps_a_models_approximations():
    moe = next(name for name in precsim.list_models() if "mixtral" in name)
    grid = precsim.simulate_grid("h100-sxm", moe, "FP8", batch=[1], gen=[8])
    assert any("MoE" in note for note in grid.attrs["approximations"])


def test_a_simulate_call_loads_pandas_only_for_the_op_table():
    code = ("import sys, precsim\n"
            "r = precsim.simulate('a100-sxm-80gb', 'llama-2-7b')\n"
            "before = 'pandas' in sys.modules or 'precsim.lawcore' in sys.modules\n"
            "r.ops\n"
            "print(before, 'pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_a_runtime_file_is_read_once_until_it_changes_on_disk(tmp_path, monkeypatch):
    from precsim.simulator import runtime
    path = tmp_path / "rt.yaml"
    shutil.copy(runtime.builtin_runtime_dir() / "torch-compile.yaml", path)
    reads = []
    real = runtime.read_text_bounded
    monkeypatch.setattr(runtime, "read_text_bounded",
                        lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    first = runtime.load_runtime(str(path))
    assert runtime.load_runtime(str(path)) is first and len(reads) == 1
    path.write_text(path.read_text(encoding="utf-8").replace(
        "name: torch-compile", "name: my-compile"), encoding="utf-8")
    stamp = os.stat(path).st_mtime_ns + 10**9  # a new mtime even on a coarse clock
    os.utime(path, ns=(stamp, stamp))
    assert runtime.load_runtime(str(path)).name == "my-compile" and len(reads) == 2


def test_reduce_costs_is_each_fields_weighted_sum():
    from precsim.simulator.roofline import EXTENSIVE_FIELDS, KernelCost, reduce_costs
    w = np.array([1.0, 0.5, 0.0])
    def cost(scale, labels):
        fields = {f: scale * (i + 1) * np.array([1.0, 2.0, 4.0]) for i, f in
                  enumerate(EXTENSIVE_FIELDS)}
        fields["n_kernels"] = 3.0 * scale  # a scalar field broadcasts over the weights
        return KernelCost(bytes_moved={"L1": scale * np.array([2.0, 4.0, 8.0]), "HBM": 5.0},
                          exec_dtype=labels, exec_path="native", **fields)
    a, b = cost(1.0, "bf16"), cost(10.0, np.array(["fp8", "fp8", "bf16"], dtype=object))
    ra, rb = reduce_costs((a, b), w)
    for f in EXTENSIVE_FIELDS:
        for c, r in ((a, ra), (b, rb)):
            assert getattr(r, f) == pytest.approx(float(np.sum(np.asarray(getattr(c, f)) * w)))
    assert ra.n_kernels == 4.5 and rb.n_kernels == 45.0  # 3 x (1 + 0.5 + 0), x 10
    assert rb.bytes_moved == {"L1": pytest.approx(40.0), "HBM": pytest.approx(7.5)}
    assert (ra.exec_dtype, rb.exec_dtype) == ("bf16", "fp8")
    assert a.reduce(w).time_s == ra.time_s


def test_gemm_shape_choice_in_blocks_equals_the_whole_sweep(monkeypatch):
    from precsim.simulator import gemm_shape
    hw = as_hardware(precsim.load_profile(A100))
    m = np.array([[1.0], [7.0], [300.0], [4096.0]])
    n, k = np.array([128.0, 4096.0, 11008.0, 32000.0, 77.0]), np.array(4096.0)
    args = (hw, m, n, k, 3.1e14, 2.0, 1.0, 2e-6)
    whole = gemm_shape.gemm_efficiency(*args)
    monkeypatch.setattr(gemm_shape, "MAX_CANDIDATE_ELEMENTS", 3 * 9 * len(gemm_shape.SPLITS))
    blocks = gemm_shape.gemm_efficiency(*args)  # seven blocks of three elements
    for name in ("efficiency", "tile_m", "tile_n", "split", "reduction_bytes",
                 "reduction_home"):
        a, b = getattr(whole, name), getattr(blocks, name)
        assert np.array_equal(np.broadcast_to(a, (4, 5)), np.broadcast_to(b, (4, 5))), name
    assert np.shape(blocks.efficiency) == (4, 5)
    assert np.any(np.asarray(whole.split) > 1) and np.any(np.asarray(whole.efficiency) < 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e12, 1e12), st.integers(-10**6, 10**6),
                          st.floats(-1e12, 1e12).map(np.float64),
                          st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3)
                          .map(np.array)), min_size=1, max_size=12))
def test_add_all_is_the_asarray_sum_bit_for_bit(values):
    from precsim.simulator.roofline import add_all
    expected = sum(np.asarray(v) for v in values)
    got = add_all(iter(values))
    assert type(got) is type(expected)
    assert np.array_equal(got, expected)


def test_memoised_weight_bytes_are_a_new_equal_dict_each_call():
    from precsim.simulator.footprint import _weight_bytes, weight_bytes
    model, quant = precsim.get_model("llama-3-8b"), precsim.parse_quant("W4A16-g128")
    first = weight_bytes(model, quant)
    first["mlp"] = -1.0
    again = weight_bytes(model, quant)
    assert again is not first and again == _weight_bytes(model, quant)
    assert again["mlp"] > 0


def test_memoised_plan_options_are_copies():
    from precsim.simulator.mapping import plan_options
    hw = as_hardware(precsim.load_profile(A100))
    first = plan_options(hw, "bf16", "bf16")
    rate = first[0]["ops_per_s"]
    first[0]["ops_per_s"] = -1.0
    assert plan_options(hw, "bf16", "bf16")[0]["ops_per_s"] == rate > 0


@pytest.mark.parametrize("value, shown", [(np.array([2.0, np.nan]), "nan"),
                                          (np.array([[3.0, 0.5]]), "0.5"), (np.inf, "inf")])
def test_length_checks_name_the_bad_value(value, shown):
    from precsim.simulator.cost import simulate
    with pytest.raises(precsim.InputError, match=f"prompt_len must be at least 1, got {shown}"):
        simulate(precsim.load_profile(A100), "llama-2-7b", "W16A16", 1, value, 8)


@settings(max_examples=60, deadline=None)
@given(profile=st.sampled_from(("a100-sxm-80gb", "h100-sxm", "host", "snapdragon-8-gen3")),
       exponents=st.lists(st.floats(0.0, 12.0), min_size=1, max_size=6),
       persistent=st.booleans(), nan=st.booleans())
def test_home_level_of_an_array_is_each_elements_home(profile, exponents, persistent, nan):
    """The array path (one level when the smallest and the largest element share it)
    gives every element the level its scalar call gives (NaN fits nowhere: main)."""
    from precsim.simulator.hardware import as_hardware, cached_profile
    from precsim.simulator.roofline import home_level
    hw = as_hardware(cached_profile(profile))
    nbytes = 10.0 ** np.array(exponents)
    if nan:
        nbytes[0] = np.nan
    got = np.broadcast_to(home_level(hw, nbytes, persistent), nbytes.shape)
    expected = [home_level(hw, float(x), persistent) for x in nbytes]
    assert got.tolist() == expected


def test_batching_plans_are_kept_per_signature_not_per_request(monkeypatch):
    """op_eval keeps how a request's passes are batched per pass signature (model and
    format objects, phase, the inputs' dimensions): requests of other sizes reuse it,
    a vectorised request gets its own, and every result equals the one planned afresh."""
    from precsim.simulator import op_eval
    from precsim.simulator.cost import simulate
    profile, model = precsim.load_profile(A100), precsim.get_model("llama-2-7b")
    quant = precsim.parse_quant("W4A16-g128")
    monkeypatch.setattr(op_eval, "_PLANS", {})
    requests = [(1, 512, 128), (8, 100, 3), (np.array([1.0, 4.0]), 64, 700), (3, 2048, 65)]
    kept = [simulate(profile, model, quant, *r).totals for r in requests]
    assert len(op_eval._PLANS) == 2  # the scalar requests' plan, the vectorised one's
    for request, totals in zip(requests, kept):
        monkeypatch.setattr(op_eval, "_PLANS", {})
        fresh = simulate(profile, model, quant, *request).totals
        for key, value in fresh.items():
            if isinstance(value, dict):
                assert all(np.array_equal(value[k], totals[key][k]) for k in value), key
            else:
                assert np.array_equal(value, totals[key]), key


def test_swept_models_get_no_kept_plan():
    """A model with array fields (a parametric sweep) could be edited in place: its
    passes carry no signature and are planned on every call."""
    from precsim.simulator.models import model_for_params
    from precsim.simulator.ops import build_ops
    quant = precsim.parse_quant("W16A16")
    swept = build_ops(model_for_params(np.array([1e9, 7e9])), quant, 1, 8, 8, "prefill")
    plain = build_ops(precsim.get_model("llama-2-7b"), quant, 1, 8, 8, "prefill")
    assert swept.signature is None and plain.signature is not None
    again = build_ops(precsim.get_model("llama-2-7b"), quant, 4, 100, 100, "prefill")
    assert again.signature == plain.signature


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=6), st.integers(1, 80))
def test_decode_nodes_of_a_number_equal_its_element_of_an_array(steps, nodes):
    """`decode_nodes_for` of a number computes only its rule: the same offsets and
    weights (values, dtype, shape) as its row of an array call (which picks with
    np.where), exact (steps <= nodes) or midpoint."""
    from precsim.simulator.cost import decode_nodes_for
    offsets, weights = decode_nodes_for(np.array(steps, dtype=float), nodes)
    for i, s in enumerate(steps):
        for number in (float(s), np.float64(s), np.asarray(float(s))):
            o, w = decode_nodes_for(number, nodes)
            assert o.shape == w.shape == (nodes,) and o.dtype == w.dtype == np.float64
            assert np.array_equal(o, offsets[i]) and np.array_equal(w, weights[i])


def test_object_memo_serves_only_the_objects_it_holds():
    """`ops.object_memo` keys on ids and holds its objects (no id is reused while kept):
    an equal but distinct object gets its own entry, and objects made after others were
    evicted (and freed: their ids free again) never get an old value."""
    from precsim.simulator.ops import object_memo
    store: dict = {}
    a, b = (1.5,) * 2, tuple([1.5, 1.5])
    assert a == b and a is not b
    assert object_memo(store, (a,), lambda: "a") == "a"
    assert object_memo(store, (b,), lambda: "b") == "b"
    assert object_memo(store, (a,), lambda: "again") == "a"
    store = {}
    for i in range(200):
        assert object_memo(store, (object(),), lambda: i, extra=("x",), size=2) == i
    assert len(store) == 2


@pytest.mark.parametrize("profile", [A100, "snapdragon-8-gen3"])
def test_totals_memory_energy_per_level_and_dicts_of_their_own(profile):
    """totals' energy_memory_j lists every level of the profile in order (the memory
    components of `dynamic_split`, "memory_<level>"); weight_bytes_by_group equals the
    prefill PhaseCost's entries in a dict of its own."""
    from precsim.simulator.power import dynamic_split
    r = precsim.simulate(profile, "llama-2-7b", batch=2, prompt=64, gen=9)
    t = r.totals
    assert list(t["energy_memory_j"]) == list(r.prefill.level_names)
    assert t["weight_bytes_by_group"] == r.prefill.weight_bytes
    assert t["weight_bytes_by_group"] is not r.prefill.weight_bytes
    assert list(dynamic_split(as_hardware(profile), r.prefill))[1:] == [
        f"memory_{name}" for name in r.prefill.level_names]
