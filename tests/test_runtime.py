"""precsim.simulator.runtime: shipped runtimes, citations, the reference identity, launch
and dequantisation effects (hand-computed), refusals and bad YAML (exit 2)."""
import json

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.codesign.cli import main
from precsim.simulator.cost import decode_step_cost, simulate
from precsim.simulator.errors import InputError
from precsim.simulator.kernels import gemm_cost
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import parse_quant
from precsim.simulator.runtime import (BLOCK_KERNELS, apply_runtime, builtin_runtime_dir,
                                       list_runtimes, load_runtime, load_runtime_file)

PROVENANCE = ("source", "derived", "measured", "assumed")


def _cited(node, path=""):
    """(path, mapping) of every cited number or kernel statement of a raw document."""
    if isinstance(node, dict) and ("value" in node or "kernel" in node):
        yield path, node
    elif isinstance(node, dict):
        for key, val in node.items():
            yield from _cited(val, f"{path}.{key}" if path else key)


def _write(tmp_path, doc, name="rt.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100-sxm")


def test_shipped_runtimes_load_under_their_file_names_reference_first():
    names = [r.name for r in list_runtimes()]
    assert names[0] == "reference"
    assert {"reference", "vllm"} <= set(names)
    for path in builtin_runtime_dir().glob("*.yaml"):
        assert load_runtime_file(path).name == path.stem


