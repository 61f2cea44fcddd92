"""Golden safety net: every recorded CLI output still comes out the same.

Outputs were recorded from main before the architecture refactor (issue 14). A change
that moves a number on purpose regenerates them (`python -m tests.golden.regenerate`)
in the same commit and says why in the commit message.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.cases import cases
from tests.golden.run import compare, run_case

EXPECTED = json.loads(Path(__file__).parent.joinpath("golden", "outputs.json").read_text())
CASES = cases()


def test_cases_and_outputs_match():
    assert set(CASES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, tmp_path):
    actual = json.loads(json.dumps(run_case(CASES[name], tmp_path), allow_nan=True))
    diffs = compare(EXPECTED[name], actual)
    assert not diffs, f"{name}: " + "; ".join(diffs[:10])


def test_compare_detects_changes():
    assert compare({"a": 1.0, "b": [1, 2]}, {"a": 1.0 + 1e-12, "b": [1, 2]}) == []
    assert compare({"a": 1.0}, {"a": 1.0001})
    assert compare({"a": 1.0}, {"a": 1.0, "c": 2})
    assert compare({"a": [1, 2]}, {"a": [1]})
    assert compare({"a": "x"}, {"a": "y"})


#: Cases whose recorded answer is an error on purpose, with the exit code they give.
EXPECTED_EXIT = {"plan/l4": 2}   # a datacenter deployment without a stated price


def test_recorded_outputs_are_answers_not_crashes():
    """A regeneration must not record a crash as the golden answer (report/default was
    once recorded with an internal error): every case exits 0 unless listed."""
    for name, record in EXPECTED.items():
        assert record["exit"] == EXPECTED_EXIT.get(name, 0), (name, record.get("stderr"))


def test_recorded_answers_carry_their_verdict():
    """Every --json answer has `feasible`; exit 3 exactly when it is false (with a reason).
    (report records hold its CSV tables instead of its --json.)"""
    for name, record in EXPECTED.items():
        doc = record["json"]
        if record["exit"] in (0, 3) and not name.startswith("report/"):
            assert isinstance(doc, dict) and "feasible" in doc, name
            assert (record["exit"] == 3) == (doc["feasible"] is False), name
            assert doc["feasible"] or doc["reason"], name
