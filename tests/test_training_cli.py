"""`precsim law validate`: a tiny sweep end to end, reuse of a runs CSV, bad input -> exit 2."""
import io
import json
from contextlib import redirect_stdout

import pytest

from precsim.codesign.cli import main

REPORT_FILES = {"runs.csv", "summary.md", "summary.json", "constants.csv",
                "ptq_degradation.csv", "n_eff.csv", "loss_vs_tokens.png",
                "ptq_degradation.png", "neff_vs_bits.png", "predicted_vs_observed.png"}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["law", "validate", "--grid", "tiny", "--out", str(out), "--json",
                     "--bootstrap", "0", "--jobs", "1", "--no-progress"])
    return code, out, buf.getvalue()


@pytest.mark.slow
def test_tiny_sweep_writes_report_and_one_json_object(tiny_report):
    code, out, stdout = tiny_report
    assert code == 0
    doc = json.loads(stdout)
    assert REPORT_FILES <= {p.name for p in out.iterdir()}
    assert set(doc["files"]) == REPORT_FILES
    assert doc["training_runs"] == 6 and doc["grid"] == "tiny"
    assert doc["E"]["known_E"] > 0
    assert "ptq_degradation_grows_with_D_over_N" in doc["verdicts"]
    assert doc["fits"]["precision"]["ok"] in (True, False)
    assert (out / "summary.md").read_text().startswith("# Precision laws re-validated")
    assert (out / "loss_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerun_resumes_without_training_and_runs_csv_is_reusable(tiny_report, tmp_path,
                                                                 monkeypatch, capsys):
    _, out, _ = tiny_report

    def no_training(cfg, source):
        raise AssertionError("resumed sweep retrained a finished run")

    monkeypatch.setattr("precsim.validation.training.train.train_run", no_training)
    assert main(["law", "validate", "--grid", "tiny", "--out", str(out), "--bootstrap", "0",
                 "--no-progress"]) == 0
    assert "law validation report written" in capsys.readouterr().out
    other = tmp_path / "again"
    assert main(["law", "validate", "--runs", str(out / "runs.csv"), "--out", str(other),
                 "--json", "--bootstrap", "0"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["training_runs"] == 6
    assert (other / "runs.csv").read_bytes() == (out / "runs.csv").read_bytes()


@pytest.mark.parametrize("args, match", [
    (["--data", "wikipedia"], "'wikipedia': unknown data source"),
    (["--grid", "huge"], "not a preset"),
    (["--quick", "--grid", "tiny"], "exclusive"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, args, match):
    assert main(["law", "validate", "--out", str(tmp_path / "o"), *args]) == 2
    assert match in capsys.readouterr().err


def test_zero_jobs_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["law", "validate", "--out", str(tmp_path / "o"), "--jobs", "0"])
    assert info.value.code == 2
    assert "--jobs: expected a whole number from 1" in capsys.readouterr().err


def test_malformed_runs_csv_exits_2_naming_line_and_column(tmp_path, capsys):
    bad = tmp_path / "runs.csv"
    bad.write_text("N,D,P_w,P_a,P_kv,loss\n1e5,1e6,16,16,16,2.5\n1e5,1e6,16,sixteen,16,2.4\n")
    assert main(["law", "validate", "--runs", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 3, column 'P_a'" in err and "Traceback" not in err
