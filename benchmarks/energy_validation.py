"""Energy validation: PrecSim's board power and J/token vs ML.ENERGY Benchmark v3.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/energy_validation.py [--fit] [--no-plot]

Rows: shared/reference/data/mlenergy_v3_llm_configs.csv (vLLM 0.11.1 serving at steady
state; GPU-only power, no host/PUE). A row is expressed as `simulate` of a batch of B
requests (B = the row's avg_batch_size, rounded) with the row's average output length
and an assumed prompt of PROMPT_TOKENS tokens (the file gives no input length), at the
row's weight precision: the same prefill + decode work per output token as the steady
state. Power = average_power_w, J/token = energy_per_token_j. Rows that PrecSim cannot
express are counted by reason (no profile for the GPU, several GPUs until tensor
parallelism lands, MoE / Mamba-hybrid architectures, model shapes not transcribed).

Calibration: `--fit` fits two h100-sxm parameters, the `active` baseline power and one
scale on the per-op compute energies (`fit_power`), by least squares over the
CALIBRATION rows only (Qwen3-8B on lm-arena-chat); every other row is held out.
hw_profiles/h100-sxm.yaml records the result (a re-run prints scale 1.000).
Prints the per-row table, the median and worst |error| per GPU and precision (all,
calibration and held-out rows), the FP8-vs-BF16 check, and writes
docs/img/energy_pred_vs_meas.png.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.cost import simulate
from precsim.simulator.models import TransformerConfig
from precsim.simulator.profile_loader import load_profile

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PRECSIM_REFERENCE_DATA",
                           ROOT.parent.parent / "shared" / "reference" / "data"))
CSV = "mlenergy_v3_llm_configs.csv"
PLOT = ROOT / "docs" / "img" / "energy_pred_vs_meas.png"
#: Prompt tokens per request: ML.ENERGY v3 publishes output lengths only. Assumption:
#: chat turns and GPQA questions of a few hundred tokens.
PROMPT_TOKENS = 256
PROFILES = {"H100": "h100-sxm"}
PRECISIONS = {"bfloat16": "W16A16", "fp8": "FP8"}
CALIBRATION = {("Qwen/Qwen3-8B", "lm-arena-chat")}


def _cfg(name, layers, d, heads, kv, ff, vocab, head_dim, act, tied):
    return TransformerConfig(name=name, n_layers=layers, d_model=d, n_heads=heads,
                             n_kv_heads=kv, d_ff=ff, vocab_size=vocab, head_dim=head_dim,
                             activation=act, tied_embeddings=tied,
                             source=f"huggingface.co/{name} config.json")


#: Shapes from each model's published config.json (Gemma 3: 5 of 6 layers use a 1024-token
#: sliding window; contexts here stay near or below it, so full attention is used).
MODELS = {m.name: m for m in (
    _cfg("Qwen/Qwen3-8B", 36, 4096, 32, 8, 12288, 151936, 128, "silu", False),
    _cfg("Qwen/Qwen3-14B", 40, 5120, 40, 8, 17408, 151936, 128, "silu", False),
    _cfg("google/gemma-3-12b-it", 48, 3840, 16, 8, 15360, 262208, 256,
         "gelu_pytorch_tanh", True),
    _cfg("google/gemma-3-27b-it", 62, 5376, 32, 16, 21504, 262208, 128,
         "gelu_pytorch_tanh", True),
)}


def load_rows(path: Path = DATA / CSV) -> tuple[pd.DataFrame, dict]:
    """Expressible rows and {reason: count} for the others."""
    keep, skipped = [], {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            reason = None
            if row["gpu_model"] not in PROFILES:
                reason = f"no PrecSim profile for {row['gpu_model']}"
            elif int(row["num_gpus"]) > 1:
                reason = "several GPUs: not expressible until parallelism lands"
            elif row["architecture"] != "Dense Transformer":
                reason = f"{row['architecture']}: not expressible (no MoE/hybrid model)"
            elif row["model_id"] not in MODELS:
                reason = "dense model whose shape is not transcribed here"
            elif row["weight_precision"] not in PRECISIONS:
                reason = f"precision {row['weight_precision']} not mapped"
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                keep.append(row)
    return pd.DataFrame(keep), skipped


def predict(rows: pd.DataFrame, profile) -> pd.DataFrame:
    """Predicted power (W) and J/token for every row on `profile`."""
    out = []
    for _, r in rows.iterrows():
        batch = max(1, round(float(r["avg_batch_size"])))
        gen = max(2, round(float(r["avg_output_len_tokens"])))
        t = simulate(profile, MODELS[r["model_id"]], PRECISIONS[r["weight_precision"]],
                     batch, PROMPT_TOKENS, gen).totals
        out.append({"model": r["model_id"].split("/")[1], "task": r["task"],
                    "gpu": r["gpu_model"], "precision": r["weight_precision"],
                    "batch": batch, "calibration": (r["model_id"], r["task"]) in CALIBRATION,
                    "power_meas_w": float(r["avg_power_watts_per_gpu"]),
                    "power_pred_w": float(t["average_power_w"]),
                    "jpt_meas": float(r["energy_per_token_joules"]),
                    "jpt_pred": float(t["energy_per_token_j"]),
                    "itl_meas_ms": float(r["median_itl_ms"]),
                    "tpot_pred_ms": 1e3 * float(t["tpot_s"]),
                    "static_share": float(t["energy_static_j"] / t["energy_j"])})
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
        t = simulate(profile, MODELS[r["model_id"]], PRECISIONS[r["weight_precision"]],
                     max(1, round(float(r["avg_batch_size"]))), PROMPT_TOKENS,
                     max(2, round(float(r["avg_output_len_tokens"])))).totals
        comp.append(float(t["energy_compute_j"] / t["e2e_latency_s"]))
        mem.append(float(sum(t["energy_memory_j"].values()) / t["e2e_latency_s"]))
    x = np.c_[np.ones(len(comp)), comp]
    y = cal["avg_power_watts_per_gpu"].astype(float).to_numpy() - np.asarray(mem)
    (active, k), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(active), float(k)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    groups = []
    for (gpu, prec), g in df.groupby(["gpu", "precision"]):
        for subset, part in (("all", g), ("calibration", g[g["calibration"]]),
                             ("held out", g[~g["calibration"]])):
            if len(part):
                groups.append({"gpu": gpu, "precision": prec, "rows": subset, "n": len(part),
                               "power_median_abs_err": part["power_err"].abs().median(),
                               "power_worst_abs_err": part["power_err"].abs().max(),
                               "jpt_median_abs_err": part["jpt_err"].abs().median(),
                               "jpt_worst_abs_err": part["jpt_err"].abs().max()})
    return pd.DataFrame(groups)


def fp8_vs_bf16(profile) -> pd.DataFrame:
    """Predicted FP8/BF16 J/token at batch 8 and 256 (Qwen3-14B, 620 output tokens);
    measured (ML.ENERGY blog, H100/B200 pairs): +30% median at batch 8-16, -11% at
    65-256 (power_energy_relative.csv)."""
    rows = []
    for batch, measured in ((8, 0.30), (256, -0.11)):
        e = {q: float(simulate(profile, MODELS["Qwen/Qwen3-14B"], q, batch, PROMPT_TOKENS,
                               620).totals["energy_per_token_j"]) for q in ("W16A16", "FP8")}
        rows.append({"batch": batch, "pred_change": e["FP8"] / e["W16A16"] - 1.0,
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
        for cal, marker in ((True, "o"), (False, "x")):
            part = df[df["calibration"] == cal]
            ax.scatter(part[meas], part[pred], marker=marker,
                       label="calibration" if cal else "held out")
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
              "(1.000: the profile already holds the fit)")
        return
    df = predict(rows, profile)
    pd.set_option("display.width", 200)
    print(df.drop(columns=["gpu"]).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nmedian / worst |error| per GPU and precision:")
    print(summary(df).to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    print("\nrows not expressible:")
    for reason, n in sorted(skipped.items()):
        print(f"  {n:4d}  {reason}")
    print("\nFP8 vs BF16 energy per token (predicted vs measured median change):")
    print(fp8_vs_bf16(profile).to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    if not args.no_plot:
        print(f"\nplot -> {plot(df).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
