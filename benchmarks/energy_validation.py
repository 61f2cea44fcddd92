"""Energy validation: PrecSim's board power and J/token vs ML.ENERGY Benchmark v3.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/energy_validation.py [--fit] [--no-plot]

Rows: shared/reference/data/mlenergy_v3_llm_configs.csv (vLLM 0.11.1 serving at steady
state; GPU-only power, no host/PUE). A row is the mean step of vLLM kept full
(benchmarks/mlenergy_rows.py `steady_of`: `simulator.steady.steady_state` of B =
avg_batch_size concurrent requests with the row's average output length and the task's
prompt length, one replica of the row's layout, the `vllm` runtime), at the row's
weight precision. Power = avg_power_watts_per_gpu (predicted: replica power / GPUs),
J/token = energy_per_token_joules (all GPUs), ITL = median_itl_ms (predicted: the
median step). Rows that PrecSim cannot express are counted by reason.

Fit (`--fit`), each on its stated fit rows only; every other row is held out:
* the lm-arena-chat prompt length (the data gives none) on the CALIBRATION rows'
  output throughput (Qwen3-8B on lm-arena-chat, one GPU);
* the vllm runtime's FP8 per-expert tile rows (`efficiency.expert_tile_rows`) on the
  FP8_FIT rows' throughput relative to their BF16 twins (Qwen3-235B-A22B-Instruct-2507
  -FP8, lm-arena-chat, 8 GPUs);
* the h100-sxm power constants (`active`, a scale on the per-op compute energies) by
  least squares on the CALIBRATION rows' power (`fit_power`).
Prints the per-row table, the median and worst |error| per group (calibration and
held-out rows apart), the FP8-vs-BF16 sign table (matched FP8/BF16 row pairs: measured
and predicted sign of the J/token change, then per batch bin beside the blog medians),
and writes docs/img/energy_pred_vs_meas.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scipy.optimize import minimize_scalar  # noqa: E402

from mlenergy_rows import (CONFIGS_CSV, MODELS, PROFILES, PROMPTS, RUNTIME,  # noqa: E402
                           expressible, steady_of)
from precsim.simulator.models import TransformerConfig  # noqa: E402
from precsim.simulator.profile_loader import load_profile  # noqa: E402
from precsim.simulator.profiles import Count  # noqa: E402
from precsim.simulator.runtime import load_runtime  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "energy_pred_vs_meas.png"
CALIBRATION = {("Qwen/Qwen3-8B", "lm-arena-chat")}
#: (model, task, GPUs) of the rows the runtime's FP8 expert tile rows are fitted on.
FP8_FIT = {("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "lm-arena-chat", 8)}


def _gemma(name, layers, d, heads, kv, ff, head_dim):
    return TransformerConfig(name=name, n_layers=layers, d_model=d, n_heads=heads,
                             n_kv_heads=kv, d_ff=ff, vocab_size=262208, head_dim=head_dim,
                             activation="gelu_pytorch_tanh", tied_embeddings=True,
                             source=f"huggingface.co/{name} config.json")


#: Built-ins plus Gemma 3 shapes from their published config.json (5 of 6 layers use a
#: 1024-token sliding window; contexts here stay near or below it: full attention).
ALL_MODELS = MODELS | {m.name: m for m in (
    _gemma("google/gemma-3-12b-it", 48, 3840, 16, 8, 15360, 256),
    _gemma("google/gemma-3-27b-it", 62, 5376, 32, 16, 21504, 128))}


def load_rows(path: Path = CONFIGS_CSV) -> tuple[pd.DataFrame, dict]:
    """Expressible rows and {reason: count} for the others."""
    rows = pd.read_csv(path)
    reasons = rows.apply(lambda r: expressible(r, ALL_MODELS), axis=1)
    return rows[reasons.isna()].reset_index(drop=True), reasons.dropna().value_counts().to_dict()


def _fit_rows(rows: pd.DataFrame, keys: set, with_gpus: bool = False) -> pd.Series:
    cols = ["model_id", "task"] + (["num_gpus"] if with_gpus else [])
    return pd.Series([tuple(k) in keys for k in rows[cols].itertuples(index=False)],
                     index=rows.index)


def predict(rows: pd.DataFrame, profile, prompts=PROMPTS) -> pd.DataFrame:
    """Predicted per-GPU power (W), J/token (all GPUs), median ITL and output throughput
    for every row on `profile`."""
    out = []
    cal, fp8 = _fit_rows(rows, CALIBRATION), _fit_rows(rows, FP8_FIT, True)
    for i, r in rows.iterrows():
        s = steady_of(profile, r, ALL_MODELS, prompts)
        n = float(s.devices_per_replica)
        out.append({"model": r["model_id"].split("/")[1], "task": r["task"],
                    "gpus": int(r["num_gpus"]), "moe": r["architecture"] != "Dense Transformer",
                    "precision": r["weight_precision"], "max_num_seqs": int(r["max_num_seqs"]),
                    "batch": max(1, round(float(r["avg_batch_size"]))),
                    "calibration": bool(cal[i]), "fp8_fit": bool(fp8[i]),
                    "power_meas_w": float(r["avg_power_watts_per_gpu"]),
                    "power_pred_w": float(s.average_power_w) / n,
                    "jpt_meas": float(r["energy_per_token_joules"]),
                    "jpt_pred": float(s.energy_per_token_j),
                    "itl_meas_ms": float(r["median_itl_ms"]),
                    "itl_pred_ms": 1e3 * float(s.median_step_s),
                    "tput_meas": float(r["output_throughput_tokens_per_sec"]),
                    "tput_pred": float(s.output_tokens_per_s),
                    "joins_per_step": float(s.joins_per_step)})
    df = pd.DataFrame(out)
    for name, meas, pred in (("power", "power_meas_w", "power_pred_w"),
                             ("jpt", "jpt_meas", "jpt_pred"), ("itl", "itl_meas_ms", "itl_pred_ms"),
                             ("tput", "tput_meas", "tput_pred")):
        df[f"{name}_err"] = df[pred] / df[meas] - 1.0
    return df


def _log_sse(rows: pd.DataFrame, profile, prompts=PROMPTS, runtime=RUNTIME) -> float:
    """Sum of squared log errors of the predicted output throughput of `rows`."""
    err = [np.log(float(steady_of(profile, r, ALL_MODELS, prompts, runtime)
                        .output_tokens_per_s) / float(r["output_throughput_tokens_per_sec"]))
           for _, r in rows.iterrows()]
    return float(np.sum(np.square(err)))


def fit_prompt(rows: pd.DataFrame, profile) -> float:
    """lm-arena-chat prompt tokens minimising the calibration rows' throughput error."""
    cal = rows[_fit_rows(rows, CALIBRATION)]
    res = minimize_scalar(lambda p: _log_sse(cal, profile, PROMPTS | {"lm-arena-chat": p}),
                          bounds=(16.0, 4096.0), method="bounded", options={"xatol": 1.0})
    return float(res.x)


