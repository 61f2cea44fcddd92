"""Compute units of a SoC (simulator.compute_units): selection, views, splits, errors."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import precsim
from precsim.codesign.cli import main
from precsim.codesign.variants import parse_vary, profile_variants
from precsim.simulator.compute_units import (phase_profiles, place_units, select_unit,
                                             unit_record)
from precsim.simulator.cost import simulate
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.profiles import profile_from_mapping
from precsim.simulator.quant import parse_quant
from precsim.simulator.runtime import runtime_from_mapping

PHONE = load_profile("snapdragon-8-gen3")
M2 = load_profile("apple-m2")
H100 = load_profile("h100-sxm")


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- defaults --------------------------------------------------------------------------

@pytest.mark.parametrize("profile, quant, unit", [
    # snapdragon: llama.cpp-style weight-only and q8-block formats on the CPU, float on
    # the Adreno GPU, int8 activations on the Hexagon NPU, ternary (not taken by QNN)
    # on the CPU
    (PHONE, "W4A16-g128", "cpu"), (PHONE, "W8A16", "cpu"), (PHONE, "Q4_0", "cpu"),
    (PHONE, "BF16", "gpu"), (PHONE, "FP8", "gpu"), (PHONE, "W8A8", "npu"),
    (PHONE, "W4A8-g128", "npu"), (PHONE, "BITNET", "cpu"),
    # M2: MLX / llama.cpp Metal run everything but int8 activations on the GPU
    (M2, "W4A16-g128", "gpu"), (M2, "Q4_0", "gpu"), (M2, "BF16", "gpu"),
    (M2, "W8A8", "npu"), (M2, "BITNET", "gpu")])
def test_default_unit_per_format(profile, quant, unit):
    choice = select_unit(profile, quant)
    assert choice.unit == unit
    assert choice.reason.startswith(f"default for {parse_quant(quant).name}: ")


def test_requested_and_runtime_preference():
    assert select_unit(PHONE, "W4A16-g128", requested="npu").unit == "npu"
    assert select_unit(PHONE, "W4A16-g128", runtime_preference="gpu").unit == "gpu"
    assert select_unit(PHONE, "W4A16-g128", "npu", runtime_preference="gpu").unit == "npu"
    # a preference the SoC lacks, or a unit that cannot run the format: the default, said
    lacking = select_unit(PHONE, "W4A16-g128", runtime_preference="tpu")
    assert lacking.unit == "cpu" and "prefers tpu, which this SoC does not have" in \
        lacking.reason
    refused = select_unit(PHONE, "BF16", runtime_preference="cpu")
    assert refused.unit == "cpu"  # the CPU takes bf16
    fp8 = select_unit(PHONE, "FP8", runtime_preference="cpu")
    assert fp8.unit == "gpu" and "prefers cpu, which cannot run it" in fp8.reason
    assert select_unit(H100, "W4A16-g128", runtime_preference="cpu") is None


# ---- a profile without units -------------------------------------------------------------

def test_profile_without_units_is_unchanged(capsys):
    q = parse_quant("W4A16-g128")
    assert phase_profiles(H100, q, "prefill") is H100
    assert place_units(H100) is H100
    assert unit_record(H100, q) is None
    code, out, _ = _cli(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
                         "--quant", "W4A16-g128", "--json"], capsys)
    assert code == 0 and "unit" not in json.loads(out)["request"]
    code, _, err = _cli(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
                         "--unit", "cpu"], capsys)
    assert code == 2 and "--unit cpu: profile h100-sxm has no compute_units" in err


# ---- views -------------------------------------------------------------------------------

def test_unit_view_has_the_units_compute_and_the_shared_memory_and_power():
    for name, unit in PHONE.compute_units.items():
        view = PHONE.for_unit(name)
        assert view is PHONE.for_unit(name)  # memoised: one object per unit
        assert not view.compute_units and set(view.compute) == set(unit.compute)
        assert view.memory == PHONE.memory and view.power == PHONE.power
        assert view.compute == unit.compute
    # the CPU's launch overhead is its own, the others keep the SoC's
    assert PHONE.for_unit("cpu").kernel_launch_s == pytest.approx(5e-6)
    assert PHONE.for_unit("npu").kernel_launch_s == PHONE.kernel_launch_s
    # the top-level compute is the union, first unit listing a type wins
    assert PHONE.compute["fp32"] == PHONE.compute_units["gpu"].compute["fp32"]
    assert PHONE.compute["int8"] == PHONE.compute_units["npu"].compute["int8"]


def _phone_doc():
    return PHONE.raw()


def test_dram_fraction_of_a_unit():
    doc = _phone_doc()
    doc["compute_units"]["cpu"]["dram_fraction"] = {"value": 0.5, "assumed": "test"}
    p = profile_from_mapping(doc, "test")
    assert p.for_unit("cpu").main_memory.achievable_fraction.value == 0.5
    assert p.for_unit("gpu").main_memory.achievable_fraction.value == 0.75


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.__setitem__("compute", {}), "compute_units.<unit>.compute"),
    (lambda d: d["default_unit"].pop("float"), "missing float"),
    (lambda d: d["default_unit"]["float"].__setitem__("units", ["tpu"]),
     "default_unit.float: unknown unit 'tpu'"),
    (lambda d: d["compute_units"]["npu"]["fallbacks"]["int4"].__setitem__(
        "execute_as", "bf16"), "compute_units.npu.fallbacks.int4: bf16 is not native on "
                               "unit npu")])
def test_bad_units_are_input_errors(edit, message):
    doc = _phone_doc()
    edit(doc)
    with pytest.raises(InputError, match=re.escape(message)):
        profile_from_mapping(doc, "phone.yaml")


# ---- split prefill / decode ---------------------------------------------------------------

def test_prefill_on_npu_decode_on_cpu_is_the_sum_of_the_unit_runs():
    args = ("llama-3.2-1b", parse_quant("W4A16-g128"), 2, 256, 33)
    steps = 2 * 32  # batch x (gen - 1) decode tokens
    npu = simulate(place_units(PHONE, "npu"), *args).totals
    cpu = simulate(place_units(PHONE, "cpu"), *args).totals
    split = simulate(place_units(PHONE, prefill_unit="npu", decode_unit="cpu"), *args).totals
    assert split["ttft_s"] == pytest.approx(npu["ttft_s"], rel=1e-12)
    assert split["tpot_s"] == pytest.approx(cpu["tpot_s"], rel=1e-12)
    assert split["e2e_latency_s"] == pytest.approx(
        npu["ttft_s"] + cpu["e2e_latency_s"] - cpu["ttft_s"], rel=1e-12)
    prefill_j = npu["energy_j"] - npu["decode_energy_per_token_j"] * steps
    decode_j = cpu["decode_energy_per_token_j"] * steps
    assert split["energy_j"] == pytest.approx(prefill_j + decode_j, rel=1e-12)
    # the default (cpu for W4A16) is the cpu run
    assert simulate(PHONE, *args).totals["ttft_s"] == pytest.approx(cpu["ttft_s"], rel=1e-12)


def test_split_via_api_and_cli_agree(capsys):
    api = precsim.simulate("snapdragon-8-gen3", "llama-3.2-1b", "W4A16-g128", batch=1,
                           prompt=128, gen=16, prefill_unit="npu", decode_unit="cpu")
    code, out, _ = _cli(["simulate", "--profile", "snapdragon-8-gen3", "--model",
                         "llama-3.2-1b", "--quant", "W4A16-g128", "--prompt", "128", "--gen",
                         "16", "--prefill-unit", "npu", "--decode-unit", "cpu", "--json"],
                        capsys)
    doc = json.loads(out)
    assert code == 0
    for key in ("ttft_s", "tpot_s", "energy_j"):
        assert doc["totals"][key] == pytest.approx(api.totals[key], rel=1e-12)
    assert doc["request"]["unit"] == {"prefill": {"unit": "npu", "reason": "requested"},
                                      "decode": {"unit": "cpu", "reason": "requested"}}


def test_vectorised_formats_match_scalar_calls():
    quants = np.array([parse_quant(q) for q in ("W4A16-g128", "W8A8", "BF16")], dtype=object)
    many = simulate(PHONE, "llama-3.2-1b", quants, 1, 128, 8).totals
    for i, q in enumerate(quants):
        one = simulate(PHONE, "llama-3.2-1b", q, 1, 128, 8).totals
        assert many["ttft_s"][i] == pytest.approx(one["ttft_s"], rel=1e-12)
        assert many["energy_j"][i] == pytest.approx(one["energy_j"], rel=1e-12)


# ---- errors at the CLI ---------------------------------------------------------------------

def test_format_a_unit_cannot_run_exits_2(capsys):
    code, _, err = _cli(["simulate", "--profile", "snapdragon-8-gen3", "--model",
                         "llama-3.2-1b", "--quant", "FP8", "--unit", "cpu"], capsys)
    assert code == 2 and "Traceback" not in err
    assert ("--unit cpu: unit cpu of snapdragon-8-gen3 cannot run FP8 (needs fp8_e4m3); "
            "it runs fp32, bf16, fp16, int8") in err
    code, _, err = _cli(["serve", "--profile", "snapdragon-8-gen3", "--model",
                         "llama-3.2-1b", "--quant", "BF16", "--qps", "1", "--requests", "5",
                         "--decode-unit", "npu", "--prefill-unit", "tpu"], capsys)
    assert code == 2
    assert "--prefill-unit tpu: profile snapdragon-8-gen3 has no unit 'tpu' " \
           "(compute_units: gpu, npu, cpu)" in err


def test_simulate_table_names_the_unit_and_why(capsys):
    code, out, _ = _cli(["simulate", "--profile", "snapdragon-8-gen3", "--model",
                         "llama-3.2-1b", "--quant", "W4A16-g128", "--prompt", "64", "--gen",
                         "4"], capsys)
    assert code == 0
    assert "on snapdragon-8-gen3 on cpu (default for W4A16-g128: llama.cpp-style runtimes" \
        in out.splitlines()[0]


# ---- what-if on a SoC ----------------------------------------------------------------------

def test_whatif_compute_of_a_unit():
    with pytest.raises(InputError, match=r"vary compute_units.<unit>.compute.int4"):
        parse_vary("compute.int4=native", PHONE)
    (label, variant), = profile_variants(PHONE, ["compute_units.npu.compute.int4=native"])[1:]
    npu = variant.for_unit("npu")
    assert "int4" in npu.compute and "int4" not in npu.fallbacks
    # derived from the npu's int8 engine: twice its peak
    assert npu.compute["int4"].peak_ops_per_s == pytest.approx(
        2 * PHONE.for_unit("npu").compute["int8"].peak_ops_per_s)
    assert "int4" not in variant.for_unit("cpu").compute


# ---- the CPU peaks are the derivation they state --------------------------------------------

_EXPR = re.compile(r"((?:[\d.]+|[()x+ ])+)= ([\d.]+) ([GT])(?:FLOP|OP)/s")


@pytest.mark.parametrize("profile, dtype", [(PHONE, "fp32"), (PHONE, "fp16"),
                                            (PHONE, "int8"), (M2, "fp32"), (M2, "int8")])
def test_cpu_peak_matches_its_derivation(profile, dtype):
    """`(4 x 4 x 2) x 3.3 + (2 x 4 x 2) x (3 x 3.2 + 2 x 3.0) = 355.2 GFLOP/s`: the
    arithmetic gives the stated result and the stated result is the value."""
    peak = profile.compute_units["cpu"].compute[dtype].peak
    expr, stated, prefix = _EXPR.findall(peak.derived)[-1]
    ghz = eval(expr.replace("x", "*"), {"__builtins__": {}})  # digits, x, +, ( ) only
    assert ghz == pytest.approx(float(stated), rel=1e-9)
    scale = 1e9 if prefix == "G" else 1e12
    assert peak.value == pytest.approx(float(stated) * scale, rel=1e-9)


def test_serve_names_the_units_and_runs_prefill_on_the_requested_one(capsys):
    argv = ["serve", "--profile", "snapdragon-8-gen3", "--model", "qwen2.5-0.5b", "--quant",
            "W4A16-g128", "--qps", "0.5", "--requests", "10", "--prompt-tokens", "256",
            "--output-tokens", "16", "--json"]
    code, out, _ = _cli(argv, capsys)
    default = json.loads(out)
    code_split, out, _ = _cli(argv + ["--prefill-unit", "npu"], capsys)
    split = json.loads(out)
    assert code == code_split == 0
    assert default["unit"]["prefill"]["unit"] == default["unit"]["decode"]["unit"] == "cpu"
    assert split["unit"]["prefill"] == {"unit": "npu", "reason": "requested"}
    assert split["unit"]["decode"]["unit"] == "cpu"
    assert split["ttft_p50_s"] < default["ttft_p50_s"]  # the NPU's prefill is faster


def test_a_runtime_prefers_a_unit_and_runs_on_the_units_it_applies_to(capsys):
    """llama-cpp prefers the gpu, the cpu on snapdragon-8-gen3 (Android builds: CPU
    backend, runtimes/llama-cpp.yaml [llamacpp-android]); applies_to cpu, gpu."""
    argv = ["simulate", "--profile", "snapdragon-8-gen3", "--model", "llama-3.2-1b",
            "--quant", "Q4_0", "--prompt", "64", "--gen", "4", "--runtime", "llama-cpp",
            "--json"]
    code, out, _ = _cli(argv, capsys)
    units = json.loads(out)["request"]["unit"]
    assert code == 0
    assert units["prefill"] == units["decode"] == {"unit": "cpu",
                                                   "reason": "the runtime's preferred unit"}
    code, out, _ = _cli(argv + ["--unit", "gpu"], capsys)
    assert code == 0 and json.loads(out)["request"]["unit"]["decode"] == {
        "unit": "gpu", "reason": "requested"}
    code, _, err = _cli(argv + ["--decode-unit", "npu"], capsys)
    assert code == 2 and "runtime llama-cpp runs on cpu, gpu, not on the npu" in err
    code, out, _ = _cli([a if a != "snapdragon-8-gen3" else "apple-m2" for a in argv], capsys)
    assert code == 0 and json.loads(out)["request"]["unit"]["prefill"] == {
        "unit": "gpu", "reason": "the runtime's preferred unit"}


def test_preferred_unit_per_profile_schema():
    """One unit, or {default: UNIT, <profile name>: UNIT}: any profile name (user
    profiles too), but every value a device kind; errors name the file and field."""
    base = {"name": "x", "description": "d", "applies_to": ["cpu", "gpu"]}
    rt = runtime_from_mapping({**base, "preferred_unit": {"default": "gpu",
                                                          "my-phone": "cpu"}}, "x.yaml")
    assert rt.unit_preference("my-phone") == "cpu"
    assert rt.unit_preference("apple-m2") == "gpu"
    assert runtime_from_mapping({**base, "preferred_unit": {"my-phone": "npu"}},
                                "x.yaml").unit_preference("apple-m2") is None
    assert runtime_from_mapping({**base, "preferred_unit": "npu"},
                                "x.yaml").unit_preference("anything") == "npu"
    with pytest.raises(InputError, match=r"x\.yaml.*preferred_unit"):
        runtime_from_mapping({**base, "preferred_unit": {"default": "gpu",
                                                         "my-phone": "dsp"}}, "x.yaml")
    with pytest.raises(InputError, match=r"x\.yaml.*preferred_unit"):
        runtime_from_mapping({**base, "preferred_unit": {"Bad Name": "cpu"}}, "x.yaml")


def test_runtimes_show_states_the_per_profile_preference(capsys):
    code, out, _ = _cli(["runtimes", "show", "llama-cpp"], capsys)
    assert code == 0
    assert "runs on: cpu, gpu (prefers the gpu; the cpu on snapdragon-8-gen3)" in out
    code, out, _ = _cli(["runtimes", "show", "llama-cpp", "--json"], capsys)
    assert json.loads(out)["preferred_unit"] == {"default": "gpu",
                                                 "snapdragon-8-gen3": "cpu"}
