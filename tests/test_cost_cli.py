"""`precsim simulate` and `precsim roofline`: output, files, JSON and bad input."""
import json

import pandas as pd
import pytest

from precsim.codesign.cli import main

BASE = ["--profile", "h100-sxm", "--model", "llama-2-7b", "--quant", "W4A16-g128",
        "--batch", "1", "--prompt", "128", "--gen", "16"]


def test_simulate_table(capsys):
    assert main(["simulate", *BASE]) == 0
    out = capsys.readouterr().out
    assert "llama-2-7b W4A16-g128 on h100-sxm" in out
    assert "fits: needs" in out and "decode tokens/s" in out and "gate_up_proj" in out


def test_simulate_json_and_csv(capsys, tmp_path):
    csv = tmp_path / "ops.csv"
    assert main(["simulate", *BASE, "--json", "--csv", str(csv),
                 "--override", "lm_head=W16A16"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["request"]["quant"] == "W4A16-g128@lm_head=W16A16"
    totals = doc["totals"]
    assert totals["fits"] is True and totals["decode_tokens_per_s"] > 0
    assert totals["weight_bytes_by_group"]["lm_head"] == 32000 * 4096 * 2
    ops = pd.read_csv(csv)
    assert {"op", "phase", "exec_dtype", "bound", "bytes_hbm", "time_s"} <= set(ops.columns)
    assert ops.time_s.sum() == pytest.approx(totals["e2e_latency_s"])


def test_simulate_not_fitting_is_reported(capsys):
    args = ["simulate", "--profile", "h100-sxm", "--model", "llama-2-7b", "--batch", "64",
            "--prompt", "8192", "--gen", "16"]
    assert main(args) == 3          # answered, infeasible
    out = capsys.readouterr().out
    assert "DOES NOT FIT: needs" in out and "holds 85.9 GB" in out   # 80 GiB
    assert "decode tokens/s" not in out
    assert main([*args, "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"] is False and doc["reason"].startswith("DOES NOT FIT: needs")
    totals = doc["totals"]
    assert totals["fits"] is False and totals["tpot_s"] is None
    assert totals["memory_bytes"] > totals["capacity_bytes"]


def test_roofline_png_and_json(capsys, tmp_path):
    fig = tmp_path / "roof.png"
    assert main(["roofline", *BASE, "--out", str(fig), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bf16" in doc["roofs"]["compute_ops_per_s"]
    assert {p["level"] for p in doc["points"]} >= {"hbm", "l2"}


@pytest.mark.parametrize("patch, match", [
    (["--batch", "0"], "--batch: expected a whole number from 1 to 1,000,000, got 0"),
    (["--prompt", "-3"], "--prompt: expected a whole number from 1 to 10,000,000, got -3"),
])
def test_bad_counts_are_refused_by_the_parser(capsys, patch, match):
    with pytest.raises(SystemExit) as info:
        main(["simulate", *_apply(BASE, patch)])
    assert info.value.code == 2 and match in capsys.readouterr().err


@pytest.mark.parametrize("patch, match", [
    (["--quant", "W4A16-g12x"], "unknown quant format"),
    (["--model", "lama-2-7b"], "did you mean llama-2-7b"),
    (["--profile", "h100"], "did you mean h100-sxm"),
    (["--override", "head=W16A16"], "did you mean 'lm_head'"),
])
def test_bad_input_exits_2(capsys, patch, match):
    args = _apply(BASE, patch)
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("precsim: error:") and match in err and "Traceback" not in err


def _apply(args, patch):
    out = list(args)
    for flag, value in zip(patch[::2], patch[1::2]):
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out