def _bf16_twin(rows: pd.DataFrame, r) -> pd.Series | None:
    """The BF16 row matching FP8 row `r` (same model without -FP8, task, GPUs,
    max_num_seqs), or None."""
    twin = rows[(rows["model_id"] == r["model_id"].removesuffix("-FP8"))
                & (rows["weight_precision"] == "bfloat16") & (rows["task"] == r["task"])
                & (rows["num_gpus"] == r["num_gpus"])
                & (rows["max_num_seqs"] == r["max_num_seqs"])]
    return twin.iloc[0] if len(twin) else None


def fit_fp8_expert_tile_rows(rows: pd.DataFrame, profile) -> float:
    """The vllm runtime's fp8_e4m3 `efficiency.expert_tile_rows` minimising the squared
    log error of the FP8_FIT rows' output throughput relative to their BF16 twins'
    (`_bf16_twin`; FP8 rows without one are left out): the FP8 expert kernel's own work,
    with what both precisions' steps miss alike cancelled. The BF16 predictions do not
    depend on the tile rows (the other runtime fields as runtimes/vllm.yaml states them)."""
    fit = rows[_fit_rows(rows, FP8_FIT, True)]
    pairs = [(r, t) for _, r in fit.iterrows() if (t := _bf16_twin(rows, r)) is not None]
    stored = load_runtime(RUNTIME)

    def tput(r, runtime=RUNTIME):
        return float(steady_of(profile, r, ALL_MODELS, runtime=runtime).output_tokens_per_s)
    meas = np.log([r["output_throughput_tokens_per_sec"] / t["output_throughput_tokens_per_sec"]
                   for r, t in pairs])
    bf16 = np.array([tput(t) for _, t in pairs])

    def sse(tile_rows):
        eff = stored.efficiency.model_copy(update={"expert_tile_rows": {
            "fp8_e4m3": Count(value=float(tile_rows), assumed="being fitted")}})
        engine = stored.model_copy(update={"efficiency": eff})
        pred = np.log([tput(r, engine) for r, _ in pairs] / bf16)
        return float(np.sum(np.square(pred - meas)))
    res = minimize_scalar(sse, bounds=(1.0, 1024.0), method="bounded", options={"xatol": 0.5})
    return float(res.x)


