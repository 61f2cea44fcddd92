"""Exit codes: 3 and `"feasible": false` with a reason for answered-but-infeasible input,
per command (README "Exit codes"); the hand-picked case is a 141 GB model (llama-3-70b
at BF16) on a 25.77 GB phone (snapdragon-8-gen3)."""
import json

from precsim.codesign.cli import main

TOO_BIG = ["--profile", "snapdragon-8-gen3", "--model", "llama-3-70b", "--quant", "BF16"]


def verdict(capsys, argv, code=3):
    assert main([*argv, "--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_simulate_does_not_fit(capsys):
    doc = verdict(capsys, ["simulate", *TOO_BIG])
    assert doc["feasible"] is False and "DOES NOT FIT" in doc["reason"]
    assert "holds 25.77 GB" in doc["reason"]
    assert main(["simulate", *TOO_BIG]) == 3
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_roofline_of_a_model_that_does_not_fit(capsys, tmp_path):
    doc = verdict(capsys, ["roofline", *TOO_BIG, "--out", str(tmp_path / "r.png")])
    assert doc["feasible"] is False and (tmp_path / "r.png").is_file()


def test_serve_does_not_fit(capsys):
    doc = verdict(capsys, ["serve", *TOO_BIG, "--qps", "1", "--requests", "10"])
    assert doc == {"feasible": False, "reason": doc["reason"]}
    assert "does not fit one snapdragon-8-gen3" in doc["reason"]
    assert main(["serve", *TOO_BIG, "--qps", "1", "--requests", "10"]) == 3
    out, err = capsys.readouterr()
    assert "infeasible: llama-3-70b at BF16 does not fit" in out and err == ""


def test_size_no_format_meets_the_slo(capsys):
    argv = ["size", "--profile", "l4", "--model", "llama-3.2-1b", "--quant", "W16A16",
            "--qps", "20", "--slo-ttft", "1 ms", "--slo-tpot", "50 ms", "--requests", "50"]
    doc = verdict(capsys, argv)
    assert doc["feasible"] is False and doc["devices"] is None
    assert doc["reason"].startswith("no format meets the SLOs")
    assert main(argv) == 3
    assert "no format meets the SLOs" in capsys.readouterr().out


def test_size_no_layout_meets_the_slo(capsys):
    doc = verdict(capsys, ["size", *TOO_BIG, "--qps", "1", "--slo-ttft", "1 s",
                           "--slo-tpot", "0.1", "--requests", "20"])
    assert doc["feasible"] is False and doc["reason"].startswith("no layout meets")


def test_train_nothing_fits(capsys):
    doc = verdict(capsys, ["train", "--profile", "snapdragon-8-gen3", "--model",
                           "llama-3-70b", "--global-batch", "8192", "--devices", "1"])
    assert doc["feasible"] is False and "needs" in doc["reason"]


def test_answers_say_feasible(capsys):
    doc = verdict(capsys, ["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b"],
                  code=0)
    assert doc["feasible"] is True and "reason" not in doc


def test_plan_and_whatif_unreachable_target(capsys, tiny_study):
    doc = verdict(capsys, ["plan", "--study", str(tiny_study), "--target-loss", "1.0"])
    assert doc["feasible"] is False
    assert doc["reason"] == ("no configuration reaches the target loss 1.0000 under the "
                             "constraints")
    doc = verdict(capsys, ["whatif", "--study", str(tiny_study), "--profile", "h100-sxm",
                           "--vary", "power.static=2x", "--target-loss", "1.0"])
    assert doc["feasible"] is False and doc["reason"].startswith("no variant reaches")
    assert all(v["unchanged_because"] is None for v in doc["variants"])


def test_hugging_face_name_not_cached_is_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))        # an empty cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert main(["simulate", "--profile", "h100-sxm", "--model", "meta-llama/Llama-3.1-8B",
                 "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "'meta-llama/Llama-3.1-8B': not in the local Hugging Face cache" in err
    assert "built-ins: llama-2-7b, llama-3-8b" in err
    assert "config.json or of a folder holding one" in err
