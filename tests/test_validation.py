"""validation/: formats, plans, comparison maths, calibration output, CLI paths.

No timing is asserted anywhere: only structure, provenance, skip reporting and errors.
Measurements use the hidden smallest setting (TINY timings, the smoke plan).
"""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from precsim.codesign.cli import main
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import gemm_cost
from precsim.simulator.profile_loader import load_profile_file
from precsim.simulator.profiles import profile_from_mapping
from precsim.validation import compare, formats, microbench, torchenv
from precsim.simulator.io import load_yaml_mapping
from precsim.validation import bench
from precsim.validation.bench import TINY, Timing, time_callable
from precsim.validation.calibrate import plan_calibration, run_calibration, template_path, \
    write_profile
from precsim.validation.fits import PLAUSIBLE_FACTOR, implausible, template_kept
from precsim.validation.memory_fits import enforce_level_order, fit_memory_levels, \
    net_bandwidth
from precsim.validation.kernels import build_case, matmul_case, rows_cols_case
from precsim.validation.measure import ModelCase, held_out_jobs, held_out_table
from precsim.validation.plan import PLANS, SMALL_MODEL, assert_held_out, calibration_shapes, \
    quick_plan
from precsim.validation.rounds import CALIBRATION, HELD_OUT, reference_kernels, run_rounds, \
    time_job
from precsim.validation.simulate import simulate_kernel


