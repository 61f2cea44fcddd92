"""Runtime validation: batch-1 decode under runtime profiles vs published measurements.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/runtime_validation.py [--no-plot]

Rows (the only published per-runtime measurements PrecSim can express today, cited in
hw_profiles/h100-sxm.yaml [torchao] and runtimes/torch-compile.yaml): pytorch/ao
torchao/quantization README, Llama-3.1-8B batch-1 decode on H100 with torch.compile
(gpt-fast's generate.py: a short prompt, 200 new tokens): bf16 126.9, int8 weight-only
198.9, int4 weight-only group 64 241.4 tokens/s. A row is `precsim simulate
--profile h100-sxm --model llama-3-8b` (Llama-3.1-8B has Llama-3-8B's shapes) at batch
1, prompt PROMPT_TOKENS, GEN_TOKENS generated, in the row's format; predicted tokens/s
= 1 / TPOT.

Printed per runtime (reference and torch-compile): predicted vs measured per row, the
median and worst |error|. The bf16 row is not held out: hw_profiles/h100-sxm.yaml's HBM
achievable fraction (0.70) was derived from it under the reference runtime (3.4 us per
launch). A counterfactual torch-compile with int4/int8 dequantised before the GEMM
(`kernel: dequantise_then_gemm`) shows what the measured int4 / int8 speed-ups say
about the kernels: only fused weight-only kernels reproduce them. Writes
docs/img/runtime_pred_vs_meas.png.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.codesign.commands.simulate import run_request
from precsim.simulator.io import load_yaml_mapping
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.runtime import builtin_runtime_dir, runtime_from_mapping

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "runtime_pred_vs_meas.png"
PROMPT_TOKENS = 8      # gpt-fast / torchao default prompt: a few tokens
GEN_TOKENS = 200       # torchao's benchmark generates 200 tokens
#: (format, measured tokens/s, source) on h100-sxm, Llama-3.1-8B, batch 1
ROWS = (("BF16", 126.9, "torchao README: bf16"),
        ("W8A16", 198.9, "torchao README: int8wo"),
        ("W4A16-g64", 241.4, "torchao README: int4wo-64"))


def _dequantising_torch_compile():
    """torch-compile with int8/int4 dequantised by a separate kernel (counterfactual)."""
    doc = copy.deepcopy(load_yaml_mapping(builtin_runtime_dir() / "torch-compile.yaml"))
    doc["name"] = "torch-compile-dequantise"
    for dtype in ("int8", "int4"):
        doc["kernels"][dtype] = {"kernel": "dequantise_then_gemm",
                                 "assumed": "counterfactual of benchmarks/runtime_validation.py"}
    return runtime_from_mapping(doc, "torch-compile with dequantise-then-GEMM")


def table() -> pd.DataFrame:
    h100 = load_profile("h100-sxm")
    runtimes = ("reference", "torch-compile", _dequantising_torch_compile())
    rows = []
    for runtime in runtimes:
        for fmt, measured, source in ROWS:
            _, _, sim = run_request(h100, "llama-3-8b", fmt, 1, PROMPT_TOKENS, GEN_TOKENS,
                                    runtime=runtime)
            predicted = 1.0 / float(sim.totals["tpot_s"])
            rows.append({"runtime": sim.totals["runtime"]["name"], "format": fmt,
                         "measured_tok_s": measured, "predicted_tok_s": predicted,
                         "error": predicted / measured - 1.0, "source": source})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path = PLOT) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for (runtime, part), marker in zip(df.groupby("runtime", sort=False), "osx"):
        ax.scatter(part["measured_tok_s"], part["predicted_tok_s"], marker=marker,
                   label=runtime)
        for _, r in part.iterrows():
            ax.annotate(r["format"], (r["measured_tok_s"], r["predicted_tok_s"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    lim = [50, 1.15 * max(df["measured_tok_s"].max(), df["predicted_tok_s"].max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="predicted = measured")
    ax.set(xlim=lim, ylim=lim, xlabel="measured tokens/s (torchao, H100, batch 1)",
           ylabel="predicted tokens/s (PrecSim)",
           title="Llama-3.1-8B batch-1 decode on H100 by runtime")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    df = table()
    with pd.option_context("display.width", 140):
        print(df.drop(columns="source").to_string(
            index=False, formatters={"measured_tok_s": "{:.1f}".format,
                                     "predicted_tok_s": "{:.1f}".format,
                                     "error": "{:+.1%}".format}))
    print()
    for runtime, part in df.groupby("runtime", sort=False):
        err = np.abs(part["error"].to_numpy())
        print(f"{runtime}: median |error| {np.median(err):.1%}, worst {err.max():.1%} "
              f"({len(part)} rows)")
    if not args.no_plot:
        plot(df)
        print(f"wrote {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
