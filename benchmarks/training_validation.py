"""Training-step model against published runs: tokens/s per GPU, predicted vs measured.

Reads ../shared/reference/data/training_calibration.csv (or --data), maps every row that
PrecSim can express (a profiled GPU, a model whose shape is published, the layout,
micro-batch and recompute mode the row states) onto `simulator.training.training_step`,
and prints predicted vs published per row, the median and worst |error| per GPU and
precision (calibration rows and held-out rows apart), and the FP8 / BF16 speedup at
matched configurations. Rows it cannot express are listed with the reason.

Calibration rows: llm-foundry's runs at sequences up to 2048 and at 8192 (the
attention rate) (the profile's training.gemm_efficiency
values are fitted on them with --fit: one number per GPU and GEMM type, the median error
of those rows set to zero). Every other row is held out.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/training_validation.py [--fit] [--json]
        [--plot docs/img/training_pred_vs_meas.png] [--markdown]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.models import TransformerConfig, get_model
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.training import training_step

#: ../shared/reference/data beside the checkout (as the workspace and CI lay it out)
DATA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "data" \
    / "training_calibration.csv"

# llm-foundry scripts/train/yamls/pretrain/mpt-*.yaml: d_model, n_layers, n_heads
# (expansion_ratio 4, vocab 50368, GELU, LayerNorm, tied embeddings)
_MPT = {"125m": (768, 12, 12), "350m": (1024, 24, 16), "760m": (1536, 24, 12),
        "1b": (2048, 24, 16), "3b": (2560, 32, 20), "7b": (4096, 32, 32),
        "13b": (5120, 40, 40), "30b": (7168, 48, 64), "70b": (8192, 80, 64)}
# Hugging Face config.json of meta-llama/Llama-2-13b-hf, CodeLlama-34b-hf,
# Llama-2-70b-hf, Meta-Llama-3-70B: d_model, layers, heads, kv heads, d_ff, vocab
_LLAMA = {"llama 2 13b": (5120, 40, 40, 40, 13824, 32000),
          "llama 2 34b": (8192, 48, 64, 8, 22016, 32000),
          "llama 2 70b": (8192, 80, 64, 8, 28672, 32000),
          "llama 3 70b": (8192, 80, 64, 8, 28672, 128256)}
# karpathy/llm.c train_gpt2.cu model presets (d12/d24/d36/d48), padded vocab 50304
_GPT2 = {"124m": (768, 12, 12), "350m": (1024, 24, 16), "774m": (1280, 36, 20),
         "1558m": (1600, 48, 25)}


@dataclass
class Case:
    row: int
    gpu: str
    profile: object
    model: TransformerConfig
    recipe: str
    seq: int
    global_batch: int
    devices: int
    zero: int
    recompute: str
    micro_batch: int | None
    measured: float
    calibration: bool
    source: str


def _gpt_like(name: str, shape: tuple, vocab: int, source: str) -> TransformerConfig:
    """MPT / GPT-2 blocks: MHA, GELU FFN of 4 d, LayerNorm, tied embeddings."""
    d, L, h = shape
    return TransformerConfig(name, L, d, h, h, 4 * d, vocab, gated_ffn=False,
                             activation="gelu", tied_embeddings=True, norm="layernorm",
                             source=source)


def _model(name: str) -> TransformerConfig | None:
    low = name.lower().replace("llama3", "llama 3").replace("-", " ")
    m = re.search(r"mpt (\w+)", low)
    if m and m.group(1) in _MPT:
        return _gpt_like(f"mpt-{m.group(1)}", _MPT[m.group(1)], 50368,
                         "llm-foundry mpt yaml")
    m = re.search(r"gpt 2 (\d+m)", low)
    if m and m.group(1) in _GPT2:
        return _gpt_like(f"gpt2-{m.group(1)}", _GPT2[m.group(1)], 50304,
                         "llm.c train_gpt2.cu")
    low = low.replace("arch ", "").replace("3.1", "3")
    if re.search(r"llama 3 8b", low):
        return get_model("llama-3-8b")
    if re.search(r"llama 2 7b", low):
        return get_model("llama-2-7b")
    for key, (d, L, h, kv, ff, v) in _LLAMA.items():
        if key in low:
            return TransformerConfig(key.replace(" ", "-"), L, d, h, kv, ff, v,
                                     source="Hugging Face config.json")
    return None


def _profile(hardware: str):
    """(gpu label, profile) or a reason string."""
    if "96GB" in hardware or "500W" in hardware:
        return "power-capped 96 GB H100 (torchtitan): not a profiled part"
    if hardware.startswith("H100"):
        return "H100", load_profile("h100-sxm")
    if hardware.startswith("A100 40GB"):
        return "A100-40GB", load_profile("a100-sxm-80gb").with_overrides(
            {"memory.hbm.capacity": "40 GB", "memory.hbm.bandwidth": "1.555 TB/s"},
            name="a100-sxm-40gb")
    if hardware.startswith("A100"):
        return "A100", load_profile("a100-sxm-80gb")
    return f"no profile for {hardware.split(' (')[0]}"


def _first_int(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def parse(rows: list[dict]) -> tuple[list[Case], list[tuple[int, str, str]]]:
    """Expressible rows as Cases, the others as (row, model, reason)."""
    cases, skipped = [], []
    for i, r in enumerate(rows, start=2):
        label = f"{r['hardware']} {r['model']}"

        def skip(reason):
            skipped.append((i, label, reason))
        tok = re.match(r"~?([\d.]+)", r["tokens_per_s_per_gpu"] or "")
        if not tok:
            skip("no tokens/s per GPU published (TFLOP/s or MFU only)")
            continue
        prof = _profile(r["hardware"])
        if isinstance(prof, str):
            skip(prof)
            continue
        model = _model(r["model"])
        if model is None:
            skip("model shape not published in the row")
            continue
        prec = r["precision"]
        if "rowwise" in prec or "MXFP8" in prec:
            skip("rowwise / MX scaling: not a modelled recipe")
            continue
        recipe = "fp8" if prec.upper().startswith("FP8") else "bf16"
        seq = _first_int(r["seq_len"], r"(\d+)")
        devices = _first_int(r["num_gpus"], r"(\d+)")
        batch = r["global_batch_tokens_or_batch"]
        par = r["parallelism"]
        mb = (_first_int(batch, r"microbatch (\d+)") or _first_int(batch, r"local batch (\d+)")
              or _first_int(batch, r"(\d+) seqs per GPU")
              or _first_int(batch, r"batch size (\d+) \(per GPU\)"))
        tokens = _first_int(batch, r"^(\d+) tokens")
        if tokens is None and mb is not None:
            tokens = mb * devices * seq
        if tokens is None:
            skip("global batch not stated")
            continue
        low = par.lower()
        recompute = ("full" if re.search(r"checkpointing=true|: full|checkpoint: yes|full ac",
                                         low)
                     else "selective" if "selective" in low else "none")
        zero = 3 if "fsdp" in low else 1 if "zero-1" in low else 0
        if "tp" in low.replace("fsdp", "") or "pp" in low.replace("fsdp", ""):
            skip("tensor / pipeline layout with AsyncTP or interleaving: not modelled")
            continue
        cases.append(Case(i, prof[0], prof[1], model, recipe, seq, tokens, devices, zero,
                          recompute, mb, float(tok.group(1)),
                          "llm-foundry" in r["source"] and (seq <= 2048 or seq == 8192),
                          r["source"].split(" ")[0]))
    return cases, skipped


def predict(case: Case, profile=None) -> float:
    step = training_step(profile or case.profile, case.model, case.recipe, seq=case.seq,
                         global_batch=case.global_batch, devices=case.devices,
                         zero=case.zero, recompute=case.recompute,
                         micro_batch=case.micro_batch)
    return float(step.tokens_per_s_per_device)


def _with(profile, **values):
    """`profile` with training efficiencies set (what --fit varies)."""
    keys = {"gemm_bf16": "training.gemm_efficiency.bf16",
            "gemm_fp8": "training.gemm_efficiency.fp8_e4m3",
            "memory": "training.memory_efficiency"}
    out = {keys[k]: {"value": float(v), "assumed": "fit"} for k, v in values.items()
           if k in keys}
    if "attention" in values:  # a share of ATTENTION_SPAN
        out["training.attention_rate"] = {
            "value": f"{values['attention'] * ATTENTION_SPAN / 1e12:.6g} TFLOP/s",
            "assumed": "fit"}
    return profile.with_overrides(out)


#: --fit varies the attention rate as a share of this (FLOP/s)
ATTENTION_SPAN = 600e12


def fit(cases: list[Case]) -> dict:
    """Per profile: bf16 and fp8 gemm_efficiency and memory_efficiency minimising the
    squared log error of its calibration rows. The step time is affine in the inverse
    efficiencies (GEMMs compute-bound, streaming kernels memory-bound),
    t = sum_k a_k / e_k + c: one evaluation at 1 and one per parameter at 1/2 give the
    coefficients of each row, a grid the optimum."""
    names = ("gemm_bf16", "memory", "gemm_fp8")
    out = {}
    by_profile = {}
    for c in cases:
        if c.calibration:
            by_profile.setdefault(c.profile.name.replace("-40gb", "-80gb"), []).append(c)
    for name, cal in sorted(by_profile.items()):
        params = names if any(c.recipe == "fp8" for c in cal) else names[:2]
        if any(c.seq > 2048 for c in cal):
            params = params + ("attention",)
        coef = []
        for c in cal:
            def t(**kw):
                return c.global_batch / c.devices / predict(
                    c, _with(c.profile, **{k: kw.get(k, 1.0) for k in params}))
            base = t()
            a = [t(**{k: 0.5}) - base for k in params]
            coef.append(a + [base - sum(a), c.global_batch / c.devices / c.measured])
        coef = np.array(coef)
        grid = np.linspace(0.2, 1.0, 41 if len(params) > 3 else 81)
        mesh = np.meshgrid(*[grid] * len(params), indexing="ij", sparse=True)
        loss = 0.0
        for row in coef:
            pred = row[-2] + sum(a / e for a, e in zip(row[:-2], mesh))
            loss = loss + np.log(pred / row[-1]) ** 2
        best = np.unravel_index(np.argmin(loss), loss.shape)
        for k, i in zip(params, best):
            out[f"{name} {k}"] = (round(float(grid[i]), 3), len(cal))
    return out


def evaluate(cases: list[Case]) -> list[dict]:
    out = []
    for c in cases:
        try:
            pred = predict(c)
        except InputError as exc:
            out.append({"row": c.row, "error": str(exc)})
            continue
        out.append({"row": c.row, "gpu": c.gpu, "precision": c.recipe, "model": c.model.name,
                    "seq": c.seq, "devices": c.devices, "micro_batch": c.micro_batch,
                    "recompute": c.recompute, "zero": c.zero, "source": c.source,
                    "set": "calibration" if c.calibration else "held-out",
                    "measured": c.measured, "predicted": pred,
                    "error": pred / c.measured - 1.0})
    return out


def summarise(results: list[dict]) -> list[dict]:
    ok = [r for r in results if isinstance(r.get("error"), float)]
    groups = {}
    for r in ok:
        for key in ((r["gpu"], r["precision"], r["set"]), ("all", "all", r["set"]),
                    ("all", "all", "all")):
            groups.setdefault(key, []).append(abs(r["error"]))
    return [{"gpu": g, "precision": p, "set": s, "rows": len(v),
             "median_abs_error": float(np.median(v)), "worst_abs_error": float(np.max(v))}
            for (g, p, s), v in sorted(groups.items())]


def speedups(results: list[dict]) -> list[dict]:
    """FP8 / BF16 tokens/s at matched (GPU, model, seq, devices, recompute, source)."""
    key = ("gpu", "model", "seq", "devices", "recompute", "source")
    bf = {tuple(r[k] for k in key): r for r in results
          if r.get("precision") == "bf16" and isinstance(r.get("error"), float)}
    out = []
    for r in results:
        if r.get("precision") != "fp8" or not isinstance(r.get("error"), float):
            continue
        b = bf.get(tuple(r[k] for k in key))
        if b:
            pub, pred = r["measured"] / b["measured"], r["predicted"] / b["predicted"]
            out.append({"model": r["model"], "seq": r["seq"], "source": r["source"],
                        "published": pub, "predicted": pred, "error": pred / pub - 1.0})
    return out


def plot(results: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in results if isinstance(r.get("error"), float)]
    fig, ax = plt.subplots(figsize=(6, 6))
    for (gpu, prec), marker in ((("H100", "bf16"), "o"), (("H100", "fp8"), "s"),
                                (("A100", "bf16"), "^"), (("A100-40GB", "bf16"), "v")):
        for split, fill in (("calibration", True), ("held-out", False)):
            pts = [r for r in ok if r["gpu"] == gpu and r["precision"] == prec
                   and r["set"] == split]
            if pts:
                ax.scatter([r["measured"] for r in pts], [r["predicted"] for r in pts],
                           marker=marker, facecolors=None if fill else "none",
                           edgecolors="C0" if prec == "bf16" else "C3",
                           color="C0" if prec == "bf16" else "C3",
                           label=f"{gpu} {prec} ({split})")
    lo = min(min(r["measured"], r["predicted"]) for r in ok) * 0.8
    hi = max(max(r["measured"], r["predicted"]) for r in ok) * 1.25
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for f in (0.85, 1.15):
        ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="published tokens/s per GPU", ylabel="PrecSim tokens/s per GPU",
           title="Training step: predicted vs published (dotted: +-15%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results, summary, ratios, skipped) -> str:
    lines = ["| row | GPU | prec | model | seq | GPUs | mb | recompute | set | published "
             "| predicted | error |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not isinstance(r.get("error"), float):
            lines.append(f"| {r['row']} | | | | | | | | | | | {r['error']} |")
            continue
        lines.append(f"| {r['row']} | {r['gpu']} | {r['precision']} | {r['model']} | "
                     f"{r['seq']} | {r['devices']} | {r['micro_batch'] or 'max'} | "
                     f"{r['recompute']} | {r['set']} | {r['measured']:.0f} | "
                     f"{r['predicted']:.0f} | {r['error']:+.1%} |")
    lines += ["", "| GPU | precision | set | rows | median abs error | worst abs error |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {s['gpu']} | {s['precision']} | {s['set']} | {s['rows']} | "
              f"{s['median_abs_error']:.1%} | {s['worst_abs_error']:.1%} |" for s in summary]
    lines += ["", "| model | seq | source | published FP8/BF16 | predicted | error |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['seq']} | {r['source']} | {r['published']:.3f} | "
              f"{r['predicted']:.3f} | {r['error']:+.1%} |" for r in ratios]
    lines += ["", "Rows not expressed:", ""]
    lines += [f"- row {i} ({label}): {why}" for i, label, why in skipped]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--fit", action="store_true",
                    help="fit training.gemm_efficiency on the calibration rows and print it")
    ap.add_argument("--plot", metavar="PNG", help="write the predicted-vs-measured plot")
    ap.add_argument("--markdown", action="store_true", help="print the docs tables")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with open(args.data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cases, skipped = parse(rows)
    if args.fit:
        for key, (eff, n) in fit(cases).items():
            print(f"{key} = {eff} ({n} calibration rows)")
        return 0
    results = evaluate(cases)
    summary, ratios = summarise(results), speedups(results)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(json.dumps({"rows": results, "summary": summary, "fp8_bf16": ratios,
                          "not_expressed": skipped}, indent=2))
    elif args.markdown:
        print(markdown(results, summary, ratios, skipped))
    else:
        for r in results:
            if isinstance(r.get("error"), float):
                print(f"row {r['row']:3d} {r['gpu']:9s} {r['precision']:4s} {r['model']:13s} "
                      f"seq {r['seq']:5d} x{r['devices']:<4d} {r['set']:11s} published "
                      f"{r['measured']:9.0f} predicted {r['predicted']:9.0f} "
                      f"{r['error']:+7.1%}")
            else:
                print(f"row {r['row']:3d} error: {r['error']}")
        for s in summary:
            print(f"{s['gpu']:9s} {s['precision']:4s} {s['set']:11s} rows {s['rows']:3d} "
                  f"median |error| {s['median_abs_error']:.1%} worst "
                  f"{s['worst_abs_error']:.1%}")
        for r in ratios:
            print(f"FP8/BF16 {r['model']} seq {r['seq']} ({r['source']}): published "
                  f"{r['published']:.3f} predicted {r['predicted']:.3f} {r['error']:+.1%}")
        print(f"{len(skipped)} rows not expressed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