def fit_power(rows: pd.DataFrame, profile) -> tuple[float, float]:
    """(active W, compute scale k): least squares of measured power - predicted memory
    power = active + k x predicted compute power over the calibration rows' mean steps
    (memory energies stay at their cited per-byte values: every row streams HBM at the
    same rate, so a memory scale would be collinear with `active`). No row reaches the
    cap, so board power = active + compute J / s + memory J / s exactly."""
    cal = rows[_fit_rows(rows, CALIBRATION)]
    comp, mem = [], []
    for _, r in cal.iterrows():
        s = steady_of(profile, r, ALL_MODELS)
        t = float(s.step_s)
        comp.append(float(s.dynamic_j["compute"]) / t)
        mem.append(sum(float(v) for k, v in s.dynamic_j.items() if k != "compute") / t)
    x = np.c_[np.ones(len(comp)), comp]
    y = cal["avg_power_watts_per_gpu"].astype(float).to_numpy() - np.asarray(mem)
    (active, k), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(active), float(k)


def _errors(part: pd.DataFrame) -> dict:
    out = {"n": len(part)}
    for name in ("power", "jpt", "itl", "tput"):
        err = part[f"{name}_err"].abs()
        out |= {f"{name}_median": err.median(), f"{name}_worst": err.max()}
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median / worst |error| per GPU count, architecture and precision (fit and held-out
    rows apart), then per group of held-out rows (1 GPU dense, multi-GPU, MoE, FP8,
    batch bins) and over all of them."""
    fit = df["calibration"] | df["fp8_fit"]
    groups = []
    for (gpus, moe, prec), g in df.groupby(["gpus", "moe", "precision"]):
        for subset, part in (("fit", g[fit[g.index]]), ("held out", g[~fit[g.index]])):
            if len(part):
                groups.append({"group": f"{gpus} GPU {'MoE' if moe else 'dense'} {prec}",
                               "rows": subset, **_errors(part)})
    held = df[~fit]
    bins = pd.cut(held["batch"], [0, 16, 64, 256, np.inf],
                  labels=["batch <= 16", "batch 17-64", "batch 65-256", "batch > 256"])
    for label, part in (("1 GPU dense", held[(held["gpus"] == 1) & ~held["moe"]]),
                        ("1 GPU", held[held["gpus"] == 1]), ("2-8 GPUs", held[held["gpus"] > 1]),
                        ("MoE", held[held["moe"]]), ("FP8", held[held["precision"] == "fp8"]),
                        *((str(b), held[bins == b]) for b in bins.cat.categories),
                        ("all", held)):
        groups.append({"group": label, "rows": "held out", **_errors(part)})
    return pd.DataFrame(groups)


def matched_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """FP8 / BF16 ratios of power and J/token, predicted and measured, on the rows that
    differ only in checkpoint precision (same model, task, GPUs, max_num_seqs), with the
    sign of the FP8 J/token change, measured and predicted ("+": FP8 costs more)."""
    base = df.assign(base=df["model"].str.removesuffix("-FP8"))
    key = ["base", "task", "gpus", "max_num_seqs"]
    both = base[base["precision"] == "fp8"].merge(base[base["precision"] == "bfloat16"],
                                                    on=key, suffixes=("_fp8", "_bf16"))
    out = pd.DataFrame({
        "batch_bf16": both["batch_bf16"], "batch_fp8": both["batch_fp8"],
        "power_meas": both["power_meas_w_fp8"] / both["power_meas_w_bf16"],
        "power_pred": both["power_pred_w_fp8"] / both["power_pred_w_bf16"],
        "jpt_meas": both["jpt_meas_fp8"] / both["jpt_meas_bf16"],
        "jpt_pred": both["jpt_pred_fp8"] / both["jpt_pred_bf16"]})
    out = pd.concat([both[key], out], axis=1)
    for col in ("meas", "pred"):
        out[f"sign_{col}"] = np.where(out[f"jpt_{col}"] > 1.0, "+", "-")
    out["jpt_sign_right"] = out["sign_meas"] == out["sign_pred"]
    return out


#: ML.ENERGY blog medians of the FP8 J/token change per batch bin over the models with
#: official BF16 and FP8 checkpoints on H100 and B200 (power_energy_relative.csv rows
#: 54-56: 7, 13 and 12 comparisons; Qwen3-Coder-480B excluded), batch bin edges.
BLOG_MEDIANS = ((8, 16, 0.30), (17, 64, 0.01), (65, 256, -0.11))


def sign_by_bin(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per blog batch bin: the matched H100 pairs' median FP8 J/token change, measured
    and predicted, beside the blog's median over all its pairs (H100 and B200)."""
    rows = []
    for lo, hi, blog in BLOG_MEDIANS:
        part = pairs[(pairs["batch_fp8"] >= lo) & (pairs["batch_fp8"] <= hi)]
        rows.append({"batch": f"{lo}-{hi}", "pairs": len(part),
                     "meas_median_change": part["jpt_meas"].median() - 1.0,
                     "pred_median_change": part["jpt_pred"].median() - 1.0,
                     "signs_right": f"{int(part['jpt_sign_right'].sum())}/{len(part)}",
                     "blog_median_change": blog})
    return pd.DataFrame(rows)