def _cited_fields(node, path=""):
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _cited_fields(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for item in node:
            yield from _cited_fields(item, f"{path}[{item.get('name', '?')}]"
                                     if isinstance(item, dict) else path)


# ---- template ------------------------------------------------------------------------------

def test_host_template_is_valid_and_fully_cited():
    profile = load_profile_file(template_path())
    assert profile.name == "host" and profile.kind == "cpu"
    assert profile.uncovered_dtypes() == []
    assert [lv.name for lv in profile.memory] == ["l1", "l2", "l3", "dram"]
    for path, node in _cited_fields(profile.raw()):
        assert any(node.get(k) for k in ("source", "derived", "assumed", "measured")), path


# ---- formats and kernels -------------------------------------------------------------------

@pytest.mark.parametrize("fmt,tol", [("fp32", 1e-6), ("bf16", 0.02), ("w8a8", 0.05),
                                     ("w8a16", 0.05), ("w4a16", 0.2), ("w8a16-deq", 0.05),
                                     ("w4a16-deq", 0.2), ("ternary", 0.8)])
def test_every_format_computes_x_times_w_transpose(fmt, tol):
    torch.manual_seed(0)
    w = torch.randn(256, 512) * 0.05
    x = torch.randn(4, 512)
    lin = formats.Linear(fmt, w, "cpu")
    y = lin(x.to(lin.act_dtype)).float()
    ref = x @ w.t()
    assert y.shape == (4, 256)
    assert float((y - ref).norm() / ref.norm()) < tol
    assert lin.weight_bytes > 0


def test_int4_kernel_and_plain_dequantisation_agree():
    torch.manual_seed(1)
    w, x = torch.randn(128, 256), torch.randn(2, 256).bfloat16()
    fused = formats.Linear("w4a16", w, "cpu")(x).float()
    plain = formats.Linear("w4a16-deq", w, "cpu")(x).float()
    assert float((fused - plain).norm() / plain.norm()) < 0.02


def test_probe_reports_every_format_available_here():
    probes = formats.probe_formats("cpu")
    assert set(probes) == set(formats.FORMATS)
    assert all(p.available for p in probes.values()), probes


def test_unknown_format_probe_says_so():
    probe = formats.probe_formats("cpu", ["w3a16"])["w3a16"]
    assert not probe.available and "unknown format" in probe.reason


def test_cold_cases_rotate_weight_copies():
    case = matmul_case("bf16", 1, 256, 256)  # 128 KiB of weights
    fn = build_case(case, "cpu", cold_bytes=1 << 20)
    assert fn().shape == (1, 256)
    with pytest.raises(KeyError, match="unknown elementwise op"):
        build_case(rows_cols_case("elementwise", "tanh2", "fp32", 4, 4), "cpu")


def test_time_callable_reports_median_and_spread():
    t = time_callable(lambda: torch.ones(8).sum(), TINY)
    assert t.median_s > 0 and t.spread >= 0 and t.repeats == TINY.repeats and t.calls >= 2
    assert 0 < t.best_s <= t.median_s  # the fastest call is never slower than a median


@pytest.mark.parametrize("threads", [1, 2])
def test_calibration_and_held_out_jobs_share_one_thread_rule(monkeypatch, threads):
    """Every job of a quick validate (calibration and held-out) and the drift references
    are timed once each, at the run's thread count, in CPU time exactly on one thread:
    no job picks the faster of two thread counts (fake timings, no tensors built)."""
    seen = []

    def fake_time(fn, settings, cpu_time=False):
        seen.append((settings.threads or torch.get_num_threads(), cpu_time))
        return Timing(1e-3, 0.0, 0.0, 1, 1, 1e-3, (1e-3,))
    monkeypatch.setattr(bench, "time_callable", fake_time)
    plan = PLANS["quick"]()
    cases = list(plan.kernels) + list(plan.model_cases)
    held, _ = held_out_jobs(cases, "cpu", plan.settings, {c.name: "memory" for c in cases},
                            model_factory=lambda fmt: None)
    cal = plan_calibration("cpu", plan.settings, quick=True).jobs
    jobs = [replace(j, build=lambda: (lambda: None)) for j in cal + held]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = run_rounds(jobs, reference_kernels("cpu", stream_bytes=4096, gemm_n=8),
                             lambda job: time_job(job, "cpu"), passes=1)
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {(threads, threads == 1)}
    assert len(seen) == len(jobs) + 2  # one timing per job and per reference kernel
    used = {g: {results.result(j.key)["best_threads"] for j in jobs if j.group == g}
            for g in (CALIBRATION, HELD_OUT)}
    assert cal and held and used == {CALIBRATION: {threads}, HELD_OUT: {threads}}


# ---- calibration robustness ----------------------------------------------------------------

def test_net_bandwidth_uses_fastest_call_net_of_overhead():
    rows = pd.DataFrame({"bytes_moved": [100.0, 300.0], "best_s": [2.0, 3.0],
                         "time_s": [50.0, 60.0]})
    # (100 + 300) / ((2 - 1) + (3 - 1)); the slow medians play no part
    assert net_bandwidth(rows, 1.0) == pytest.approx(400.0 / 3.0)
    # overhead above the call time: the net time is floored at 20% of it
    assert net_bandwidth(rows, 10.0) == pytest.approx(400.0 / (0.4 + 0.6))


def test_implausible_measurements_are_flagged_outside_the_factor():
    assert implausible(100e9, 100e9, "x") is None
    assert implausible(100e9 / PLAUSIBLE_FACTOR, 100e9, "x") is None
    warning = implausible(0.17e9, 115e9, "memory level l2 bandwidth")
    assert warning.startswith("WARNING: memory level l2 bandwidth measured 0.17 G/s")
    assert "template value kept" in warning
    assert implausible(100e9 * PLAUSIBLE_FACTOR * 1.01, 100e9, "x") is not None


def test_template_kept_provenance_names_the_template_source():
    kept = template_kept({"value": "192 GB/s", "derived": "32 B/cycle"}, "WARNING: w", "now")
    assert kept == {"value": "192 GB/s", "assumed": "template value kept: calibration now: "
                    "WARNING: w (template: derived: 32 B/cycle)"}


def _doc_with_bandwidths(gbs):
    doc = load_yaml_mapping(template_path(), what="template")
    for level, bw in zip(doc["memory"], gbs):
        level["bandwidth"] = {"value": f"{bw} GB/s", "measured": "test"}
        level["achievable_fraction"] = {"value": 1.0, "measured": "test"}
    return doc


def test_nearer_levels_are_raised_to_a_farther_levels_rate():
    doc, notes = _doc_with_bandwidths([31.8, 0.17, 4.6, 17.9]), []
    enforce_level_order(doc, notes)
    values = [lv["bandwidth"]["value"] for lv in doc["memory"]]
    assert values == ["31.8 GB/s", "17.9 GB/s", "17.9 GB/s", "17.9 GB/s"]
    assert "raised from 0.17 GB/s" in doc["memory"][1]["bandwidth"]["measured"]
    assert [n.split(":")[0] for n in notes] == ["memory level l3", "memory level l2"]


def test_ordered_levels_are_left_alone():
    doc, notes = _doc_with_bandwidths([400, 283, 180, 51]), []
    enforce_level_order(doc, notes)
    assert [lv["bandwidth"]["value"] for lv in doc["memory"]] == \
        ["400 GB/s", "283 GB/s", "180 GB/s", "51 GB/s"]
    assert notes == []


def _stream_rows(points):
    """(op, buffer MiB, level, GB/s) -> a calibration stream table (no per-call overhead)."""
    rows = []
    for op, mib, level, gbs in points:
        size = mib * 2**20
        moved = {"read": 1, "copy": 2, "add": 3}[op] * size
        rows.append({"op": op, "buffer_bytes": size, "bytes_moved": moved,
                     "best_s": moved / (gbs * 1e9), "best_threads": 2, "level": level})
    return pd.DataFrame(rows)


def _l3_and_dram_plans():
    from precsim.validation.calibrate import MemoryPlan
    return [MemoryPlan("l3", "cache", 480 * 2**20, "sysfs: L3", "2 threads"),
            MemoryPlan("dram", "dram", 24 * 2**30, "sysconf", "2 threads")]


def test_a_cache_level_that_holds_less_than_the_os_reports_gets_its_measured_capacity():
    """A VM reports its host's 480 MiB LLC; the 240 MiB streams run at the main-memory
    rate: the L3 rate comes from the 60 MiB points alone and the capacity is twice the
    largest buffer that streamed at it."""
    doc = load_yaml_mapping(template_path(), what="template")
    doc["memory"] = [lv for lv in doc["memory"] if lv["name"] in ("l3", "dram")]
    streams = _stream_rows([("read", 60, "l3", 57.0), ("copy", 60, "l3", 40.0),
                            ("read", 240, "l3", 23.0), ("copy", 240, "l3", 25.0),
                            ("read", 720, "dram", 22.0), ("copy", 720, "dram", 25.0)])
    notes = []
    fit_memory_levels(doc, _l3_and_dram_plans(), streams,
                      profile_from_mapping(doc, "template"), 0.0, "cpu", "now", notes)
    l3 = profile_from_mapping(doc, "fitted").memory_level("l3")
    assert l3.capacity_bytes == pytest.approx(120 * 2**20, rel=1e-3)
    # harmonic mean of the 60 MiB points only: 3 x 60 MiB over their times
    assert l3.achievable_bandwidth_bytes_per_s == pytest.approx(
        3 / (1 / 57e9 + 2 / 40e9), rel=1e-3)
    assert "ran at the main-memory rate" in doc["memory"][0]["capacity"]["measured"]
    assert any("capacity set to" in n for n in notes)


def test_a_cache_level_without_a_fall_off_keeps_the_reported_capacity():
    doc = load_yaml_mapping(template_path(), what="template")
    doc["memory"] = [lv for lv in doc["memory"] if lv["name"] in ("l3", "dram")]
    streams = _stream_rows([("read", 60, "l3", 57.0), ("read", 240, "l3", 50.0),
                            ("read", 720, "dram", 22.0)])
    fit_memory_levels(doc, _l3_and_dram_plans(), streams,
                      profile_from_mapping(doc, "template"), 0.0, "cpu", "now", [])
    l3 = profile_from_mapping(doc, "fitted").memory_level("l3")
    assert l3.capacity_bytes == pytest.approx(480 * 2**20, rel=1e-3)
    assert l3.achievable_bandwidth_bytes_per_s == pytest.approx(
        300 / (60 / 57e9 + 240 / 50e9), rel=1e-3)


# ---- plans ---------------------------------------------------------------------------------

def test_plans_are_held_out_from_calibration():
    for make in PLANS.values():
        assert_held_out(make())
    plan = quick_plan()
    clash = plan.__class__(**{**plan.__dict__,
                              "kernels": (matmul_case("fp32", 1024, 1024, 1024),)})
    with pytest.raises(AssertionError, match="calibration shapes"):
        assert_held_out(clash)
    assert (1024, 1024, 1024) in calibration_shapes(True)


def test_small_model_weights_exceed_half_the_llc_in_every_format():
    from precsim.simulator.cost import weight_bytes
    from precsim.validation.simulate import model_quant
    for fmt in ("fp32", "bf16", "w8a8", "w8a16", "w4a16", "ternary"):
        total = sum(weight_bytes(SMALL_MODEL, model_quant(fmt)).values())
        assert total > 16 * 2**20, fmt


def test_w8a8_transformer_adds_the_eager_quantisation_kernels_of_each_projection(
        monkeypatch):
    """13 eager kernels around every torch._int_mm (4 projections per layer and the LM
    head), each an element-wise kernel priced by the simulator."""
    from precsim.simulator.kernels import elementwise_cost
    from precsim.simulator.profile_loader import load_profile
    from precsim.validation.measure import ModelCase
    from precsim.validation.simulate import W8A8_EAGER, _w8a8_eager, simulate_model
    hw = as_hardware(load_profile("host"))
    one = _w8a8_eager(hw, 1, 1024, 4096)
    assert one.n_kernels == len(W8A8_EAGER) == 13
    # at one token every kernel is launch-bound: 13 launches
    assert one.time_s == pytest.approx(13 * hw.launch_s, rel=0.05)
    # in: 6 kernels over m x k elements; out: 4 over m x n; the per-token scale: 3
    big = _w8a8_eager(hw, 64, 1024, 4096)
    abs_pass = elementwise_cost(hw, 2.0 * 64 * 1024, 2.0 * 64 * 1024, 64 * 1024.0,
                                half_elements=2.0 * 64 * 1024)
    assert big.time_s > abs_pass.time_s
    case = ModelCase("decode", "w8a8", 1, 256)
    with_eager = simulate_model(case, hw, SMALL_MODEL)
    d = 1024  # SMALL_MODEL: d_model 1024, 16 heads of 64, 4 KV heads, d_ff 2816
    projections = [(1536, d), (d, d), (2 * 2816, d), (d, 2816)]
    expected = 4 * sum(_w8a8_eager(hw, 1, k, n).time_s for n, k in projections) \
        + _w8a8_eager(hw, 1, d, 32000).time_s
    import precsim.validation.simulate as vs
    monkeypatch.setattr(vs, "_w8a8_eager", lambda *a: type("Zero", (), {"time_s": 0.0}))
    assert with_eager - simulate_model(case, hw, SMALL_MODEL) == pytest.approx(expected)


def test_stream_sizes_span_every_level():
    caches = [96 * 1024, 2 * 2**20, 32 * 2**20]
    sizes = microbench.stream_sizes(caches, per_level=2)
    assert sizes == sorted(sizes) and all(s % 4096 == 0 for s in sizes)
    assert min(sizes) <= caches[0] and max(sizes) >= 4 * caches[-1]
    for lo, hi in zip([0] + caches, caches):
        assert any(lo < s <= hi for s in sizes)


def test_stream_sizes_stay_bounded_when_the_os_reports_a_huge_llc():
    """A VM reporting its host's whole 480 MiB LLC: main-memory buffers stay past the
    LLC (so they measure main memory) but within the bound, not 8 x 480 MiB."""
    caches = [96 * 1024, 4 * 2**20, 480 * 2**20]
    sizes = microbench.stream_sizes(caches, per_level=2)
    past = [s for s in sizes if s > caches[-1]]
    assert len(past) == 2
    # the reported LLC is sampled from 4x the L2 on, one point per doubling at least
    inside = [s for s in sizes if 4 * caches[1] <= s <= caches[-1] / 2]
    assert len(inside) >= 5 and all(b / a <= 2.0 + 1e-9 for a, b in zip(inside, inside[1:]))
    assert max(sizes) <= max(2 * caches[-1], microbench.MAX_STREAM_BYTES)
    assert microbench.main_memory_sizes(32 * 2**20) == (128 * 2**20, 256 * 2**20)


def test_cpu_caches_from_a_fake_sysfs(tmp_path):
    for cpu in (0, 1):
        for idx, (level, kind, size, shared) in enumerate(
                [(1, "Data", "48K", str(cpu)), (1, "Instruction", "32K", str(cpu)),
                 (2, "Unified", "1024K", str(cpu)), (3, "Unified", "32768K", "0-1")]):
            d = tmp_path / f"cpu{cpu}" / "cache" / f"index{idx}"
            d.mkdir(parents=True)
            for name, val in (("level", level), ("type", kind), ("size", size),
                              ("shared_cpu_list", shared)):
                (d / name).write_text(f"{val}\n")
    caches = torchenv.cpu_caches(tmp_path)
    assert [(c.level, c.size_bytes, c.instances) for c in caches] == \
        [(1, 48 * 1024, 2), (2, 2**20, 2), (3, 32 * 2**20, 1)]


# ---- comparison maths ----------------------------------------------------------------------

def test_errors_and_group_statistics_by_hand():
    table = pd.DataFrame({"name": list("abcd"), "format": ["x", "x", "x", "y"],
                          "kind": ["gemv"] * 4, "measured_s": [1.0, 2.0, 4.0, 1.0],
                          "simulated_s": [1.1, 1.0, 4.0, np.nan],
                          "spread": [0.02, 0.04, 0.0, 0.1],
                          "noise_pct": [1.0, 5.0, 3.0, 9.0]})
    out = compare.add_errors(table)
    assert out["pct_error"].tolist()[:3] == pytest.approx([10.0, -50.0, 0.0])
    assert np.isnan(out["pct_error"].iloc[3])
    stats = compare.error_stats(out, "format")
    row = stats.set_index("format").loc["x"]
    assert row["kernels"] == 3 and row["median_abs_pct_error"] == pytest.approx(10.0)
    assert row["p90_abs_pct_error"] == pytest.approx(42.0)  # 10 + 0.8 * (50 - 10)
    assert row["median_spread_pct"] == pytest.approx(2.0) and not row["within_target"]
    assert row["median_noise_pct"] == pytest.approx(3.0)
    assert compare.overall(out)["kernels"] == 3
    assert compare.overall(out)["noise_pct"] == pytest.approx(3.0)
    assert compare.scatter_png(out, "t")[:8] == b"\x89PNG\r\n\x1a\n"
    assert compare.overall(out.iloc[3:])["median_abs_pct_error"] is None


def test_simulated_kernel_is_the_simulator_gemm():
    profile = load_profile_file(template_path())
    case = matmul_case("w4a16", 1, 3072, 1024)
    direct = gemm_cost(profile, 1, 3072, 1024, formats.FORMATS["w4a16"].quant).time_s
    assert simulate_kernel(case, as_hardware(profile)) == pytest.approx(float(direct))


# ---- measurement and skip reporting ---------------------------------------------------------

def test_missing_kernel_skips_its_format_and_the_rest_runs(monkeypatch):
    def broken(self, torch_mod, w):
        raise RuntimeError("_weight_int4pack_mm_for_cpu is not implemented here")
    monkeypatch.setattr(formats.Linear, "_build_w4a16", broken)
    cases = [matmul_case("w4a16", 1, 128, 256), matmul_case("bf16", 1, 128, 256),
             ModelCase("decode", "w4a16", 1, 4)]
    jobs, skips = held_out_jobs(cases, "cpu", TINY, {c.name: "memory" for c in cases},
                                model_factory=lambda f: None)
    results = run_rounds(jobs, lambda: {"stream": 1.0, "gemm": 1.0},
                         lambda job: time_job(job, "cpu"), passes=1)
    table, more = held_out_table(jobs, results)
    assert more == []
    assert table["name"].tolist() == ["gemv/bf16/1x128x256"]
    assert len(skips) == 1 and "w4a16" in skips[0].what
    assert "not implemented here" in skips[0].reason


# ---- calibration and the CLI -----------------------------------------------------------------

@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "host-cal.yaml"
    cal = run_calibration("cpu", TINY, quick=True)
    write_profile(cal.profile_doc, path)
    return cal, path


@pytest.mark.slow
def test_calibration_writes_a_loadable_profile_with_measured_provenance(calibrated):
    cal, path = calibrated
    profile = load_profile_file(path)
    doc = profile.raw()
    # a measurement rejected as implausible keeps the template value and says so
    measured = {p for p, node in _cited_fields(doc) if node.get("measured") or
                "template value kept" in (node.get("assumed") or "")}
    for field in ("overheads.kernel_launch", "compute.fp32.peak", "compute.bf16.peak",
                  "compute.int8.peak", "compute.fp32.achievable_fraction",
                  "memory[dram].bandwidth", "memory[dram].achievable_fraction",
                  "fallbacks.ternary.convert_ops_per_element",
                  "compute.fp32.stream_fraction", "compute.bf16.stream_fraction",
                  "compute.int8.stream_fraction", "overheads.matmul_overlap",
                  "weight_only.int8.peak", "weight_only.int8.stream_fraction",
                  "weight_only.int4.peak", "weight_only.int4.stream_fraction",
                  "vector.rate", "attention.peak", "attention.convert_ops_per_element"):
        assert field in measured, field
    text = path.read_text()
    assert "torch.utils.benchmark" in text and "UTC" in text
    assert set(cal.streams["level"]) == {lv.name for lv in profile.memory}
    summary = cal.summary()
    assert set(summary["bandwidth_bytes_per_s"]) == {"l1", "l2", "l3", "dram"}
    assert summary["kernel_launch_s"] > 0


@pytest.mark.slow
def test_calibrate_cli_json_and_bad_output_name(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert main(["calibrate", "--smoke", "--device", "cpu", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and load_profile_file(out).name == "host"
    assert {"bandwidth_bytes_per_s", "achievable_ops_per_s", "kernel_launch_s"} <= set(result)
    assert main(["calibrate", "--smoke", "--out", str(tmp_path / "p.txt")]) == 2
    assert "expected a .yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_smoke_writes_every_output(tmp_path, capsys, calibrated):
    _, profile_path = calibrated
    out = tmp_path / "val"
    assert main(["validate", "--smoke", "--device", "cpu", "--profile", str(profile_path),
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kernels"] > 0
    assert 0 < result["median_abs_pct_error"] <= result["p90_abs_pct_error"]
    assert {"p90_abs_pct_error", "by_format", "transformer", "skipped"} <= set(result)
    for name in ("kernels.csv", "by_format.csv", "by_kind.csv", "scatter.png",
                 "summary.md", "profile.yaml"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "kernels.csv")
    assert {"name", "shape", "format", "measured_s", "simulated_s", "pct_error",
            "spread_pct"} <= set(table.columns)
    assert table["kind"].str.startswith("transformer").sum() == 3
    assert "Per format" in (out / "summary.md").read_text()
    load_profile_file(out / "profile.yaml")


def test_validate_without_torch_simulates_and_says_what_is_skipped(tmp_path, capsys,
                                                                   monkeypatch):
    def no_torch():
        raise ImportError("No module named 'torch'")
    monkeypatch.setattr(torchenv, "_import_torch", no_torch)
    out = tmp_path / "val"
    assert main(["validate", "--smoke", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["kernels"] == 0 and result["median_abs_pct_error"] is None
    assert "PyTorch is not installed" in captured.err
    assert any("PyTorch is not installed" in s["reason"] for s in result["skipped"])
    table = pd.read_csv(out / "kernels.csv")
    assert table["simulated_s"].gt(0).all() and table["measured_s"].isna().all()
    assert main(["calibrate", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "PyTorch is not installed" in capsys.readouterr().err


def test_validate_error_paths(tmp_path, capsys):
    assert main(["validate", "--smoke", "--profile", str(tmp_path / "none.yaml"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as info:  # the parser refuses it
        main(["validate", "--smoke", "--threads", "0", "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    assert "--threads: expected a whole number from 1" in capsys.readouterr().err


@pytest.mark.slow
def test_calibration_keeps_template_levels_the_os_does_not_report(monkeypatch):
    monkeypatch.setattr("precsim.validation.calibrate.cpu_caches", lambda: [])
    cal = run_calibration("cpu", TINY, quick=True)
    profile = cal.profile
    assert [lv.name for lv in profile.memory] == ["l1", "l2", "l3", "dram"]
    template = load_profile_file(template_path())
    l2 = profile.raw()["memory"][1]
    assert l2["capacity"] == template.raw()["memory"][1]["capacity"]
    # the template's bandwidth, unless raised to a farther level's measured rate
    kept = profile.memory_level("l2").bandwidth_bytes_per_s == \
        template.memory_level("l2").bandwidth_bytes_per_s
    assert kept or "raised from" in l2["bandwidth"]["measured"]
    assert "measured" in profile.raw()["memory"][-1]["bandwidth"]


def test_busy_machine_is_reported(monkeypatch):
    monkeypatch.setattr(torchenv.os, "getloadavg", lambda: (64.0, 1.0, 1.0))
    assert "busy" in torchenv.busy_note()
    monkeypatch.setattr(torchenv.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert torchenv.busy_note() is None


@pytest.mark.slow
def test_validate_calibrates_when_no_profile_is_given(tmp_path, capsys):
    out = tmp_path / "val"
    assert main(["validate", "--smoke", "--device", "cpu", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["calibration"]["profile"] == "host"
    assert any("element-wise kernels" in f for f in result["findings"])
    assert (out / "calibration_streams.csv").is_file()
    assert "measured" in load_profile_file(out / "profile.yaml").raw()["overheads"][
        "kernel_launch"]


def test_known_causes_name_each_off_case_once():
    from precsim.validation.run import known_causes
    table = pd.DataFrame({
        "name": ["norm-rms_norm/fp32/64x4096", "norm-rms_norm/bf16/64x4096",
                 "gemv/w4a16-deq/1x256x256", "elementwise-silu/fp32/256x256"],
        "kind": ["norm", "norm", "gemv", "elementwise"],
        "format": ["fp32", "bf16", "w4a16-deq", "fp32"],
        "op": ["rms_norm", "rms_norm", "", "silu"], "pct_error": [-20.0, -25.0, -30.0, -40.0],
        "abs_pct_error": [20.0, 25.0, 30.0, 40.0]})
    notes = known_causes(table)
    assert len(notes) == 2  # rms_norm once (first case), the deq chain; fp32 silu unknown
    assert notes[0].startswith("norm-rms_norm/fp32/64x4096 (-20%)")
    assert "chain_hit_share" in notes[1]
    assert known_causes(table.assign(abs_pct_error=5.0)) == []


def test_a_core_held_by_another_process_means_measuring_on_one_thread(monkeypatch):
    monkeypatch.setattr(torchenv.os, "cpu_count", lambda: 2)
    pick = torchenv.threads_for_free_cpus
    assert pick(2, 1.95, 0.1) == (2, None)  # idle: both cores
    threads, note = pick(2, 1.0, 0.2)  # a busy loop on one core, just started
    assert threads == 1 and "1.0 of 2 CPUs free" in note and "one core" in note
    threads, note = pick(2, 1.9, 1.4)  # a momentary gap in a busy minute
    assert threads == 1 and "load average 1.4" in note
    assert pick(2, None, None) == (2, None)  # nothing known: as planned
    assert pick(1, 0.2, 5.0) == (1, None)  # one thread asked for already
    monkeypatch.setattr(torchenv.os, "cpu_count", lambda: 8)
    assert pick(2, 6.5, 3.0) == (2, None)  # six other cores take the load


def test_free_cpus_from_proc_stat_deltas(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    samples = iter(["cpu  100 0 100 700 100 0 0 0 0 0\n",  # 1000 jiffies, 800 idle
                    "cpu  150 0 150 1000 100 0 0 0 0 0\n"])  # +400, +300 idle
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: next(samples)
                        if self == stat else real_read(self, *a, **k))
    monkeypatch.setattr(torchenv.os, "cpu_count", lambda: 2)
    assert torchenv.free_cpus(0.0, stat) == pytest.approx(2 * 300 / 400)
    assert torchenv.free_cpus(0.0, tmp_path / "missing") is None


def test_cold_rotation_and_drift_reference_clear_the_reported_llc():
    from precsim.validation.kernels import reference_stream_bytes, rotation_bytes
    assert rotation_bytes(32 * 2**20) == 96 * 2**20  # 3x a 32 MiB L3
    assert rotation_bytes(480 * 2**20) == 512 * 2**20  # bounded on a VM's 480 MiB report
    assert rotation_bytes(None) == 96 * 2**20
    assert reference_stream_bytes(480 * 2**20) == 256 * 2**20  # past its 33-63 MB share
    assert reference_stream_bytes(32 * 2**20) == 64 * 2**20  # as before the rounds
