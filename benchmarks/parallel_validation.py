"""Multi-device serving (TP / EP, dense and MoE) against the ML.ENERGY Benchmark v3 rows.

    python benchmarks/parallel_validation.py [--data mlenergy_v3_llm_configs.csv]
                                             [--plot docs/img/...png] [--json]

Every row of the published vLLM 0.11.1 measurements PrecSim can express (a built-in
model, a profile for the GPU, a layout it models) is simulated as vLLM kept full at
max_num_seqs (benchmarks/mlenergy_rows.py `steady_of`, shared with
energy_validation.py: `simulator.steady.steady_state` on the `vllm` runtime, prompt
lengths per task as mlenergy_rows.PROMPTS states them, `avg_output_len_tokens`
generated). Predicted median inter-token latency = the median step; predicted output
throughput = dp B / mean step. For comparison the same run prints the previous model
(`base_*`: `simulate_parallel` of one batch, decode steps only, an assumed 512-token
prompt, no runtime). ML.ENERGY's "TP 1, EP n, DP 1" rows are simulated as tp = ep = n.
Rows left out are counted with the reason.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlenergy_rows import CONFIGS_CSV, MODELS, PROFILES, expressible, layout_of, quant_of, steady_of
from precsim.simulator.errors import InputError
from precsim.simulator.parallel import simulate_parallel
from precsim.simulator.profile_loader import load_profile

DEFAULT_DATA = CONFIGS_CSV


#: Prompt tokens of the previous model (`base_*` columns), as it assumed them.
BASE_PROMPT = 512


def predict(rows: pd.DataFrame) -> pd.DataFrame:
    """Predicted ITL and throughput for the expressible rows: the steady state on the
    vllm runtime (`pred_*`) and the previous decode-only model (`base_*`)."""
    out = []
    for (model_id, prec, gpu, tp, ep, dp), grp in rows.groupby(
            ["model_id", "weight_precision", "gpu_model", "tensor_parallel",
             "expert_parallel", "data_parallel"], sort=False):
        profile = load_profile(PROFILES[gpu])
        batch = np.maximum(np.round(grp.avg_batch_size.to_numpy(float)), 1.0)
        gen = np.round(grp.avg_output_len_tokens.to_numpy(float))
        t = simulate_parallel(profile, MODELS[model_id], quant_of(prec), batch, BASE_PROMPT,
                              gen, layout_of(grp.iloc[0])).totals
        steady = [steady_of(profile, r) for _, r in grp.iterrows()]
        out.append(grp.assign(
            pred_itl_ms=[1e3 * float(s.median_step_s) for s in steady],
            pred_throughput=[float(s.output_tokens_per_s) for s in steady],
            base_itl_ms=np.asarray(t["tpot_s"]) * 1e3,
            base_throughput=dp * batch * gen / np.asarray(t["e2e_latency_s"])))
    return pd.concat(out)


def summarise(table: pd.DataFrame, prefix: str = "pred") -> dict:
    err_itl = table[f"{prefix}_itl_ms"] / table.median_itl_ms - 1.0
    err_thr = table[f"{prefix}_throughput"] / table.output_throughput_tokens_per_sec - 1.0
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
    fig.suptitle("ML.ENERGY v3 (vLLM 0.11.1, H100): steady state on runtime vllm vs "
                 "measured (dotted: +-20%)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--plot", type=Path, default=None, metavar="PNG")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        raise InputError(f"--data {args.data}: file not found; expected "
                         "mlenergy_v3_llm_configs.csv")
    rows = pd.read_csv(args.data)
    reasons = rows.apply(expressible, axis=1)
    table = predict(rows[reasons.isna()])
    table["short"] = (table.model_id.str.split("/").str[-1] + " " + table.gpu_model + " tp"
                      + table.tensor_parallel.astype(str) + " ep"
                      + table.expert_parallel.astype(str))
    summary = summarise(table)
    summary["previous_model"] = summarise(table, "base")
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
