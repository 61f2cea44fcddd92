"""Runtime validation: batch-1 decode under runtime profiles vs published measurements.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/runtime_validation.py [--fit] [--no-plot]

Rows: batch-1 decode tokens/s of torch.compile'd PyTorch (the `torch-compile` runtime)
- calibration: pytorch/ao torchao/quantization README, Llama-3.1-8B on H100 (bf16
  126.9, int8 weight-only 198.9, int4 weight-only group 64 241.4 tok/s);
- held out: pytorch-labs/gpt-fast README, Llama-2-7B on A100-80GB power-limited to
  330 W (base 104.9, 8-bit 155.58, 4-bit G=32 196.80 tok/s);
and llama.cpp on Metal (the `llama-cpp` runtime, nothing fitted): ggml-org/llama.cpp
discussion #4167 (llama-bench on Apple Silicon), the M2 row (10-core GPU, 100 GB/s),
LLaMA-2-7B F16 / Q8_0 / Q4_0: pp512 201.34 / 181.40 / 179.57 and tg128 6.72 / 12.21 /
21.91 tokens/s.
A decode row is `precsim simulate --runtime R` at batch 1, prompt PROMPT_TOKENS,
GEN_TOKENS generated (both projects' generate.py: a short prompt, 200 new tokens;
llama-bench tg128: prompt 1, 128 generated), tokens/s = 1 / TPOT; a pp512 row is a
512-token prefill, tokens/s = 512 / TTFT. Llama-3.1-8B has Llama-3-8B's shapes.

`--fit` re-derives runtimes/torch-compile.yaml's three numbers on the calibration rows
only (bisection, one row each, in order): efficiency.memory_bandwidth on the bf16 row,
then kernels.int8 / int4 stream_efficiency on the int8 / int4 rows. Printed per runtime
(reference, torch-compile, and a counterfactual torch-compile whose int8/int4 weights
are dequantised by a separate kernel first): predicted vs measured per row, median and
worst |error| over all rows and over the held-out rows. Writes
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
PROMPT_TOKENS = 8      # "Hello, my name is": a few tokens
GEN_TOKENS = 200       # both benchmarks generate 200 tokens
#: (profile, model, format, measured tokens/s, role, source, phase, runtime)
ROWS = tuple(r + ("decode", "torch-compile") for r in (
    ("h100-sxm", "llama-3-8b", "BF16", 126.9, "calibration", "torchao README: bf16"),
    ("h100-sxm", "llama-3-8b", "W8A16", 198.9, "calibration", "torchao README: int8wo"),
    ("h100-sxm", "llama-3-8b", "W4A16-g64", 241.4, "calibration",
     "torchao README: int4wo-64"),
    ("a100-sxm-80gb", "llama-2-7b", "BF16", 104.9, "held out", "gpt-fast README: base"),
    ("a100-sxm-80gb", "llama-2-7b", "W8A16", 155.58, "held out", "gpt-fast README: 8-bit"),
    ("a100-sxm-80gb", "llama-2-7b", "W4A16-g32", 196.80, "held out",
     "gpt-fast README: 4-bit G=32"),
)) + tuple(("apple-m2", "llama-2-7b", fmt, value, "held out",
            f"llama.cpp #4167 M2: {fmt} {phase}", phase, "llama-cpp")
           for fmt, pp, tg in (("W16A16", 201.34, 6.72), ("Q8_0", 181.40, 12.21),
                               ("Q4_0", 179.57, 21.91))
           for phase, value in (("pp512", pp), ("tg128", tg)))


_ORDER = ["reference", "torch-compile", "torch-compile-dequantise", "llama-cpp"]


def _torch_compile(edit) -> object:
    """runtimes/torch-compile.yaml with `edit(doc)` applied (fit and counterfactual)."""
    doc = copy.deepcopy(load_yaml_mapping(builtin_runtime_dir() / "torch-compile.yaml"))
    edit(doc)
    return runtime_from_mapping(doc, f"torch-compile variant {doc['name']}")


def _dequantising(doc: dict) -> None:
    doc["name"] = "torch-compile-dequantise"
    for dtype in ("int8", "int4"):
        doc["kernels"][dtype] = {"kernel": "dequantise_then_gemm",
                                 "assumed": "counterfactual of runtime_validation.py"}


def tokens_per_s(row, runtime) -> float:
    profile, model, fmt, phase = row[0], row[1], row[2], row[6]
    prompt, gen = {"decode": (PROMPT_TOKENS, GEN_TOKENS), "tg128": (1, 129),
                   "pp512": (512, 2)}[phase]
    _, _, sim = run_request(load_profile(profile), model, fmt, 1, prompt, gen,
                            runtime=runtime)
    if phase == "pp512":
        return 512.0 / float(sim.totals["ttft_s"])
    return 1.0 / float(sim.totals["tpot_s"])


def fit() -> dict:
    """The three torch-compile numbers, each by bisection on its calibration row."""
    found: dict = {}

    def runtime(values: dict):
        def edit(doc):
            if "m" in values:
                doc["efficiency"]["memory_bandwidth"] = {"value": values["m"], "assumed": "fit"}
            for dtype in ("int8", "int4"):
                doc["kernels"][dtype].pop("stream_efficiency", None)
                if dtype in values:
                    doc["kernels"][dtype]["stream_efficiency"] = {"value": values[dtype],
                                                                  "assumed": "fit"}
        return _torch_compile(edit)

    for key, row in (("m", ROWS[0]), ("int8", ROWS[1]), ("int4", ROWS[2])):
        lo, hi = 0.05, 1.0
        for _ in range(30):
            mid = (lo + hi) / 2
            if tokens_per_s(row, runtime({**found, key: mid})) > row[3]:
                hi = mid
            else:
                lo = mid
        found[key] = round((lo + hi) / 2, 3)
    return found


def table() -> pd.DataFrame:
    rows = []
    counterfactual = _torch_compile(_dequantising)
    for row in ROWS:
        extra = (counterfactual,) if row[7] == "torch-compile" else ()
        for runtime in ("reference", row[7], *extra):
            predicted = tokens_per_s(row, runtime)
            rows.append({"runtime": runtime if isinstance(runtime, str) else runtime.name,
                         "profile": row[0], "model": row[1], "format": row[2],
                         "phase": row[6], "role": row[4], "rows": row[7],
                         "measured_tok_s": row[3],
                         "predicted_tok_s": predicted, "error": predicted / row[3] - 1.0,
                         "source": row[5]})
    return pd.DataFrame(rows).sort_values("runtime", kind="stable",
                                          key=lambda c: c.map(_ORDER.index))


def plot(df: pd.DataFrame, path: Path = PLOT) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.8, 4.8))
    for i, (runtime, part) in enumerate(df.groupby("runtime", sort=False)):
        for role, marker in (("calibration", "o"), ("held out", "^")):
            sub = part[part["role"] == role]
            if len(sub):
                ax.scatter(sub["measured_tok_s"], sub["predicted_tok_s"], marker=marker,
                           color=f"C{i}", label=f"{runtime} ({role})")
    lim = [3, 1.5 * max(df["measured_tok_s"].max(), df["predicted_tok_s"].max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="predicted = measured")
    ax.set(xscale="log", yscale="log", xlim=lim, ylim=lim,
           xlabel="measured tokens/s (batch 1)", ylabel="predicted tokens/s (PrecSim)",
           title="torchao (H100), gpt-fast (A100), llama.cpp (M2)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true",
                        help="re-derive torch-compile's numbers on the calibration rows")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.fit:
        found = fit()
        print(f"fit: efficiency.memory_bandwidth {found['m']}, kernels.int8.stream_efficiency"
              f" {found['int8']}, kernels.int4.stream_efficiency {found['int4']} "
              "(runtimes/torch-compile.yaml)\n")
    df = table()
    with pd.option_context("display.width", 160):
        print(df.drop(columns=["source", "rows"]).to_string(
            index=False, formatters={"measured_tok_s": "{:.1f}".format,
                                     "predicted_tok_s": "{:.1f}".format,
                                     "error": "{:+.1%}".format}))
    print()
    for (runtime, group), part in df.groupby(["runtime", "rows"], sort=False):
        err = np.abs(part["error"].to_numpy())
        held = np.abs(part.loc[part["role"] == "held out", "error"].to_numpy())
        print(f"{runtime} on the {group} rows: median |error| {np.median(err):.1%}, worst "
              f"{err.max():.1%} ({len(part)} rows); held out: median "
              f"{np.median(held):.1%}, worst {held.max():.1%}")
    if not args.no_plot:
        plot(df)
        print(f"wrote {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
