"""The golden cases: CLI invocations whose JSON output is recorded and compared.

`python -m tests.golden.regenerate` (from the repository root) rewrites
`tests/golden/outputs.json`; `tests/test_golden.py` checks every case against it
(relative 1e-9, identical keys). Regenerate only when a number changes on purpose,
in the same commit, and say why in the commit message.
"""
from __future__ import annotations

PROFILES = ("a100-sxm-80gb", "apple-m2", "h100-sxm", "host", "l4", "rtx-4090",
            "snapdragon-8-gen3", "ternary-accel")
MODELS = ("llama-2-7b", "llama-3-8b", "llama-3.2-1b", "mistral-7b", "qwen2.5-0.5b",
          "bitnet-b1.58-2b4t")
FORMATS = ("BF16", "W4A16-g128", "W8A8", "FP8", "BITNET")


def cases() -> dict[str, list[str]]:
    """Name -> argv (without the program name); every case is run with --json."""
    out: dict[str, list[str]] = {}
    for profile in PROFILES:
        for model in MODELS:
            for fmt in FORMATS:
                out[f"simulate/{profile}/{model}/{fmt}"] = [
                    "simulate", "--profile", profile, "--model", model, "--quant", fmt,
                    "--batch", "4", "--prompt", "512", "--gen", "128"]
    out["plan/default"] = ["plan"]
    out["plan/l4"] = ["plan", "--deploy-profile", "l4"]
    out["plan/ternary-energy"] = ["plan", "--deploy-profile", "ternary-accel",
                                  "--objective", "energy"]
    out["law/predict"] = ["law", "predict", "--N", "1.5B", "--D", "30B",
                          "--weight-bits", "4", "--post-bits", "6"]
    out["law/predict-default"] = ["law", "predict", "--N", "300M", "--D", "10B"]
    out["law/optimal-compute"] = ["law", "optimal", "--compute", "1e21"]
    out["law/optimal-n"] = ["law", "optimal", "--N", "1B", "--D", "20B"]
    out["serve/h100"] = ["serve", "--profile", "h100-sxm", "--model", "llama-3-8b",
                         "--quant", "FP8", "--qps", "20", "--requests", "300",
                         "--seed", "7"]
    out["serve/l4"] = ["serve", "--profile", "l4", "--model", "llama-3.2-1b",
                       "--quant", "W4A16-g128", "--qps", "5", "--requests", "200",
                       "--seed", "3", "--prompt-tokens", "128:1024"]
    out["size/l4"] = ["size", "--profile", "l4", "--model", "llama-3.2-1b", "--quant",
                      "W16A16", "--qps", "20", "--slo-ttft", "0.5", "--slo-tpot", "0.05",
                      "--requests", "200"]
    out["report/default"] = ["report", "--out", "{tmp}/report"]
    return out
