"""precsim.simulator.profiles: shipped profiles, provenance, schema rules, overrides, lookup."""
import copy
import pickle

import pytest
import yaml

from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import (builtin_profile_dir, list_profiles, load_profile,
                                              load_profile_file)
from precsim.simulator.profiles import (DTYPES, FLOAT_DTYPES, CitedComputeRate, HardwareProfile,
                                        profile_from_mapping, rate_unit)

SHIPPED = ("h100-sxm", "a100-sxm-80gb", "rtx-4090", "l4", "apple-m2", "snapdragon-8-gen3",
           "ternary-accel")
PROVENANCE = ("source", "derived", "measured", "assumed")


@pytest.fixture(scope="module")
def profiles() -> dict[str, HardwareProfile]:
    return {p.name: p for p in list_profiles()}


@pytest.fixture
def h100_doc() -> dict:
    return yaml.safe_load((builtin_profile_dir() / "h100-sxm.yaml").read_text())


def _cited_nodes(node, path=""):
    """(path, mapping) for every cited number in a raw profile document."""
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for key, val in node.items():
            yield from _cited_nodes(val, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _cited_nodes(item, f"{path}[{i}]")


# ---- shipped profiles ----------------------------------------------------------------

def test_every_shipped_profile_loads_under_its_file_name(profiles):
    assert set(SHIPPED) <= set(profiles)
    for path in builtin_profile_dir().glob("*.yaml"):
        assert load_profile_file(path).name == path.stem


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_has_provenance(profiles, name):
    doc = profiles[name].raw()
    cited = list(_cited_nodes(doc))
    assert len(cited) > 15
    for path, node in cited:
        assert any(str(node.get(k, "")).strip() for k in PROVENANCE), path
        assert isinstance(node["value"], (str, int, float)), path
    assert doc["sources"]


@pytest.mark.parametrize("name", SHIPPED)
def test_citation_keys_used_are_listed_under_sources(profiles, name):
    doc = profiles[name].raw()
    listed = {s.split("]")[0] + "]" for s in doc["sources"] if s.startswith("[")}
    text = yaml.safe_dump({k: v for k, v in doc.items() if k != "sources"})
    used = {"[" + t.split("]")[0] + "]" for t in text.split("[")[1:]
            if t.split("]")[0].replace("-", "").replace("_", "").isalnum()
            and not t.split("]")[0].isdigit()}
    assert used <= listed | {"[S]", "[V]", "[D]", "[M]"}, used - listed


@pytest.mark.parametrize("name", SHIPPED + ("host",))
def test_every_dtype_is_native_or_has_a_fallback(profiles, name):
    assert profiles[name].uncovered_dtypes() == []


@pytest.mark.parametrize("name", SHIPPED + ("host",))
def test_memory_is_ordered_nearest_first(profiles, name):
    levels = profiles[name].memory
    assert levels[-1].kind == "dram"
    assert all(level.kind != "dram" for level in levels[:-1])
    caps = [lv.capacity_bytes for lv in levels]
    bws = [lv.bandwidth_bytes_per_s for lv in levels]
    assert caps == sorted(caps) and bws == sorted(bws, reverse=True)


def test_key_datacenter_numbers(profiles):
    h100, a100 = profiles["h100-sxm"], profiles["a100-sxm-80gb"]
    assert h100.compute["bf16"].peak_ops_per_s == 989.4e12
    assert h100.main_memory.bandwidth_bytes_per_s == 3.35e12
    assert h100.main_memory.energy_per_byte_j == pytest.approx(3.97e-12 * 8)
    assert h100.interconnect.device_link_bytes_per_s == 450e9  # per direction
    assert a100.compute["int4"].peak_ops_per_s == 1248e12 and a100.native("int4")
    assert not a100.native("fp8_e4m3")
    assert a100.fallbacks["fp8_e4m3"].execute_as in ("bf16", "fp16")
    assert a100.main_memory.bandwidth_bytes_per_s == 2.039e12
    assert a100.tdp_w == 400


def test_rtx_4090_uses_half_rate_fp32_accumulate_peaks(profiles):
    gpu = profiles["rtx-4090"]
    assert gpu.compute["bf16"].peak_ops_per_s == 165.2e12  # not the fp16-accumulate 330.3
    assert gpu.compute["fp16"].peak_ops_per_s == 165.2e12
    assert gpu.compute["fp8_e4m3"].peak_ops_per_s == 330.3e12
    assert gpu.compute["int8"].peak_ops_per_s == 660.6e12
    assert gpu.compute["int4"].peak_ops_per_s == 1321.2e12
    assert gpu.main_memory.bandwidth_bytes_per_s == 1008e9


def test_l4_dense_is_half_the_sparse_datasheet(profiles):
    l4 = profiles["l4"]
    assert l4.compute["bf16"].peak_ops_per_s == 242e12 / 2
    assert l4.compute["fp8_e4m3"].peak_ops_per_s == 485e12 / 2
    assert l4.native("fp8_e5m2") and not l4.native("int4")
    assert (l4.main_memory.bandwidth_bytes_per_s, l4.tdp_w) == (300e9, 72)


@pytest.mark.parametrize("name, sms, flop_per_clk", [
    ("h100-sxm", 132, 4096), ("a100-sxm-80gb", 108, 2048),
    ("rtx-4090", 128, 512), ("l4", 58, 1024)])
def test_tensor_peak_is_sms_times_rate_times_clock(profiles, name, sms, flop_per_clk):
    p = profiles[name]
    assert sms * flop_per_clk * p.clock.value == pytest.approx(
        p.compute["bf16"].peak_ops_per_s, rel=2e-3)


def test_mobile_socs(profiles):
    m2, sd = profiles["apple-m2"], profiles["snapdragon-8-gen3"]
    assert m2.kind == sd.kind == "mobile_soc"
    assert m2.main_memory.bandwidth_bytes_per_s == 100e9
    assert m2.compute["int8"].peak_ops_per_s == 15.8e12
    assert "precision" in m2.compute["int8"].peak.assumed  # Apple states none: said so
    assert sd.main_memory.bandwidth_bytes_per_s == 9600e6 * 64 / 8
    assert "9600 MT/s" in sd.main_memory.bandwidth.derived
    for unit in ("gpu", "npu"):  # Qualcomm publishes no GPU or NPU compute figure
        for spec in sd.compute_units[unit].compute.values():
            assert spec.peak.assumed and not spec.peak.source
    for p in (m2, sd):  # CPU peaks are derived from the cores (docs/soc.md)
        assert all(s.peak.derived for s in p.compute_units["cpu"].compute.values())
    for p in (m2, sd):
        assert p.power.tdp.assumed and p.power.static.assumed


def test_ternary_accel_is_hypothetical_and_grounded(profiles):
    acc = profiles["ternary-accel"]
    assert acc.hypothetical and acc.native("ternary") and acc.native("binary")
    assert acc.native("int8") and acc.native("fp16") and acc.native("fp32")
    assert acc.memory[0].kind == "sram" and acc.memory[0].capacity_bytes >= 64 * 2**20
    tern, int8 = acc.compute["ternary"], acc.compute["int8"]
    assert tern.energy_per_op_j == pytest.approx(int8.energy_per_op_j * 67 / 405, rel=1e-3)
    sources = " ".join(acc.raw()["sources"])
    for paper in ("Slim-Llama", "TerEffic", "BitNet b1.58", "BrainTTA"):
        assert paper in sources
    assert all(not p.hypothetical for n, p in profiles.items() if n != "ternary-accel")


def test_achievable_is_peak_times_fraction(profiles):
    h100 = profiles["h100-sxm"]
    assert h100.achievable_ops_per_s("bf16") == pytest.approx(989.4e12 * 0.803)
    hbm = h100.memory_level("hbm")
    assert hbm.achievable_bandwidth_bytes_per_s == pytest.approx(3.35e12 * 0.70)
    with pytest.raises(InputError, match="int4 is not native"):
        h100.achievable_ops_per_s("int4")
    with pytest.raises(InputError, match="no memory level 'l3'"):
        h100.memory_level("l3")


def test_rate_unit():
    assert [rate_unit(d) for d in ("bf16", "fp8_e4m3", "int8", "ternary")] == [
        "FLOP/s", "FLOP/s", "OP/s", "OP/s"]
    assert set(FLOAT_DTYPES) < set(DTYPES)


# ---- schema rules --------------------------------------------------------------------

def _error(doc) -> str:
    with pytest.raises(InputError) as info:
        profile_from_mapping(doc, source="test.yaml")
    return str(info.value)


def test_fallback_must_target_a_native_type(h100_doc):
    h100_doc["fallbacks"]["int4"]["execute_as"] = "int4"
    assert "fallbacks.int4.execute_as: int4 is not native" in _error(h100_doc)


def test_fallback_for_a_native_type_is_refused(h100_doc):
    h100_doc["fallbacks"]["bf16"] = copy.deepcopy(h100_doc["fallbacks"]["int4"])
    assert "fallbacks.bf16: bf16 is native" in _error(h100_doc)


def test_static_power_above_tdp(h100_doc):
    h100_doc["power"]["static"]["value"] = "800 W"
    assert "need static <= active < tdp, got static 800.0 W" in _error(h100_doc)


def test_memory_names_unique_and_dram_last(h100_doc):
    doc = copy.deepcopy(h100_doc)
    doc["memory"][1]["name"] = "smem"
    assert "names must be unique" in _error(doc)
    h100_doc["memory"].reverse()
    assert "last memory level must be main memory" in _error(h100_doc)


def test_blank_provenance_is_refused(h100_doc):
    h100_doc["memory"][2]["bandwidth"] = {"value": "3.35 TB/s", "source": "  "}
    assert "memory[hbm].bandwidth: every number needs provenance" in _error(h100_doc)


def test_hypothetical_must_be_a_real_boolean(h100_doc):
    h100_doc["hypothetical"] = "no"
    assert "hypothetical: Input should be a valid boolean" in _error(h100_doc)


def test_unknown_dtype_key(h100_doc):
    h100_doc["compute"]["fp6"] = h100_doc["compute"]["fp16"]
    assert "compute.fp6" in _error(h100_doc)


def test_fraction_above_one(h100_doc):
    h100_doc["compute"]["bf16"]["achievable_fraction"]["value"] = 1.2
    assert "compute.bf16.achievable_fraction.value: Input should be less than or equal to 1" \
        in _error(h100_doc)


def test_uncovered_dtypes_reported(h100_doc):
    del h100_doc["fallbacks"]["binary"], h100_doc["fallbacks"]["ternary"]
    assert profile_from_mapping(h100_doc, "x").uncovered_dtypes() == ["ternary", "binary"]


def test_optional_memory_latency_and_persistence(h100_doc):
    plain = profile_from_mapping(copy.deepcopy(h100_doc), "x").memory_level("hbm")
    assert plain.latency is None and plain.latency_s is None and plain.persistent is None
    hbm = h100_doc["memory"][2]
    hbm["latency"] = {"value": "600 ns", "measured": "pointer chase, test"}
    hbm["persistent"] = True
    level = profile_from_mapping(h100_doc, "x").memory_level("hbm")
    assert level.latency_s == pytest.approx(6e-7) and level.persistent is True
    assert "measured: pointer chase" in level.latency.provenance


@pytest.mark.parametrize("field, value, message", [
    ("latency", {"value": "600 ns"}, "memory[hbm].latency: every number needs provenance"),
    ("latency", {"value": "3 GB", "assumed": "x"}, "memory[hbm].latency.value"),
    ("persistent", "yes", "memory[hbm].persistent: Input should be a valid boolean")])
def test_bad_memory_latency_or_persistence(h100_doc, field, value, message):
    h100_doc["memory"][2][field] = value
    assert message in _error(h100_doc)


def test_many_errors_are_capped(h100_doc):
    for i in range(30):
        h100_doc[f"junk{i}"] = 1
    lines = _error(h100_doc).splitlines()
    assert len(lines) == 13 and lines[-1].endswith("and 18 more errors")


# ---- pickling (process pools, Dask) --------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_profiles_pickle_round_trip(profiles, name):
    """Issue: the cited-quantity classes were built with type() under names the module
    did not define, so pickle could not find them and no profile could be sent to a
    worker process."""
    profile = profiles[name]
    back = pickle.loads(pickle.dumps(profile))
    assert back == profile
    assert back.model_dump() == profile.model_dump()
    assert back.raw() == profile.raw() and back.path == profile.path
    assert type(back.compute[next(iter(back.compute))].peak) is CitedComputeRate


def test_overridden_profile_pickles_and_keeps_its_document(profiles):
    faster = profiles["h100-sxm"].with_overrides({"memory.hbm.bandwidth": "6.7 TB/s"},
                                                 name="h100-fast")
    back = pickle.loads(pickle.dumps(faster))
    assert back.main_memory.bandwidth_bytes_per_s == 6.7e12
    assert back.raw() == faster.raw()
    again = back.with_overrides({"power.static": "80 W"})  # the document travelled along
    assert again.static_power_w == 80.0 and again.name == "h100-fast"


# ---- overrides -----------------------------------------------------------------------

def test_with_no_overrides_round_trips(profiles):
    h100 = profiles["h100-sxm"]
    same = h100.with_overrides({})
    assert same.model_dump() == h100.model_dump()
    assert same.raw() == h100.raw()


def test_override_a_cited_number_marks_it_assumed(profiles):
    h100 = profiles["h100-sxm"]
    fast = h100.with_overrides({"memory.hbm.bandwidth": "6.7 TB/s"}, name="h100-fast")
    assert fast.name == "h100-fast"
    assert fast.main_memory.bandwidth_bytes_per_s == 6.7e12
    level = fast.raw()["memory"][2]["bandwidth"]
    assert level["assumed"].startswith("what-if override (was 3.35 TB/s; source: [hopper]")
    assert "source" not in level
    assert h100.main_memory.bandwidth_bytes_per_s == 3.35e12  # original untouched
    via_value = h100.with_overrides({"memory.hbm.bandwidth.value": "6.7 TB/s"})
    assert via_value.raw()["memory"][2]["bandwidth"] == level
    by_index = h100.with_overrides({"memory.2.bandwidth": "6.7 TB/s"})
    assert by_index.main_memory.bandwidth_bytes_per_s == 6.7e12


def test_override_makes_a_type_native(profiles):
    h100 = profiles["h100-sxm"]
    int8 = h100.raw()["compute"]["int8"]
    with pytest.raises(InputError, match="fallbacks.int4: int4 is native"):
        h100.with_overrides({"compute.int4": int8})
    native = h100.with_overrides({"compute.int4": int8, "fallbacks.int4": None})
    assert native.native("int4") and "int4" not in native.fallbacks


def test_override_adds_a_missing_optional_number(profiles):
    m2 = profiles["apple-m2"]
    linked = m2.with_overrides({"interconnect.host_link.value": "10 GB/s"})
    assert linked.interconnect.host_link_bytes_per_s == 10e9
    assert linked.interconnect.host_link.assumed.startswith("what-if override (not in")


@pytest.mark.parametrize("overrides, expected", [
    ({"memory.hbm3.bandwidth": "1 TB/s"}, "override memory.hbm3.bandwidth: no item 'hbm3'"),
    ({"name.x": "y"}, "override name.x: name is not a mapping or list"),
    ({"memory.hbm.bandwdith": "1 TB/s"}, "unknown field (did you mean 'bandwidth'?)"),
    ({"memory.hbm.bandwidth": "1 GHz"}, "is a frequency quantity; expected bandwidth"),
    ({"memory.0": None}, "cannot remove a list item"),
])
def test_bad_override(profiles, overrides, expected):
    with pytest.raises(InputError) as info:
        profiles["h100-sxm"].with_overrides(overrides)
    assert expected in str(info.value)


# ---- lookup --------------------------------------------------------------------------

def test_load_by_name_path_and_instance(profiles):
    h100 = load_profile("h100-sxm")
    assert h100.model_dump() == profiles["h100-sxm"].model_dump()
    by_path = load_profile(str(builtin_profile_dir() / "h100-sxm.yaml"))
    assert by_path.name == "h100-sxm"
    assert load_profile(h100) is h100


@pytest.mark.parametrize("name, suggestion", [("h100-sx", "h100-sxm"), ("H100-SXM", "h100-sxm"),
                                              ("a100", "a100-sxm-80gb"), ("rtx4090", "rtx-4090")])
def test_unknown_name_suggests_close_matches(name, suggestion):
    with pytest.raises(InputError) as info:
        load_profile(name)
    assert f"unknown profile {name!r}; did you mean" in str(info.value)
    assert suggestion in str(info.value).split("(known")[0]


def test_user_profile_shadows_builtin_consistently(tmp_path, h100_doc, monkeypatch):
    h100_doc["description"] = "user copy"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(h100_doc))  # file name != profile name
    assert load_profile("h100-sxm", [tmp_path]).description == "user copy"
    listed = {p.name: p for p in list_profiles([tmp_path])}
    assert listed["h100-sxm"].description == "user copy"
    monkeypatch.setenv("PRECSIM_PROFILE_PATH", str(tmp_path))
    assert load_profile("h100-sxm").description == "user copy"


def test_missing_profile_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="profile path does not exist"):
        list_profiles([tmp_path / "nope"])
