"""precsim report / plan / whatif: report contents, atomic replacement, CLI JSON keys."""
import json

import pandas as pd
import pytest

import precsim.codesign.report as report
from precsim.codesign.cli import main
from precsim.simulator.io import OUTPUT_MARKER


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_report_folder_and_atomic_replacement(tiny_study, tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("previous report")
    # a folder PrecSim did not write is the user's: refused, left as it was
    assert main(["report", "--study", str(tiny_study), "--out", str(out)]) == 2
    assert "not written by PrecSim" in capsys.readouterr().err
    assert (out / "old.txt").read_text() == "previous report"
    (out / OUTPUT_MARKER).write_text("an earlier PrecSim report")  # now PrecSim's own
    summary = run_json(capsys, ["report", "--study", str(tiny_study), "--out", str(out),
                                "--json"])
    assert set(summary) >= {"out", "study", "target_loss", "objective", "optima", "files"}
    assert [o["deploy_profile"] for o in summary["optima"]] == ["h100-sxm",
                                                                 "snapdragon-8-gen3"]
    assert not (out / "old.txt").exists()          # replaced by the complete new report
    for name in ("report.md", "report.html", "optima.csv", "by_format.csv", "pareto.csv",
                 "iso_loss.csv", "training_rates.csv", "whatif.csv", "energy_split.csv",
                 "runtimes.csv"):
        assert (out / name).is_file(), name
    split = pd.read_csv(out / "energy_split.csv")
    assert list(split["deploy_profile"]) == ["h100-sxm", "snapdragon-8-gen3"]
    shares = split[["static_share", "compute_share", "memory_share"]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx(1.0, rel=1e-9)  # static + dynamic = all
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"iso_loss.png", "cost_vs_precision.png", "pareto.png", "abstract_vs_real.png",
            "roofline_h100-sxm.png", "roofline_snapdragon-8-gen3.png"} <= figures
    md = (out / "report.md").read_text()
    for section in ("## The answer", "## Abstract cost vs real silicon", "## Iso-loss curves",
                    "## Cost vs precision per profile", "## Pareto frontier",
                    "## Roofline of the chosen configurations",
                    "## Energy: static vs dynamic per profile", "## Runtime comparison",
                    "## What if",
                    "## Validation"):
        assert section in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)
    assert 'src="figures/' not in html               # self-contained

    # a failure half-way leaves the complete previous report exactly as it was
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("forced failure")
    monkeypatch.setattr(report, "fig_pareto", boom)
    assert main(["report", "--study", str(tiny_study), "--out", str(out)]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]   # no temp folders


@pytest.mark.slow
def test_report_includes_a_validation_summary(tiny_study, tmp_path, capsys):
    val = tmp_path / "val"
    val.mkdir()
    (val / "summary.md").write_text("# Validation\n\nmedian |error| 7.5% over 40 kernels\n")
    out = tmp_path / "r"
    summary = run_json(capsys, ["report", "--study", str(tiny_study), "--out", str(out),
                                "--validation", str(val), "--json"])
    assert summary["validation"] == str(val / "summary.md")
    assert "median |error| 7.5% over 40 kernels" in (out / "report.md").read_text()
    assert main(["report", "--study", str(tiny_study), "--out", str(out),
                 "--validation", str(tmp_path / "missing")]) == 2


def test_plan_json_keys(tiny_study, capsys):
    doc = run_json(capsys, ["plan", "--study", str(tiny_study), "--deploy-profile",
                            "snapdragon-8-gen3", "--json"])
    assert set(doc) >= {"target_loss", "objective", "train_profile", "deploy_profile",
                        "optimum", "abstract_optimum", "by_format", "pareto",
                        "candidates_evaluated", "baseline_loss"}
    assert set(doc["optimum"]) >= {"N", "D", "train_format", "weight_bits", "act_bits",
                                   "kv_bits", "train_dtype", "serve_format", "P_post", "loss",
                                   "cost", "dollars", "energy_j", "time_s", "tpot_s",
                                   "memory_bytes"}
    assert set(doc["abstract_optimum"]) >= {"precision_bits", "N", "D", "abstract_cost",
                                            "lawcore_compute_optimal", "real_cost"}
    assert doc["deploy_profile"] == "snapdragon-8-gen3"


def test_plan_flags_replace_study_fields(tiny_study, capsys):
    base = run_json(capsys, ["plan", "--study", str(tiny_study), "--no-deploy", "--json"])
    assert base["deploy_profile"] is None and base["optimum"]["serve_format"] is None
    looser = run_json(capsys, ["plan", "--study", str(tiny_study), "--no-deploy",
                               "--loss-increase", "0.02", "--objective", "energy", "--json"])
    assert looser["target_loss"] == pytest.approx(base["target_loss"] + 0.02)
    assert looser["objective"] == "energy"
    other = run_json(capsys, ["plan", "--study", str(tiny_study), "--deploy-profile",
                              "apple-m2", "--batch", "2", "--slo-tpot", "80 ms", "--json"])
    assert other["deploy_profile"] == "apple-m2" and other["optimum"]["tpot_s"] <= 0.08
    assert main(["plan", "--study", str(tiny_study), "--no-deploy", "--no-train"]) == 2


def test_whatif_json_and_files(tiny_study, tmp_path, capsys):
    doc = run_json(capsys, ["whatif", "--study", str(tiny_study), "--profile",
                            "snapdragon-8-gen3", "--vary", "memory.lpddr5x.bandwidth=0.5x,2x",
                            "--out", str(tmp_path / "w"), "--json"])
    assert set(doc) >= {"profile", "objective", "target_loss", "variants", "files"}
    rows = doc["variants"]
    assert [r["variant"] for r in rows] == ["as-is", "memory.lpddr5x.bandwidth=0.5x",
                                            "memory.lpddr5x.bandwidth=2x"]
    assert set(rows[0]) >= {"train_format", "serve_format", "N", "D", "cost", "delta_pct"}
    assert rows[2]["cost"] <= rows[0]["cost"] <= rows[1]["cost"]
    assert (tmp_path / "w" / "whatif.png").is_file()
    assert main(["whatif", "--study", str(tiny_study), "--profile", "snapdragon-8-gen3",
                 "--vary", "memory.lpddr5x.bandwith=2x"]) == 2
