"""precsim.simulator.runtime: shipped runtimes, citations, the reference identity, launch
and dequantisation effects (hand-computed), refusals and bad YAML (exit 2)."""
import json

import numpy as np
import pytest
import yaml

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
