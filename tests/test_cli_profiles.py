"""`precsim profiles list|show|check`: bad inputs (exit 2, short message), output, --json."""
import json
import tracemalloc

import pytest
import yaml

from precsim.codesign.cli import main
from precsim.simulator.io import MAX_YAML_BYTES
from precsim.simulator.profile_loader import builtin_profile_dir

SHIPPED = ("h100-sxm", "a100-sxm-80gb", "rtx-4090", "l4", "apple-m2", "snapdragon-8-gen3",
           "ternary-accel")
LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
       for i in range(8)]) + "\n"


@pytest.fixture
def h100_doc() -> dict:
    return yaml.safe_load((builtin_profile_dir() / "h100-sxm.yaml").read_text())


def run(capsys, *argv):
    code = main(["profiles", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _edit(doc, edit):
    """Apply one edit: (dotted path with memory names, new value or DELETE)."""
    path, value = edit
    parts, node = path.split("."), doc
    for part in parts[:-1]:
        node = next(m for m in node if m["name"] == part) if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value


DELETE = object()

# (id, edit of the valid h100 document, text expected in the message): each is one
# bad-input case of issue 2; the message must name the file, the field and what is expected.
BAD_FIELDS = [
    ("unknown-key", ("memory.hbm.bandwdith", {"value": "1 TB/s", "source": "x"}),
     "memory[hbm].bandwdith: unknown field (did you mean 'bandwidth'?)"),
    ("missing-required", ("memory.hbm.capacity", DELETE),
     "memory[hbm].capacity: required field is missing"),
    ("missing-top-level", ("power", DELETE), "power: required field is missing"),
    ("zero-bandwidth", ("memory.hbm.bandwidth.value", "0 TB/s"),
     "memory[hbm].bandwidth.value: Input should be greater than 0"),
    ("negative-bandwidth", ("memory.l2.bandwidth.value", "-10 TB/s"),
     "memory[l2].bandwidth.value: Input should be greater than 0"),
    ("zero-capacity", ("memory.smem.capacity.value", "0 MiB"),
     "memory[smem].capacity.value: Input should be greater than 0"),
    ("negative-capacity", ("memory.hbm.capacity.value", "-80 GB"),
     "memory[hbm].capacity.value: Input should be greater than 0"),
    ("zero-peak", ("compute.bf16.peak.value", "0 TFLOP/s"),
     "compute.bf16.peak.value: Input should be greater than 0"),
    ("negative-peak", ("compute.int8.peak.value", "-1 TOP/s"),
     "compute.int8.peak.value: Input should be greater than 0"),
    ("bare-number", ("memory.hbm.bandwidth.value", 3.35),
     "memory[hbm].bandwidth.value: bare number 3.35: write it with a unit of bandwidth"),
    ("bare-number-string", ("compute.bf16.peak.value", "989.4"),
     "compute.bf16.peak.value: bare number '989.4': add a unit of compute_rate"),
    ("wrong-dimension", ("memory.hbm.bandwidth.value", "3.35 GHz"),
     "memory[hbm].bandwidth.value: '3.35 GHz' is a frequency quantity; expected bandwidth"),
    ("wrong-dimension-energy", ("power.tdp.value", "700 J"),
     "power.tdp.value: '700 J' is a energy quantity; expected power"),
    ("unknown-unit", ("compute.bf16.peak.value", "989.4 TFLOPS"),
     "compute.bf16.peak.value: unknown unit 'TFLOPS' in '989.4 TFLOPS'; did you mean 'TFLOP/s'?"),
    ("no-provenance", ("memory.hbm.bandwidth", {"value": "3.35 TB/s"}),
     "memory[hbm].bandwidth: every number needs provenance"),
    ("bad-enum", ("memory.hbm.kind", "hbm"), "memory[hbm].kind: Input should be 'sram', 'cache' or 'dram'"),
]


@pytest.mark.parametrize("edit, expected", [(e, x) for _, e, x in BAD_FIELDS],
                         ids=[i for i, _, _ in BAD_FIELDS])
def test_bad_field_exits_2_naming_file_field_and_expectation(tmp_path, capsys, h100_doc,
                                                             edit, expected):
    _edit(h100_doc, edit)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(h100_doc, sort_keys=False))
    code, out, err = run(capsys, "check", str(path))
    assert code == 2 and out == ""
    assert f"{path}: {expected}" in err
    _assert_short(err)


BAD_FILES = [
    ("malformed", "name: h100\ncompute: {bf16: [1, 2}\n", "malformed YAML (line 2"),
    ("not-a-mapping", "- name: h100\n- kind: gpu\n", "top level is a list; expected a mapping"),
    ("scalar", "42\n", "top level is a int; expected a mapping"),
    ("empty", "", "hardware profile is empty; expected a mapping of fields"),
    ("python-tag", "name: !!python/object/apply:os.system ['echo pwned']\n",
     "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' not allowed"),
    ("billion-laughs", LAUGHS, "anchors and aliases (&name / *name) are not allowed"),
    ("deep-nesting", "a: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 64"),
    ("huge-integer", "a: " + "9" * 100_000 + "\n", "invalid YAML value"),
    ("duplicate-key", "name: a\nkind: gpu\nname: b\n", "duplicate key 'name'"),
    ("oversized", "a: '" + "x" * MAX_YAML_BYTES + "'\n", f"hardware profile is larger than {MAX_YAML_BYTES} bytes"),
]


@pytest.mark.parametrize("text, expected", [(t, x) for _, t, x in BAD_FILES],
                         ids=[i for i, _, _ in BAD_FILES])
def test_bad_file_exits_2_in_bounded_memory(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    tracemalloc.start()
    try:
        code, out, err = run(capsys, "check", str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and out == ""
    assert f"{path}: {expected}" in err
    _assert_short(err)
    assert peak < 64 * 2**20  # a 1 MiB file may be held a few times over, never more


def _assert_short(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith(("error ", "precsim: error: "))
    lines = err.strip().splitlines()
    assert len(lines) <= 13 and all(len(line) < 400 for line in lines)


def test_missing_file_and_directory(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: hardware profile not found" in err
    code, _, err = run(capsys, "check", str(tmp_path))  # an empty folder
    assert code == 2 and "got a directory" in err


def test_check_every_shipped_file_and_a_folder(capsys):
    files = [str(p) for p in sorted(builtin_profile_dir().glob("*.yaml"))]
    code, out, err = run(capsys, "check", *files)
    assert code == 0 and err == ""
    assert all(f"ok    {f}" in out for f in files)
    code, out, _ = run(capsys, "check", str(builtin_profile_dir()))
    assert code == 0 and out.count("ok    ") == len(files)


def test_check_json_mixes_good_and_bad(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n")
    good = str(builtin_profile_dir() / "l4.yaml")
    code, out, err = run(capsys, "check", good, str(bad), "--json")
    assert code == 2 and err == ""
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(r["ok"], r["name"]) for r in doc["files"]] == [(True, "l4"), (False, None)]
    assert "top level is a list" in doc["files"][1]["error"]


def test_check_warns_about_uncovered_types(tmp_path, capsys, h100_doc):
    del h100_doc["fallbacks"]["ternary"]
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump(h100_doc))
    code, out, err = run(capsys, "check", str(path))
    assert code == 0 and "ok    " in out
    assert "no engine and no fallback for ternary" in err


# ---- list / show ---------------------------------------------------------------------

def test_list_shows_flops_for_floats_and_ops_for_integers(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in SHIPPED:
        assert name in out
    h100 = next(line for line in out.splitlines() if line.strip().startswith("h100-sxm"))
    assert "989.4 TFLOP/s" in h100 and "1.979 PFLOP/s" in h100 and "1.979 POP/s" in h100
    assert "as bf16" in h100  # int4 is not native on H100
    tern = next(line for line in out.splitlines() if line.strip().startswith("ternary-accel"))
    assert "(hypothetical)" in tern and "65.5 TOP/s" in tern


def test_list_json(capsys):
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["profiles"]}
    assert set(SHIPPED) <= set(rows)
    h100 = rows["h100-sxm"]
    assert h100["peak_bf16_flop_per_s"] == 989.4e12
    assert h100["peak_ops_per_s"]["int8"] == 1978.9e12
    assert h100["rate_units"] == {d: ("OP/s" if d == "int8" else "FLOP/s")
                                  for d in h100["peak_ops_per_s"]}
    assert h100["fallbacks"]["int4"] == "bf16"
    assert rows["apple-m2"]["peak_bf16_flop_per_s"] is None


def test_show_prints_every_field_with_units_and_sources(capsys):
    code, out, _ = run(capsys, "show", "h100-sxm")
    assert code == 0
    assert "compute.bf16.peak: 989.4 TFLOP/s\n    [source: [hopper] BF16 tensor" in out
    assert "memory[hbm].bandwidth: 3.35 TB/s\n    [source: [hopper]" in out
    assert "memory[hbm].access_energy: 3.97 pJ/bit" in out
    assert "compute.bf16.achievable_fraction: 0.803 of peak = 794.5 TFLOP/s" in out
    assert "memory[hbm].achievable_fraction: 0.7 of peak = 2.345 TB/s" in out
    assert "fallbacks.int4.convert_ops_per_element: 4 ops/element" in out
    assert "power.tdp: 700 W\n    [source:" in out
    assert "sources:\n  - [hopper]" in out
    doc = yaml.safe_load((builtin_profile_dir() / "h100-sxm.yaml").read_text())
    for path, node in _cited(doc):  # every cited number, with its value and provenance
        assert f"{path}: {node['value']}" in out
        prov = next(node[k] for k in ("source", "derived", "measured", "assumed") if k in node)
        assert prov in out


def _cited(node, path=""):
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for key, val in node.items():
            yield from _cited(val, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                yield from _cited(item, f"{path}[{item['name']}]")


@pytest.mark.parametrize("name", SHIPPED)
def test_show_every_shipped_profile(capsys, name):
    code, out, _ = run(capsys, "show", name)
    assert code == 0 and out.startswith(f"# {name}") and "warning" not in out


def test_show_json(capsys):
    code, out, _ = run(capsys, "show", "rtx-4090", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["profile"]["name"] == "rtx-4090"
    assert doc["parsed_si"]["compute"]["bf16"]["peak"]["value"] == 165.2e12
    assert doc["profile"]["compute"]["bf16"]["peak"]["value"] == "165.2 TFLOP/s"
    assert doc["uncovered"] == [] and "int4" in doc["native"]


def test_unknown_profile_suggests_close_names(capsys):
    code, out, err = run(capsys, "show", "h100-sx")
    assert code == 2 and out == ""
    assert "unknown profile 'h100-sx'; did you mean h100-sxm" in err


# ---- user profile directories --------------------------------------------------------

@pytest.fixture
def user_dir(tmp_path, h100_doc):
    h100_doc["name"] = "my-chip"
    h100_doc["memory"][2]["bandwidth"] = {"value": "6.7 TB/s", "assumed": "what-if HBM3e"}
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "my-chip.yaml").write_text(yaml.safe_dump(h100_doc))
    return folder


def test_profile_dir_flag(capsys, user_dir):
    code, out, _ = run(capsys, "list", "--profile-dir", str(user_dir))
    assert code == 0 and "my-chip" in out and "6.7 TB/s" in out
    code, out, _ = run(capsys, "show", "my-chip", "--profile-dir", str(user_dir))
    assert code == 0 and "memory[hbm].bandwidth: 6.7 TB/s\n    [assumed: what-if HBM3e]" in out
    code, out, _ = run(capsys, "show", str(user_dir / "my-chip.yaml"))
    assert code == 0 and out.startswith("# my-chip")


def test_profile_path_env_var(capsys, user_dir, monkeypatch):
    code, _, err = run(capsys, "show", "my-chip")
    assert code == 2 and "unknown profile 'my-chip'" in err
    monkeypatch.setenv("PRECSIM_PROFILE_PATH", str(user_dir))
    code, out, _ = run(capsys, "show", "my-chip", "--json")
    assert code == 0 and json.loads(out)["profile"]["name"] == "my-chip"


def test_missing_profile_dir_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "list", "--profile-dir", str(tmp_path / "nope"))
    assert code == 2 and "profile path does not exist" in err


def test_broken_user_profile_is_named(capsys, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [\n")
    code, _, err = run(capsys, "list", "--profile-dir", str(tmp_path))
    assert code == 2 and "broken.yaml: malformed YAML" in err


def test_check_json_verdict_follows_the_files(capsys, tmp_path, h100_doc):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(h100_doc))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\n")
    code, out, _ = run(capsys, "check", str(good), "--json")
    assert code == 0 and json.loads(out)["feasible"] is True
    code, out, _ = run(capsys, "check", str(good), str(bad), "--json")
    report = json.loads(out)
    assert code == 2 and report["feasible"] is False and report["ok"] is False
    assert report["reason"] == "1 of 2 file(s) failed validation"
