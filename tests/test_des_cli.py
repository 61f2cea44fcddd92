"""`precsim serve` / `precsim size`: JSON keys, determinism, bad input exit codes."""
import json

import pytest

from precsim.codesign.cli import main

SERVE = ["serve", "--profile", "h100-sxm", "--model", "qwen2.5-0.5b", "--quant",
         "W4A16-g128", "--max-batch", "16", "--prompt-tokens", "64:256",
         "--output-tokens", "16"]


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_serve_json_keys_and_determinism(capsys):
    argv = SERVE + ["--qps", "20", "--requests", "200", "--seed", "5", "--json"]
    code, out, _ = _run(capsys, argv)
    assert code == 0
    data = json.loads(out)
    for key in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s",
                "throughput_tokens_per_s", "energy_per_token_j", "rejected"):
        assert key in data and data[key] is not None
    assert data["requests"] == 200 and data["rejected"] == 0
    assert _run(capsys, argv)[1] == out  # same seed, same bytes
    assert _run(capsys, argv[:-3] + ["--seed", "6", "--json"])[1] != out


def test_serve_trace_table_and_requests_csv(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,8\n0.01,50,4\n")
    out_csv = tmp_path / "req.csv"
    code, out, _ = _run(capsys, SERVE + ["--trace", str(trace), "--chunked-prefill", "64",
                                         "--requests-out", str(out_csv)])
    assert code == 0
    assert "ttft" in out and "served 2 of 2" in out
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("request_id,arrival_s,prompt_tokens,output_tokens")
    assert len(lines) == 3


@pytest.mark.parametrize("extra,match", [
    (["--qps", "0"], "qps"), (["--qps", "-2"], "qps")])
def test_serve_bad_input_exit_2(capsys, extra, match):
    code, out, err = _run(capsys, SERVE + extra)
    assert code == 2 and out == ""
    assert err.startswith("precsim: error:") and match in err


def test_negative_kv_capacity_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        _run(capsys, SERVE + ["--qps", "1", "--kv-capacity-tokens", "-5"])
    assert info.value.code == 2
    assert "--kv-capacity-tokens: expected a whole number from 0" in capsys.readouterr().err


def test_serve_bad_trace_names_the_row(tmp_path, capsys):
    trace = tmp_path / "bad.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,8\n0.5,100,8\n0.2,5,5\n")
    code, _, err = _run(capsys, SERVE + ["--trace", str(trace)])
    assert code == 2 and "row 3 (line 4)" in err and "backwards" in err


def test_size_json_single_and_several_formats(capsys):
    base = ["size", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--qps", "300",
            "--slo-ttft", "0.05", "--slo-tpot", "0.01", "--requests", "200",
            "--prompt-tokens", "256", "--output-tokens", "32", "--max-batch", "16", "--json"]
    code, out, _ = _run(capsys, base + ["--quant", "W4A16-g128"])
    assert code == 0
    one = json.loads(out)
    assert isinstance(one["devices"], int) and one["devices"] >= 1
    assert one["percentile"] == 99 and len(one["results"]) == 1
    code, out, _ = _run(capsys, base + ["--quant", "W4A16-g128", "--quant", "BF16"])
    several = json.loads(out)
    assert [r["quant"] for r in several["results"]] == ["W4A16-g128", "BF16"]
    assert all(isinstance(r["devices"], int) for r in several["results"])
    assert several["best"]["devices"] == several["devices"] == min(
        r["devices"] for r in several["results"])


def test_size_bad_slo_exit_2(capsys):
    code, _, err = _run(capsys, ["size", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
                                 "--quant", "BF16", "--qps", "1", "--slo-ttft", "0",
                                 "--slo-tpot", "0.1"])
    assert code == 2 and "SLO: ttft" in err and "greater than 0" in err
