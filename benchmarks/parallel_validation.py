"""Multi-device serving (TP / EP, dense and MoE) against the ML.ENERGY Benchmark v3 rows.

    python benchmarks/parallel_validation.py [--data mlenergy_v3_llm_configs.csv]
                                             [--prompt 512] [--plot docs/img/...png] [--json]

Every row of the published vLLM measurements PrecSim can express (a built-in model, a
profile for the GPU, a layout it models) is simulated: a replica of the row's layout
serving `avg_batch_size` concurrent requests of `--prompt` prompt tokens (the CSV does
not give prompt lengths: an assumption, stated) and `avg_output_len_tokens` generated
ones. Predicted median inter-token latency = the mean decode step (TPOT); predicted
output throughput = dp * batch * gen / (TTFT + (gen - 1) TPOT). ML.ENERGY's "TP 1,
EP n, DP 1" rows are simulated as tp = ep = n (the row mapping is shared with
energy_validation.py: benchmarks/mlenergy_rows.py). Rows left out are counted with the
reason.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlenergy_rows import CONFIGS_CSV, MODELS, PROFILES, expressible, layout_of, quant_of
from precsim.simulator.errors import InputError
from precsim.simulator.parallel import simulate_parallel
from precsim.simulator.profile_loader import load_profile

DEFAULT_DATA = CONFIGS_CSV


def predict(rows: pd.DataFrame, prompt: int) -> pd.DataFrame:
    """Predicted ITL and throughput for the expressible rows, one call per configuration
    (batch and output length as arrays)."""
    out = []
    for (model_id, prec, gpu, tp, ep, dp), grp in rows.groupby(
            ["model_id", "weight_precision", "gpu_model", "tensor_parallel",
             "expert_parallel", "data_parallel"], sort=False):
        first = grp.iloc[0]
        quant = quant_of(prec)
        batch = np.maximum(np.round(grp.avg_batch_size.to_numpy(float)), 1.0)
        gen = np.round(grp.avg_output_len_tokens.to_numpy(float))
        res = simulate_parallel(load_profile(PROFILES[gpu]), MODELS[model_id], quant, batch,
                                prompt, gen, layout_of(first))
        t = res.totals
        thr = dp * batch * gen / np.asarray(t["e2e_latency_s"])
        out.append(grp.assign(pred_itl_ms=np.asarray(t["tpot_s"]) * 1e3,
                              pred_throughput=thr, fits=np.asarray(t["fits"])))
    return pd.concat(out)


def summarise(table: pd.DataFrame) -> dict:
    err_itl = table.pred_itl_ms / table.median_itl_ms - 1.0
    err_thr = table.pred_throughput / table.output_throughput_tokens_per_sec - 1.0
    return {"rows": int(len(table)),
            "itl_median_abs_error": float(np.median(np.abs(err_itl))),
            "itl_worst_abs_error": float(np.max(np.abs(err_itl))),
            "throughput_median_abs_error": float(np.median(np.abs(err_thr))),
            "throughput_worst_abs_error": float(np.max(np.abs(err_thr)))}


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, meas, pred, label in ((axes[0], "median_itl_ms", "pred_itl_ms", "ITL (ms)"),
                                  (axes[1], "output_throughput_tokens_per_sec",
                                   "pred_throughput", "output tokens/s")):
        for name, grp in table.groupby("short"):
            ax.scatter(grp[meas], grp[pred], s=14, label=name)
        lo = min(table[meas].min(), table[pred].min()) * 0.8
        hi = max(table[meas].max(), table[pred].max()) * 1.25
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        for f in (0.8, 1.2):
            ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel=f"measured {label}",
               ylabel=f"PrecSim {label}")
    axes[0].legend(fontsize=6)
    fig.suptitle("ML.ENERGY v3 (vLLM, H100): predicted vs measured (dotted: +-20%)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--prompt", type=int, default=512,
                    help="assumed prompt tokens per request (not in the CSV)")
    ap.add_argument("--plot", type=Path, default=None, metavar="PNG")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        raise InputError(f"--data {args.data}: file not found; expected "
                         "mlenergy_v3_llm_configs.csv")
    rows = pd.read_csv(args.data)
    reasons = rows.apply(expressible, axis=1)
    table = predict(rows[reasons.isna()], args.prompt)
    table["short"] = (table.model_id.str.split("/").str[-1] + " " + table.gpu_model + " tp"
                      + table.tensor_parallel.astype(str) + " ep"
                      + table.expert_parallel.astype(str))
    summary = summarise(table)
    summary["left_out"] = reasons.dropna().value_counts().to_dict()
    if args.plot:
        plot(table, args.plot)
    if args.json:
        print(json.dumps({"summary": summary, "rows": table[[
            "short", "task", "avg_batch_size", "median_itl_ms", "pred_itl_ms",
            "output_throughput_tokens_per_sec", "pred_throughput"]].to_dict("records")}))
        return 0
    show = table.assign(itl_err=lambda t: (t.pred_itl_ms / t.median_itl_ms - 1) * 100,
                        thr_err=lambda t: (t.pred_throughput
                                           / t.output_throughput_tokens_per_sec - 1) * 100)
    print(show[["short", "task", "avg_batch_size", "median_itl_ms", "pred_itl_ms", "itl_err",
                "output_throughput_tokens_per_sec", "pred_throughput", "thr_err"]]
          .rename(columns={"avg_batch_size": "batch", "median_itl_ms": "itl_ms",
                           "output_throughput_tokens_per_sec": "tok_s",
                           "pred_throughput": "pred_tok_s"})
          .to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
