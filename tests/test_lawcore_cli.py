"""`precsim law predict|fit|optimal|plot` through codesign.cli.main."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from precsim.codesign.cli import build_parser, main
from precsim.codesign.commands import law as law_commands
from precsim.lawcore import ChinchillaLaw, PrecisionLaw, compute_optimal, get_law, law_from_json

PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def runs_csv(tmp_path):
    truth = ChinchillaLaw(preset="epoch2024")
    grid = list(itertools.product(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5)))
    runs = pd.DataFrame(grid, columns=["N", "D"])
    noise = np.exp(np.random.default_rng(0).normal(0, 1e-3, len(runs)))
    runs["loss"] = truth.predict(runs.N, runs.D) * noise
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    return path


# ----- predict ----------------------------------------------------------------------------------
def test_predict_json(capsys):
    doc = run_json(capsys, "law", "predict", "--N", "1B", "--D", "20B", "--train-bits", "8",
                   "--post-bits", "4")
    assert doc["loss"] == pytest.approx(PrecisionLaw().predict(1e9, 2e10, 8, 8, 8, 4), rel=1e-12)
    assert doc["N"] == 1e9 and doc["D"] == 2e10 and doc["post_bits"] == 4
    assert doc["weight_bits"] == doc["act_bits"] == doc["kv_bits"] == 8
    assert set(doc["components"]) == {"params_term", "data_term", "irreducible",
                                      "ptq_degradation"}


def test_predict_part_overrides_and_other_laws(capsys):
    doc = run_json(capsys, "law", "predict", "--N", "70M", "--D", "1.5e9", "--train-bits", "6",
                   "--act-bits", "16", "--kv-bits", "inf")
    assert doc["loss"] == pytest.approx(PrecisionLaw().predict(7e7, 1.5e9, 6, 16, np.inf))
    assert doc["post_bits"] is None
    doc = run_json(capsys, "law", "predict", "--N", "70B", "--D", "1.4T", "--law", "chinchilla")
    assert doc["loss"] == pytest.approx(1.9208661785995562, rel=1e-12)
    doc = run_json(capsys, "law", "predict", "--N", "1e9", "--D", "1e12", "--post-bits", "4",
                   "--law", "ouyang2024")
    assert doc["components"]["ptq_degradation"] == pytest.approx(0.15395924299801025)


def test_predict_text(capsys):
    code, out, _ = run(capsys, "law", "predict", "--N", "1e8", "--D", "1e10")
    assert code == 0
    assert "law kumar2024 (PrecisionLaw)" in out and "post-training bits = none" in out
    assert f"{PrecisionLaw().predict(1e8, 1e10):.6g}" in out


@pytest.mark.parametrize("argv, message", [
    (["--N", "-1", "--D", "1e10"], "N must be a positive finite number of parameters; got -1"),
    (["--N", "1e9", "--D", "1e10", "--train-bits", "3"], "P_a = 3 bits is outside the domain"),
    (["--N", "1e9", "--D", "1e10", "--post-bits", "0"], "P_post must be a positive number"),
    (["--N", "1e9", "--D", "1e10", "--law", "kumar"], "unknown law 'kumar'; known: kumar2024"),
    (["--N", "1e9", "--D", "1e10", "--law", "missing.json"], "missing.json: law JSON not found"),
    (["--N", "1e9", "--D", "1e10", "--law", "chinchilla", "--post-bits", "4"],
     "has no post-training-quantization term"),
])
def test_predict_bad_input_exit_2(capsys, argv, message):
    code, out, err = run(capsys, "law", "predict", *argv)
    assert code == 2 and out == ""
    assert err.startswith("precsim: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--N", "abc", "--D", "1e9"], ["--N", "1e9"],
                                  ["--N", "1e9", "--D", "1e9", "--train-bits", "x"]])
def test_predict_unparsable_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(["law", "predict", *argv])
    assert exit_.value.code == 2
    assert "precsim law predict: error:" in capsys.readouterr().err


def test_bad_law_json_file(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "law", "predict", "--N", "1e9", "--D", "1e9", "--law", str(bad))
    assert code == 2 and f"{bad}: law JSON is malformed" in err


# ----- fit --------------------------------------------------------------------------------------
def test_fit_prints_intervals_and_writes_json(capsys, runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    code, text, err = run(capsys, "law", "fit", str(runs_csv), "--law", "chinchilla",
                          "--out", str(out), "--bootstrap", "8", "--heldout")
    assert code == 0, err
    assert "95% CI low" in text and "95% CI high" in text and f"wrote {out}" in text
    assert "held-out check: fit on 20 runs" in text
    for name in ("A", "alpha", "B", "beta", "E"):
        assert any(line.split()[0] == name for line in text.splitlines()[2:7])
    fitted = law_from_json(out.read_text())
    assert fitted.converged_ and fitted.n_runs_ == 25 and len(fitted.ci_) == 5
    assert fitted.constants_["E"] == pytest.approx(1.8172, rel=0.02)
    assert not list(tmp_path.glob(".fit.json.*"))  # no temp file left behind
    # the written law is usable as --law FILE
    doc = run_json(capsys, "law", "predict", "--N", "1e9", "--D", "1e11", "--law", str(out))
    assert doc["fitted"] is True
    assert doc["loss"] == pytest.approx(fitted.predict(1e9, 1e11))


def test_fit_json_output_and_tied_constants(capsys, runs_csv):
    doc = run_json(capsys, "law", "fit", str(runs_csv), "--bootstrap", "3")
    assert doc["law"] == "kumar2024" and doc["converged"] is True
    assert doc["fitted_constants"] == ["A", "alpha", "B", "E"]  # no precision columns
    assert doc["constants"]["beta"] == doc["constants"]["alpha"]
    assert doc["constants"]["C_T"] == PrecisionLaw().params["C_T"]
    assert set(doc["ci"]) == {"A", "alpha", "B", "E"} and doc["out"] is None
    code, text, _ = run(capsys, "law", "fit", str(runs_csv), "--bootstrap", "0")
    assert "= alpha" in text and "fixed" in text


@pytest.mark.parametrize("content, message", [
    ("N,D\n1e9,1e10\n", "runs: missing column(s) loss"),
    ("N,D,loss\n1e9,1e10,3.0\n2e9,1e10,-1\n", "runs.csv: line 3: column 'loss' is -1; expected "
                                               "a positive finite loss"),
    ("N,D,loss\n1e9,abc,3.0\n", "runs.csv: line 2: column 'D' is 'abc'; expected a number"),
    ("", "runs.csv: runs file is empty"),
])
def test_fit_bad_runs_exit_2(capsys, tmp_path, content, message):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    code, out, err = run(capsys, "law", "fit", str(path), "--out", str(tmp_path / "fit.json"))
    assert code == 2 and message in err
    assert not (tmp_path / "fit.json").exists()


def test_fit_missing_file_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "law", "fit", str(tmp_path / "nope.csv"))
    assert code == 2 and "nope.csv: runs file not found" in err


def test_fit_non_convergence_exit_1_keeps_previous_output(capsys, runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    out.write_text("previous")
    code, text, err = run(capsys, "law", "fit", str(runs_csv), "--law", "chinchilla",
                          "--max-iter", "1", "--out", str(out))
    assert code == 1 and "fit did not converge" in err
    assert out.read_text() == "previous"


# ----- optimal ------------------------------------------------------------------------------------
def test_optimal_json(capsys):
    doc = run_json(capsys, "law", "optimal", "--compute", "1e21")
    expected = compute_optimal(1e21)
    assert doc["mode"] == "compute"
    for key in ("N", "D", "precision"):
        assert doc[key] == pytest.approx(getattr(expected, key))
    assert 7.0 < doc["precision"] < 8.0
    doc = run_json(capsys, "law", "optimal", "--compute", "1e21", "--precision", "16")
    assert doc["precision"] == 16
    doc = run_json(capsys, "law", "optimal", "--N", "1B", "--D", "100B")
    assert doc["mode"] == "fixed_N" and doc["N"] == 1e9 and doc["D_reference"] == 1e11
    assert doc["precision"] > run_json(capsys, "law", "optimal", "--N", "1B", "--D",
                                       "10B")["precision"]


def test_optimal_text(capsys):
    code, out, _ = run(capsys, "law", "optimal", "--compute", "1e23")
    assert code == 0 and "precision  7.002 bits" in out


@pytest.mark.parametrize("argv, message", [
    (["--N", "1e9"], "--N needs --D"),
    (["--compute", "1e21", "--D", "1e9"], "--D goes with --N"),
    (["--N", "1e9", "--D", "1e9", "--precision", "8"], "--precision goes with --compute"),
    (["--compute", "1e21", "--law", "chinchilla"], "does not model training precision"),
    (["--compute", "0"], "compute_flops must be a positive finite number"),
])
def test_optimal_bad_input_exit_2(capsys, argv, message):
    code, _, err = run(capsys, "law", "optimal", *argv)
    assert code == 2 and message in err


# ----- plot -------------------------------------------------------------------------------------
def test_plot_writes_the_standard_figures(capsys, tmp_path):
    out = tmp_path / "figs"
    doc = run_json(capsys, "law", "plot", "--out", str(out))
    names = {"loss_vs_data_ptq.png", "loss_vs_train_precision.png", "iso_loss.png",
             "optimal_precision.png"}
    assert {p.split("/")[-1] for p in doc["files"]} == names
    for name in names:
        assert (out / name).read_bytes().startswith(PNG)


@pytest.mark.slow
def test_plot_chinchilla_and_bad_out(capsys, tmp_path):
    code, out, _ = run(capsys, "law", "plot", "--out", str(tmp_path / "c"), "--law",
                       "chinchilla")
    assert code == 0 and out.count("wrote") == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "law", "plot", "--out", str(blocker))
    assert code == 2 and "exists and is not a directory" in err


# ----- extension point ------------------------------------------------------------------------
def test_law_subparsers_is_exposed_for_more_commands(capsys):
    parser = build_parser()
    sub = law_commands.LAW_SUBPARSERS
    assert sub is not None and {"predict", "fit", "optimal", "plot"} <= set(sub.choices)
    extra = sub.add_parser("test-extension")
    extra.set_defaults(func=lambda args: 0)
    assert parser.parse_args(["law", "test-extension"]).func(None) == 0


def test_parse_count():
    assert law_commands.parse_count("1.5B") == 1.5e9
    assert law_commands.parse_count("70M") == 7e7
    assert law_commands.parse_count("2T") == 2e12
    assert law_commands.parse_count("1e21") == 1e21
    assert get_law("kumar2024").name == "kumar2024"
