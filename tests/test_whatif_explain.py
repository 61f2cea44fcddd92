"""whatif: --list-fields, the --help grammar, and why an edit changes nothing."""
import json

import pytest

from precsim.codesign.cli import main
from precsim.codesign.variants import editable_fields
from precsim.simulator.profile_loader import load_profile


def test_editable_fields_values_units_and_support():
    rows = {r["field"]: r for r in editable_fields(load_profile("h100-sxm"))}
    # hw_profiles/h100-sxm.yaml: bf16 dense peak 989.4 TFLOP/s, cited
    assert rows["compute.bf16.peak"] == {"field": "compute.bf16.peak",
                                         "value": "989.4 TFLOP/s", "provenance": "source"}
    assert rows["compute.bf16"]["value"] == "native"
    assert rows["compute.int4"]["value"].startswith("fallback (runs as")
    assert "memory.hbm.bandwidth" in rows and "sources" not in rows


def test_list_fields_cli(capsys):
    assert main(["whatif", "--list-fields", "snapdragon-8-gen3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"] == "snapdragon-8-gen3" and doc["feasible"] is True
    fields = {r["field"] for r in doc["fields"]}
    # a SoC: engines per compute unit (hw_profiles/snapdragon-8-gen3.yaml compute_units)
    assert {"compute_units.npu.compute.int8.peak", "compute_units.npu.compute.int4",
            "memory.lpddr5x.bandwidth"} <= fields
    assert main(["whatif", "--list-fields", "snapdragon-8-gen3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[0] == "field"
    assert any(line.startswith("compute_units.npu.compute.int4 ") and "fallback" in line
               for line in out.splitlines())


def test_help_shows_grammar_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["whatif", "--help"])
    out = capsys.readouterr().out
    assert "FIELD=VALUE[,VALUE...]" in out and "Examples:" in out
    assert "precsim whatif --list-fields h100-sxm" in out


def test_whatif_needs_profile_and_vary(capsys):
    assert main(["whatif", "--profile", "h100-sxm"]) == 2
    assert "--list-fields PROFILE" in capsys.readouterr().err


def test_an_edit_that_changes_nothing_says_why(capsys, tiny_study):
    # no serving or training format of the search executes int4 on the phone: W4A16 runs
    # on its 16/32-bit float engines, 4-bit training on int8
    assert main(["whatif", "--study", str(tiny_study), "--profile", "snapdragon-8-gen3",
                 "--vary", "compute_units.npu.compute.int4=native,as-is", "--vary", "memory.lpddr5x.bandwidth=2x,"
                 "as-is", "--json"]) == 0
    rows = {v["variant"]: v for v in json.loads(capsys.readouterr().out)["variants"]}
    why = rows["compute_units.npu.compute.int4=native"]["unchanged_because"]
    assert why.startswith("compute.int4: no format in the search runs int4 on "
                          "snapdragon-8-gen3")
    assert rows["as-is"]["unchanged_because"] is None
    assert rows["memory.lpddr5x.bandwidth=2x"]["unchanged_because"] is None   # it moves