def dense_fp8_vs_bf16(profile) -> pd.DataFrame:
    """Predicted FP8/BF16 J/token change of a dense model on one H100 (Qwen3-14B, 620
    output tokens, lm-arena-chat prompts) at batch 8 and 256: no measurement to check it
    against (no dense FP8 checkpoint on H100 in the data; the blog medians are over the
    MoE pairs above)."""
    rows = []
    for batch in (8, 256):
        e = {prec: float(steady_of(profile, pd.Series({
            "model_id": "Qwen/Qwen3-14B", "weight_precision": prec, "task": "lm-arena-chat",
            "avg_batch_size": batch, "avg_output_len_tokens": 620, "tensor_parallel": 1,
            "expert_parallel": 1, "data_parallel": 1}), ALL_MODELS).energy_per_token_j)
            for prec in ("bfloat16", "fp8")}
        rows.append({"batch": batch, "pred_change": e["fp8"] / e["bfloat16"] - 1.0})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path = PLOT) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (meas, pred, label) in zip(axes, (("power_meas_w", "power_pred_w", "power (W)"),
                                              ("jpt_meas", "jpt_pred", "J per token"))):
        for name, part, marker in (
                ("fit rows", df[df["calibration"] | df["fp8_fit"]], "o"),
                ("held out, 1 GPU", df[~df["calibration"] & (df["gpus"] == 1)], "x"),
                ("held out, 2-8 GPUs", df[~df["fp8_fit"] & (df["gpus"] > 1)], "+")):
            ax.scatter(part[meas], part[pred], marker=marker, label=name)
        lo, hi = df[[meas, pred]].min().min() * 0.8, df[[meas, pred]].max().max() * 1.2
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlabel=f"measured {label}", ylabel=f"PrecSim {label}", xlim=(lo, hi),
               ylim=(lo, hi), title=f"H100 SXM, ML.ENERGY v3: {label}")
        if label.startswith("J"):
            ax.set(xscale="log", yscale="log")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true",
                        help="fit the chat prompt length, the vllm FP8 expert tile rows "
                             "and the h100-sxm power constants on their fit rows; print them")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    profile = load_profile(PROFILES["H100"])
    rows, skipped = load_rows()
    if args.fit:
        print(f"lm-arena-chat prompt tokens: {fit_prompt(rows, profile):.0f} "
              f"(mlenergy_rows.PROMPTS holds {PROMPTS['lm-arena-chat']})")
        print(f"vllm fp8_e4m3 expert tile rows: {fit_fp8_expert_tile_rows(rows, profile):.0f}")
        active, k = fit_power(rows, profile)
        print(f"h100-sxm power.active = {active:.1f} W; compute energies x {k:.3f} "
              f"(the profile holds {profile.power.active.value:.0f} W and x 1, kept: the "
              "re-fit does worse on the held-out rows, docs/energy.md)")
        return
    df = predict(rows, profile)
    pd.set_option("display.width", 200)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nmedian / worst |error| per group (fit rows apart):")
    print(summary(df).to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    print("\nrows not expressible:")
    for reason, n in sorted(skipped.items()):
        print(f"  {n:4d}  {reason}")
    pairs = matched_pairs(df)
    print("\nFP8-vs-BF16 sign table: matched FP8 / BF16 rows (ratios FP8/BF16; sign of the "
          "FP8 J/token change, + = FP8 costs more):")
    print(pairs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"J/token sign right on {int(pairs['jpt_sign_right'].sum())} of {len(pairs)} pairs")
    print("\nper batch bin (median FP8 J/token change; blog: H100 + B200 pairs):")
    print(sign_by_bin(pairs).to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    print("\ndense FP8 vs BF16 on one H100 (Qwen3-14B; predicted only, no measured pair):")
    print(dense_fp8_vs_bf16(profile).to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    if not args.no_plot:
        print(f"\nplot -> {plot(df).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