@pytest.mark.parametrize("path", sorted(builtin_runtime_dir().glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_runtime_number_and_kernel_statement_is_cited(path):
    doc = yaml.safe_load(path.read_text())
    cited = list(_cited(doc))
    for where, node in cited:
        assert any(str(node.get(k, "")).strip() for k in PROVENANCE), where
        for tag in [t for k in PROVENANCE for t in str(node.get(k, "")).split("[")[1:]]:
            assert any(s.startswith(f"[{tag.split(']')[0]}]") for s in doc["sources"]), \
                f"{path.name}: {where} cites [{tag.split(']')[0]}], not in sources"
    if doc["name"] != "reference":
        assert cited and doc["sources"]


def test_reference_returns_the_profile_itself(h100):
    run = apply_runtime(None, h100, "W4A16-g128")
    assert run.profile is h100 and run.fused_dequant and run.flash
    assert run.runtime.name == "reference" and run.runtime.is_reference


def _graphs_doc(graphs: bool, per_kernel=None):
    doc = {"name": "test-graphs" if graphs else "test-eager", "description": "test",
           "sources": ["[t] test"], "applies_to": ["gpu"], "launch": {"graphs": graphs}}
    if per_kernel:
        doc["launch"]["per_kernel"] = {"value": per_kernel, "assumed": "test [t]"}
    return doc


def test_graphs_cut_batch1_decode_launch_overhead_by_kernels_times_gap(tmp_path, h100):
    graphs = apply_runtime(_write(tmp_path, _graphs_doc(True, "0.5 us"), "g.yaml"), h100)
    eager = apply_runtime(_write(tmp_path, _graphs_doc(False), "e.yaml"), h100)
    with_g = decode_step_cost(graphs.profile, "llama-3-8b", "W16A16", 1, 512)
    without = decode_step_cost(eager.profile, "llama-3-8b", "W16A16", 1, 512)
    # Llama-3-8B: 32 blocks x 9 kernels + embedding, final norm, lm_head, sampling = 292
    assert with_g.n_kernels == without.n_kernels == 32 * 9 + 4
    assert with_g.overhead_time_s == pytest.approx(292 * 0.5e-6, rel=1e-12)
    assert without.overhead_time_s == pytest.approx(292 * 3.4e-6, rel=1e-12)  # h100's gap
    assert without.time_s - with_g.time_s == pytest.approx(292 * 2.9e-6, rel=1e-9)


def test_kernels_per_layer_scales_the_launch_cost(tmp_path, h100):
    doc = _graphs_doc(True, "0.9 us")
    doc["fusion"] = {"kernels_per_layer": {"value": 6, "assumed": "test [t]"}}
    run = apply_runtime(_write(tmp_path, doc), h100)
    assert run.profile.kernel_launch_s == pytest.approx(0.9e-6 * 6 / BLOCK_KERNELS)
    assert any("launch cost only" in note for note in run.approximations)


def _dequant_doc(mode: str):
    return {"name": "test-dq", "description": "test", "sources": ["[t] test"],
            "applies_to": ["gpu"], "kernels": {"int4": {"kernel": mode, "source": "[t]"}}}


def test_fused_int4_gemv_reads_int4_bytes_dequantise_then_gemm_writes_and_reads_fp16(
        tmp_path, h100):
    n = k = 4096
    fmt = "W4A16-g128"  # 4 bits + a 16-bit scale (and zero) per 128 weights
    wb = parse_quant(fmt).effective_weight_bits / 8.0
    fused = apply_runtime(_write(tmp_path, _dequant_doc("fused")), h100, fmt)
    split = apply_runtime(_write(tmp_path, _dequant_doc("dequantise_then_gemm")), h100, fmt)
    assert fused.fused_dequant and not split.fused_dequant
    kwargs = dict(group="mlp", weight_home=2, act_home=2, out_home=2)
    a = gemm_cost(fused.profile, 1, n, k, fmt, fused_dequant=fused.fused_dequant, **kwargs)
    b = gemm_cost(split.profile, 1, n, k, fmt, fused_dequant=split.fused_dequant, **kwargs)
    acts, out = k * 2.0, n * 2.0
    assert wb > 0.5
    assert float(a.bytes_moved["hbm"]) == pytest.approx(k * n * wb + acts + out)
    # a dequantisation kernel reads the packed weights (+ scales) and writes bf16, which
    # the GEMM then reads: wb + 2 + 2 bytes per weight
    assert float(b.bytes_moved["hbm"]) == pytest.approx(
        k * n * wb + k * n * 2 + k * n * 2 + acts + out)
    assert float(b.n_kernels) == 2 * float(a.n_kernels)


def test_unsupported_format_is_refused_with_the_reason(tmp_path, h100, capsys):
    path = _write(tmp_path, _dequant_doc("unsupported"))
    with pytest.raises(InputError, match=r"cannot run int4 \(weights of W4A16-g128\) on "
                                         r"h100-sxm"):
        apply_runtime(path, h100, "W4A16-g128")
    assert apply_runtime(path, h100, "BF16").profile is h100  # nothing else to change
    rc = main(["simulate", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant",
               "W4A16-g128", "--runtime", str(path)])
    assert rc == 2 and "cannot run int4" in capsys.readouterr().err


def test_a_runtime_refuses_a_device_kind_it_does_not_run_on(h100, capsys):
    rc = main(["simulate", "--profile", "host", "--model", "llama-3.2-1b",
               "--runtime", "vllm"])
    assert rc == 2 and "runtime vllm runs on gpu; profile host is a cpu" in \
        capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("launch", {"graphs": True}, "launch: graphs: true needs per_kernel"),
    ("memory_reserve", {"value": 1.5, "source": "x"}, "memory_reserve.value"),
    ("kernels", {"int4": {"kernel": "magic", "source": "x"}}, "kernels.int4.kernel"),
    ("kernels", {"int4": {"kernel": "fused"}}, "every number needs provenance"),
    ("fusion", {"kernel_per_layer": {"value": 3, "source": "x"}},
     "fusion.kernel_per_layer: unknown field (did you mean 'kernels_per_layer'?)"),
])
def test_bad_runtime_yaml_exits_2_naming_file_and_field(tmp_path, capsys, field, value,
                                                         message):
    doc = {"name": "bad", "description": "bad", "sources": ["[x] x"], "applies_to": ["gpu"],
           field: value}
    path = _write(tmp_path, doc, "bad.yaml")
    rc = main(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
               "--runtime", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and str(path) in err and message in err, err


def test_unknown_runtime_name_suggests(capsys):
    with pytest.raises(InputError, match="did you mean vllm"):
        load_runtime("vlm")


def test_efficiency_above_the_hardware_ceiling_is_refused(tmp_path, h100):
    doc = {"name": "fast", "description": "x", "sources": ["[t] t"], "applies_to": ["gpu"],
           "efficiency": {"memory_bandwidth": {"value": 1.5, "assumed": "[t]"}}}
    with pytest.raises(InputError, match="efficiency.memory_bandwidth 1.5 takes "
                                         "memory.hbm.achievable_fraction of h100-sxm"):
        apply_runtime(_write(tmp_path, doc), h100)
    doc["efficiency"]["memory_bandwidth"]["value"] = 0.5
    run = apply_runtime(_write(tmp_path, doc), h100)
    assert run.profile.main_memory.achievable_fraction.value == pytest.approx(0.35)
    assert "runtime fast efficiency.memory_bandwidth" in \
        run.profile.main_memory.achievable_fraction.derived


def test_simulate_json_names_the_runtime_and_its_switches(capsys):
    rc = main(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--runtime",
               "vllm", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["request"]["runtime"] == "vllm"
    assert out["totals"]["runtime"] == {"name": "vllm", "flash": True, "fused_dequant": True}


def test_runtime_result_matches_simulating_the_applied_profile(h100):
    run = apply_runtime("vllm", h100, "W4A16-g128")
    from precsim.codesign.commands.simulate import run_request
    _, _, via = run_request(h100, "llama-3.2-1b", "W4A16-g128", 2, 64, 8, runtime="vllm")
    direct = simulate(run.profile, "llama-3.2-1b", "W4A16-g128", 2, 64, 8)
    assert np.isclose(via.totals["tpot_s"], direct.totals["tpot_s"], rtol=1e-12)


def test_report_runtime_comparison_rows_per_runtime_with_reasons(h100):
    from types import SimpleNamespace

    from precsim.codesign.runtime_table import runtime_comparison
    plan = SimpleNamespace(
        optimum=SimpleNamespace(N=1e9, serve_format="W4A16-g128"),
        problem=SimpleNamespace(deploy_profile=h100, model_options={},
                                workload=SimpleNamespace(batch=1, prompt_len=128,
                                                         output_len=16)))
    results = SimpleNamespace(plans={"h100-sxm": plan}, resolved=SimpleNamespace(
        runtimes=tuple(load_runtime(n) for n in ("reference", "vllm", "executorch"))))
    table = runtime_comparison(results).set_index("runtime")
    assert list(table.index) == ["reference", "vllm", "executorch"]
    assert table.loc["vllm", "tpot_s"] < table.loc["reference", "tpot_s"]  # CUDA graphs
    assert table.loc["reference", "reason"] == ""
    assert "runs on cpu" in table.loc["executorch", "reason"]
    assert np.isnan(table.loc["executorch", "tpot_s"])


def test_study_runtimes_are_checked_naming_the_field(tmp_path):
    from precsim.codesign.study import default_study_path, load_study, resolve_study
    doc = yaml.safe_load(default_study_path().read_text())
    doc["runtimes"] = ["reference", "no-such-runtime"]
    path = _write(tmp_path, doc, "study.yaml")
    study, source = load_study(str(path))
    with pytest.raises(InputError, match=r"study.yaml: runtimes\[1\]: --runtime: unknown"):
        resolve_study(study, source)
    doc["runtimes"] = ["reference", "vllm"]
    study, source = load_study(str(_write(tmp_path, doc, "study.yaml")))
    assert [r.name for r in resolve_study(study, source).runtimes] == ["reference", "vllm"]


def test_serve_size_train_name_the_runtime_and_refuse_what_it_cannot_run(capsys):
    out = json.loads(_run_ok(capsys, ["serve", "--profile", "h100-sxm", "--model",
                                      "llama-3.2-1b", "--quant", "W4A16-g128", "--qps", "2",
                                      "--requests", "20", "--runtime", "llama-cpp",
                                      "--json"]))
    assert out["runtime"] == "llama-cpp"
    assert any("unfused attention not modelled" in n for n in out["approximations"])
    rc = main(["size", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--quant", "FP8",
               "--qps", "2", "--slo-ttft", "1 s", "--slo-tpot", "100 ms", "--runtime",
               "llama-cpp"])
    assert rc == 2 and "cannot run fp8_e4m3" in capsys.readouterr().err
    out = json.loads(_run_ok(capsys, ["train", "--profile", "h100-sxm", "--model", "1e8",
                                      "--global-batch", "65536", "--runtime",
                                      "torch-compile", "--json"]))
    assert out["request"]["runtime"] == "torch-compile"
    rc = main(["train", "--profile", "h100-sxm", "--model", "1e8", "--global-batch",
               "65536", "--runtime", "vllm"])
    assert rc == 2 and "--runtime vllm: an inference stack" in capsys.readouterr().err


def _run_ok(capsys, argv) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_runtimes_list_and_show(capsys):
    listed = json.loads(_run_ok(capsys, ["runtimes", "list", "--json"]))
    assert [r["name"] for r in listed][0] == "reference"
    assert {"torch-compile", "llama-cpp", "tensorrt-llm", "executorch", "vllm"} <= \
        {r["name"] for r in listed}
    text = _run_ok(capsys, ["runtimes", "show", "torch-compile"])
    assert "launch.per_kernel: 630 ns" in text and "[ocannl]" in text


def test_stream_efficiency_gives_a_fallback_type_its_own_weight_only_kernel(h100):
    run = apply_runtime("torch-compile", h100, "W4A16-g64")
    kernel = run.profile.weight_only["int4"]
    assert kernel.exclusive and kernel.stream_fraction.value == pytest.approx(0.517)
    assert kernel.achievable_ops_per_s == h100.compute["bf16"].achievable_ops_per_s
    assert "kernels.int4.stream_efficiency" in kernel.stream_fraction.derived
    # the GEMV's HBM time: the weights streamed at 0.517 x the derated HBM rate, the
    # activation and output vectors at the derated rate
    n = k = 4096
    cost = gemm_cost(run.profile, 1, n, k, "W4A16-g64", weight_home=2, act_home=2,
                     out_home=2)
    hbm = 3.35e12 * 0.70 * 0.833
    wb = parse_quant("W4A16-g64").effective_weight_bits / 8.0
    assert float(cost.memory_time_s) == pytest.approx(
        k * n * wb / (hbm * 0.517) + (2 * k + 2 * n) / hbm, rel=1e-9)


def test_stream_efficiency_only_for_kernels_that_read_the_weights(tmp_path, capsys):
    doc = _dequant_doc("dequantise_then_gemm")
    doc["kernels"]["int4"]["stream_efficiency"] = {"value": 0.5, "assumed": "[t]"}
    rc = main(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
               "--runtime", str(_write(tmp_path, doc))])
    err = capsys.readouterr().err
    assert rc == 2 and "kernels.int4: stream_efficiency is for native or fused" in err, err


def test_emulated_drops_the_native_engine_for_a_wider_fallback(tmp_path, h100):
    doc = _dequant_doc("emulated")
    doc["kernels"] = {"fp8_e4m3": {"kernel": "emulated", "source": "[t]"}}
    run = apply_runtime(_write(tmp_path, doc), h100, "FP8")
    assert not run.profile.native("fp8_e4m3") and h100.native("fp8_e4m3")
    rule = run.profile.fallbacks["fp8_e4m3"]
    assert rule.execute_as == "bf16" and "runtime test-dq" in rule.convert_ops_per_element.assumed
    native = simulate(h100, "llama-3.2-1b", "FP8", 64, 512, 2)
    emulated = simulate(run.profile, "llama-3.2-1b", "FP8", 64, 512, 2)
    assert emulated.totals["ttft_s"] > native.totals["ttft_s"]  # compute-bound prefill


def test_kernel_else_dequantise_keeps_a_profile_weight_only_kernel(tmp_path, h100):
    host = load_profile("host")
    doc = _dequant_doc("kernel_else_dequantise")
    doc["applies_to"] = ["gpu", "cpu"]
    path = _write(tmp_path, doc)
    on_host = apply_runtime(path, host, "W4A16-g128")
    assert "int4" in on_host.profile.weight_only and on_host.profile is host
    assert apply_runtime(path, h100, "W4A16-g128").fused_dequant is False
    assert on_host.fused_dequant is True


def test_memory_reserve_replaces_the_profile_runtime_memory(h100):
    l4 = load_profile("l4")
    run = apply_runtime("vllm", l4)
    assert run.profile.overheads.runtime_memory.value == 0.1
    assert "runtime vllm memory_reserve" in run.profile.overheads.runtime_memory.derived


@settings(max_examples=15, deadline=None)
@given(gap_us=st.floats(min_value=0.05, max_value=20.0),
       profile=st.sampled_from(["h100-sxm", "a100-sxm-80gb", "l4", "rtx-4090"]))
def test_decode_launch_overhead_is_kernels_times_the_runtime_gap(tmp_path_factory, gap_us,
                                                                 profile):
    path = _write(tmp_path_factory.mktemp("rt"), _graphs_doc(True, f"{gap_us!r} us"))
    run = apply_runtime(path, load_profile(profile))
    step = decode_step_cost(run.profile, "llama-3.2-1b", "W16A16", 1, 256)
    assert float(step.overhead_time_s) == pytest.approx(
        float(step.n_kernels) * gap_us * 1e-6, rel=1e-9)


@pytest.mark.parametrize("runtime", [p.stem for p in sorted(builtin_runtime_dir().glob("*.yaml"))])
def test_every_shipped_runtime_applies_or_refuses_cleanly_on_every_profile(runtime):
    from precsim.simulator.profile_loader import list_profiles
    for profile in list_profiles():
        for fmt in ("BF16", "W4A16-g128", "FP8", "W8A8"):
            try:
                run = apply_runtime(runtime, profile, fmt)
            except InputError as exc:
                assert runtime in str(exc) and profile.name in str(exc)
                continue
            step = decode_step_cost(run.profile, "llama-3.2-1b", fmt, 1, 64,
                                    fused_dequant=run.fused_dequant, flash=run.flash)
            assert np.isfinite(float(step.time_s)) and float(step.time_s) > 0


def test_a_runtime_without_measured_efficiencies_says_so():
    import precsim
    uncalibrated = precsim.simulate("a100-sxm-80gb", "llama-2-7b", runtime="tensorrt-llm")
    assert any("tensorrt-llm states no measured efficiencies" in note
               for note in uncalibrated.totals["approximations"])
    fitted = precsim.simulate("h100-sxm", "llama-3-8b", runtime="torch-compile")
    assert not any("no measured efficiencies" in note
                   for note in fitted.totals.get("approximations", []))


def test_stream_efficiency_scales_both_few_row_gemm_shares_and_keeps_their_rows(h100):
    prof = h100.with_overrides({
        "compute.int8.gemm_stream_fraction": {"value": 0.5, "rows": 4, "assumed": "test"},
        "compute.int8.gemm_stream_wide": {"value": 0.8, "rows": 64, "assumed": "test"}})
    spec = apply_runtime("torch-compile", prof, "W8A16").profile.compute["int8"]
    assert spec.gemm_stream_points == pytest.approx((4.0, 0.5 * 0.844, 64.0, 0.8 * 0.844))


def test_reference_runtime_execution_is_the_dataclass_default():
    """`apply_runtime` of the reference runtime builds its RuntimeExecution without the
    dataclass __init__: the same fields, values and order as the constructor's."""
    from precsim.simulator.profile_loader import load_profile
    from precsim.simulator.runtime import RuntimeExecution, apply_runtime, load_runtime
    profile = load_profile("a100-sxm-80gb")
    got = apply_runtime(None, profile, "W16A16")
    want = RuntimeExecution(load_runtime(None), profile)
    assert type(got) is RuntimeExecution and got == want
    assert list(got.__dict__.items()) == list(want.__dict__.items())
