"""CLI tables print units in their headers (or in every cell)."""
from precsim.codesign.cli import main


def test_simulate_per_op_headers(capsys):
    assert main(["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "exec_dtype" in line).split()
    assert {"time", "bytes", "at", "hbm", "FLOPs", "share"} <= set(header)


def test_size_headers(capsys):
    assert main(["size", "--profile", "l4", "--model", "llama-3.2-1b", "--quant", "W16A16",
                 "--qps", "5", "--slo-ttft", "1 s", "--slo-tpot", "50 ms",
                 "--requests", "50"]) == 0
    out = capsys.readouterr().out
    assert "TTFT <= 1 s, TPOT <= 0.05 s" in out
    for unit in ("req/s per device", "TTFT p99 (ms)", "TPOT p99 (ms)", "J/token"):
        assert unit in out


def test_plan_headers(capsys, tiny_study):
    assert main(["plan", "--study", str(tiny_study), "--draws", "0"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:2] == ["train", "runs"])
    for unit in ("N params", "D tokens", "TPOT ms", "memory GB"):
        assert unit in header
