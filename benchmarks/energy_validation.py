"""Energy validation: PrecSim's board power and J/token vs ML.ENERGY Benchmark v3.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/energy_validation.py [--fit] [--no-plot]

Rows: shared/reference/data/mlenergy_v3_llm_configs.csv (vLLM 0.11.1 serving at steady
state; GPU-only power, no host/PUE). A row is expressed as `simulate_parallel` of one
replica of the row's layout (benchmarks/mlenergy_rows.py: the mapping shared with
parallel_validation.py; one GPU = tp 1) serving a batch of B requests (B = the row's
avg_batch_size, rounded) with the row's average output length and an assumed prompt of
PROMPT_TOKENS tokens (the file gives no input length), at the row's weight precision.
Power = avg_power_watts_per_gpu (predicted: replica power / GPUs), J/token =
energy_per_token_joules (all GPUs). Rows that PrecSim cannot express are counted by
reason. Multi-GPU and MoE rows were added after the fit: they are a pure check.

Calibration: `--fit` fits two h100-sxm parameters, the `active` baseline power and one
scale on the per-op compute energies (`fit_power`), by least squares over the
CALIBRATION rows only (Qwen3-8B on lm-arena-chat); every other row is held out.
hw_profiles/h100-sxm.yaml records the result (a re-run prints scale 1.05: rounding of
the stored per-op energies and the vector engine's share, docs/energy.md).
Prints the per-row table, the median and worst |error| per GPU count, architecture and
precision (calibration and held-out rows apart), the matched FP8/BF16 row pairs and the
FP8-vs-BF16 sign check, and writes docs/img/energy_pred_vs_meas.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlenergy_rows import CONFIGS_CSV, MODELS, PROFILES, expressible, layout_of, quant_of  # noqa: E402
from precsim.simulator.cost import simulate  # noqa: E402
from precsim.simulator.models import TransformerConfig, get_model  # noqa: E402
from precsim.simulator.parallel import simulate_parallel  # noqa: E402
from precsim.simulator.profile_loader import load_profile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "energy_pred_vs_meas.png"
#: Prompt tokens per request: ML.ENERGY v3 publishes output lengths only. Assumption:
#: chat turns and GPQA questions of a few hundred tokens.
PROMPT_TOKENS = 256
CALIBRATION = {("Qwen/Qwen3-8B", "lm-arena-chat")}


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


def _totals(profile, r) -> dict:
    return simulate_parallel(profile, ALL_MODELS[r["model_id"]], quant_of(r["weight_precision"]),
                             max(1, round(float(r["avg_batch_size"]))), PROMPT_TOKENS,
                             max(2, round(float(r["avg_output_len_tokens"]))),
                             layout_of(r)).totals


def predict(rows: pd.DataFrame, profile) -> pd.DataFrame:
    """Predicted per-GPU power (W) and J/token (all GPUs) for every row on `profile`."""
    out = []
    for _, r in rows.iterrows():
        t = _totals(profile, r)
        out.append({"model": r["model_id"].split("/")[1], "task": r["task"],
                    "gpu": r["gpu_model"], "gpus": int(r["num_gpus"]),
                    "moe": r["architecture"] != "Dense Transformer",
                    "precision": r["weight_precision"], "max_num_seqs": int(r["max_num_seqs"]),
                    "batch": max(1, round(float(r["avg_batch_size"]))),
                    "calibration": (r["model_id"], r["task"]) in CALIBRATION,
                    "power_meas_w": float(r["avg_power_watts_per_gpu"]),
                    "power_pred_w": float(t["average_power_w"] / t["devices_per_replica"]),
                    "jpt_meas": float(r["energy_per_token_joules"]),
                    "jpt_pred": float(t["energy_per_token_j"]),
                    "itl_meas_ms": float(r["median_itl_ms"]),
                    "tpot_pred_ms": 1e3 * float(t["tpot_s"]),
                    "static_share": float(t["energy_static_j"] * t["devices_per_replica"]
                                          / t["energy_j"])})
    df = pd.DataFrame(out)
    df["power_err"] = df["power_pred_w"] / df["power_meas_w"] - 1.0
    df["jpt_err"] = df["jpt_pred"] / df["jpt_meas"] - 1.0
    return df


def fit_power(rows: pd.DataFrame, profile) -> tuple[float, float]:
    """(active W, compute scale k): least squares of measured power - predicted memory
    power = active + k x predicted compute power over the calibration rows (memory
    energies stay at their cited per-byte values: every row streams HBM at the same
    rate, so a memory scale would be collinear with `active`). No row reaches the cap,
    so board power = active + compute J / s + memory J / s exactly."""
    cal = rows[[(m, t) in CALIBRATION for m, t in zip(rows["model_id"], rows["task"])]]
    comp, mem = [], []
    for _, r in cal.iterrows():
        t = simulate(profile, get_model(ALL_MODELS[r["model_id"]]),
                     quant_of(r["weight_precision"]),
                     max(1, round(float(r["avg_batch_size"]))), PROMPT_TOKENS,
                     max(2, round(float(r["avg_output_len_tokens"])))).totals
        comp.append(float(t["energy_compute_j"] / t["e2e_latency_s"]))
        mem.append(float(sum(t["energy_memory_j"].values()) / t["e2e_latency_s"]))
    x = np.c_[np.ones(len(comp)), comp]
    y = cal["avg_power_watts_per_gpu"].astype(float).to_numpy() - np.asarray(mem)
    (active, k), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(active), float(k)


def _errors(part: pd.DataFrame) -> dict:
    return {"n": len(part), "power_median_abs_err": part["power_err"].abs().median(),
            "power_worst_abs_err": part["power_err"].abs().max(),
            "jpt_median_abs_err": part["jpt_err"].abs().median(),
            "jpt_worst_abs_err": part["jpt_err"].abs().max()}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median / worst |error| per GPU count, architecture and precision (calibration and
    held-out rows apart), then over all held-out rows."""
    groups = []
    for (gpus, moe, prec), g in df.groupby(["gpus", "moe", "precision"]):
        for subset, part in (("calibration", g[g["calibration"]]),
                             ("held out", g[~g["calibration"]])):
            if len(part):
                groups.append({"gpus": gpus, "arch": "MoE" if moe else "dense",
                               "precision": prec, "rows": subset, **_errors(part)})
    for label, part in (("1", df[(df["gpus"] == 1) & ~df["calibration"]]),
                        (">1", df[df["gpus"] > 1]), ("any", df[~df["calibration"]])):
        groups.append({"gpus": label, "arch": "all", "precision": "all",
                       "rows": "held out", **_errors(part)})
    return pd.DataFrame(groups)


