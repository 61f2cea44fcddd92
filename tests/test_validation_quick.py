"""The real `precsim validate --quick` path end to end (calibration, every held-out
kernel and format, the small transformer, outputs). About a minute on 2 idle cores;
kept in its own file so the other validation tests stay short. No timing is asserted."""
import json

import pandas as pd
import pytest

from precsim.codesign.cli import main
from precsim.simulator.profile_loader import load_profile_file
from precsim.validation.plan import MODEL_FORMATS, quick_plan


@pytest.mark.slow
def test_validate_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["validate", "--quick", "--device", "cpu", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    plan = quick_plan()
    assert result["plan"] == "quick" and result["kernels"] == len(plan.kernels)
    assert 0 < result["median_abs_pct_error"] <= result["p90_abs_pct_error"]
    assert result["skipped"] == []
    assert {r["format"] for r in result["by_format"]} >= set(MODEL_FORMATS)
    decode = [r for r in result["transformer"] if r["kind"] == "transformer_decode"]
    assert {r["format"] for r in decode} == set(MODEL_FORMATS)
    table = pd.read_csv(out / "kernels.csv")
    assert table["measured_s"].gt(0).all() and table["simulated_s"].gt(0).all()
    profile = load_profile_file(out / "profile.yaml")
    assert "measured" in profile.raw()["memory"][-1]["bandwidth"]
    for name in ("calibration_streams.csv", "calibration_gemms.csv", "scatter.png",
                 "summary.md"):
        assert (out / name).is_file()
