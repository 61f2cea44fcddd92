"""precsim.codesign.variants: the --vary grammar and re-validated profile variants."""
import pytest

from precsim.codesign.variants import parse_vary, profile_variants
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import load_profile


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100-sxm")


def test_scale_and_absolute_values(h100):
    variants = profile_variants(h100, ["memory.hbm.bandwidth=0.5x,2x,6.7 TB/s"])
    labels = [label for label, _ in variants]
    assert labels == ["as-is", "memory.hbm.bandwidth=0.5x", "memory.hbm.bandwidth=2x",
                      "memory.hbm.bandwidth=6.7 TB/s"]
    bw = [p.main_memory.bandwidth_bytes_per_s for _, p in variants]
    assert bw == pytest.approx([3.35e12, 1.675e12, 6.7e12, 6.7e12])
    raw = variants[2][1].raw()["memory"][2]["bandwidth"]
    assert "what-if" in raw["derived"] and raw["value"] == "6.7 TB/s"


def test_fraction_energy_and_value_suffix(h100):
    (_, base), (_, frac), (_, energy) = profile_variants(
        h100, ["memory.hbm.achievable_fraction.value=0.9,as-is"]) + profile_variants(
        h100, ["memory.hbm.access_energy=0.5x"])[1:]
    assert frac.main_memory.achievable_fraction.value == 0.9
    assert energy.main_memory.energy_per_byte_j == pytest.approx(
        base.main_memory.energy_per_byte_j / 2)


def test_native_engine_derived_from_the_wider_type(h100):
    (_, base), (_, native), (_, fast), (_, given) = profile_variants(
        h100, ["compute.int4=native,native:2x,native:4000 TOP/s"])
    assert not base.native("int4") and "int4" in base.fallbacks
    assert native.native("int4") and "int4" not in native.fallbacks
    int8 = h100.compute["int8"]
    spec = native.compute["int4"]
    assert spec.peak_ops_per_s == pytest.approx(2 * int8.peak_ops_per_s)
    assert spec.energy_per_op_j == pytest.approx(int8.energy_per_op_j / 2)
    assert spec.engine == int8.engine and spec.achievable_fraction.value == 0.709
    assert fast.compute["int4"].peak_ops_per_s == pytest.approx(4 * int8.peak_ops_per_s)
    assert given.compute["int4"].peak_ops_per_s == pytest.approx(4e15)
    fp4 = profile_variants(h100, ["compute.fp4_e2m1=native"])[1][1].compute["fp4_e2m1"]
    assert fp4.peak_ops_per_s == pytest.approx(2 * h100.compute["fp8_e4m3"].peak_ops_per_s)


def test_cartesian_product(h100):
    variants = profile_variants(h100, ["memory.hbm.bandwidth=as-is,2x",
                                       "compute.int4=as-is,native"])
    assert [label for label, _ in variants] == [
        "as-is", "compute.int4=native", "memory.hbm.bandwidth=2x",
        "memory.hbm.bandwidth=2x compute.int4=native"]
    both = variants[-1][1]
    assert both.native("int4") and both.main_memory.bandwidth_bytes_per_s == 6.7e12


@pytest.mark.parametrize("spec,message", [
    ("memory.hbm.bandwith=2x", "did you mean memory.hbm.bandwidth"),
    ("memory.hbm.bandwidth", "expected FIELD=VALUE"),
    ("memory.hbm.bandwidth=2x,", "expected FIELD=VALUE"),
    ("compute.int3=native", "unknown data type 'int3'"),
    ("compute.int4=fast", "expected as-is, native"),
    ("memory.hbm.bandwidth=3 TFLOP/s", "is a compute_rate quantity; expected bandwidth"),
    ("memory.hbm.achievable_fraction=2x", "less than or equal to 1"),
])
def test_errors_name_the_vary_argument(h100, spec, message):
    with pytest.raises(InputError, match="--vary") as info:
        profile_variants(h100, [spec])
    assert message in str(info.value)


def test_native_only_for_non_native_types(h100):
    with pytest.raises(InputError, match="int8 is already native on h100-sxm"):
        parse_vary("compute.int8=native", h100)


def test_a_native_engine_switched_off_runs_through_a_fallback():
    """`compute.fp8_e4m3=emulated` on h100-sxm: fp8 no longer native, a bf16 fallback
    with stated provenance, and FP8 prefill becomes slower; non-native is refused."""
    import precsim
    from precsim.codesign.variants import profile_variants
    from precsim.simulator.errors import InputError
    from precsim.simulator.profile_loader import load_profile
    h100 = load_profile("h100-sxm")
    off = profile_variants(h100, ["compute.fp8_e4m3=emulated"])[-1][1]
    assert not off.native("fp8_e4m3") and off.fallbacks["fp8_e4m3"].execute_as == "bf16"
    assert "what-if" in off.fallbacks["fp8_e4m3"].convert_ops_per_element.assumed
    slow = precsim.simulate(off, "llama-3-8b", "FP8", batch=64).totals["ttft_s"]
    fast = precsim.simulate(h100, "llama-3-8b", "FP8", batch=64).totals["ttft_s"]
    assert slow > fast
    with pytest.raises(InputError, match="int4 is not native on h100-sxm"):
        profile_variants(h100, ["compute.int4=emulated"])