def matched_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """FP8 / BF16 ratios of power and J/token, predicted and measured, on the rows that
    differ only in checkpoint precision (same model, task, GPUs, max_num_seqs)."""
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
    out["jpt_sign_right"] = np.sign(out["jpt_pred"] - 1) == np.sign(out["jpt_meas"] - 1)
    return out


def fp8_vs_bf16(profile) -> pd.DataFrame:
    """Predicted FP8/BF16 J/token at batch 8 and 256 (Qwen3-14B, one GPU, 620 output
    tokens); measured (ML.ENERGY blog, H100/B200 pairs): +30% median at batch 8-16, -11%
    at 65-256 (power_energy_relative.csv)."""
    rows = []
    for batch, measured in ((8, 0.30), (256, -0.11)):
        e = {q: float(simulate(profile, get_model("qwen3-14b"), q, batch, PROMPT_TOKENS,
                               620).totals["energy_per_token_j"]) for q in ("BF16", "FP8")}
        rows.append({"batch": batch, "pred_change": e["FP8"] / e["BF16"] - 1.0,
                     "meas_median_change": measured})
    out = pd.DataFrame(rows)
    out["sign_right"] = np.sign(out["pred_change"]) == np.sign(out["meas_median_change"])
    return out


def plot(df: pd.DataFrame, path: Path = PLOT) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (meas, pred, label) in zip(axes, (("power_meas_w", "power_pred_w", "power (W)"),
                                              ("jpt_meas", "jpt_pred", "J per token"))):
        for name, part, marker in (
                ("calibration", df[df["calibration"]], "o"),
                ("held out, 1 GPU", df[~df["calibration"] & (df["gpus"] == 1)], "x"),
                ("held out, 2-8 GPUs", df[df["gpus"] > 1], "+")):
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
                        help="fit h100-sxm power.active on the calibration rows and print it")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    profile = load_profile(PROFILES["H100"])
    rows, skipped = load_rows()
    if args.fit:
        active, k = fit_power(rows, profile)
        print(f"fitted h100-sxm power.active = {active:.1f} W; compute energies x {k:.3f} "
              "(about 1: the profile already holds the fit)")
        return
    df = predict(rows, profile)
    pd.set_option("display.width", 200)
    print(df.drop(columns=["gpu"]).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nmedian / worst |error| per GPU and precision:")
    print(summary(df).to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    print("\nrows not expressible:")
    for reason, n in sorted(skipped.items()):
        print(f"  {n:4d}  {reason}")
    print("\nmatched FP8 / BF16 rows (ratios FP8/BF16):")
    print(matched_pairs(df).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nFP8 vs BF16 energy per token (predicted vs measured median change):")
    print(fp8_vs_bf16(profile).to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    if not args.no_plot:
        print(f"\nplot -> {plot(df).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
