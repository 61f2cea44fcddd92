"""Prefill (TTFT) and shape-dependent GEMM efficiency against measurements.

    python benchmarks/prefill_validation.py [--no-host] [--plot docs/img/prefill_pred_vs_meas.png]
                                            [--json]

1. TTFT of LLaMA-7B fp16 at batch 1 on an A100 against TensorRT-LLM: 16.1 ms for a
   128-token prompt and 120.5 ms for 2,048 tokens ("TensorRT-LLM performance data,
   A100, LLaMA-7B fp16, as quoted in issue 21 of this project"; the original table is
   not in ../shared/reference). LLaMA-7B is simulated as the built-in llama-2-7b (the
   same shapes: 32 layers, d_model 4096, d_ff 11008, 32 heads, vocab 32000). TTFT is
   PrecSim's: the prefill pass of the prompt (simulator.cost.simulate: ttft_s), the
   first token sampled at its end. Two sensitivity rows: the profile without its `gemm`
   block (the flat roofline before issue 21), with split-K switched off
   (gemm.max_split = 1), and through the `tensorrt-llm` runtime profile (its fusion and
   launch behaviour, docs/runtimes.md).
   Beside them, every published prompt-processing measurement PrecSim can express, as
   one set: these two TTFTs and llama.cpp's pp512 on an Apple M2 (benchmarks/
   runtime_validation.py's rows: 512 prompt tokens / TTFT), under the reference runtime
   and under each row's own runtime (tensorrt-llm, llama-cpp): median and worst |error|.
2. TTFT sweep 128..8,192 tokens on the A100 and H100 profiles: predicted only.
3. The host: torch.matmul in fp32 at small-M shapes (M 1..64, odd N), best of
   repeats (fastest call; the machine is shared: noisy), on one thread (two threads on
   a loaded machine wait ~15 ms per call for a descheduled partner), against gemm_cost
   on the host profile with a `gemm` block of one unit, the 6x16 fp32 micro-kernel tile
   (assumed: the BLIS Haswell sgemm micro-kernel, AVX2 + FMA) and the fp32 peak of one
   thread (the profile's over the threads it describes: 2 for the template, the
   "N torch threads" a calibration ran on); memory bandwidths as the profile gives them.
   The host profile is the one calibrated on this machine when given: `--host-profile
   FILE` (what `precsim calibrate --out FILE` writes, or a `precsim validate --out DIR`
   run's DIR/profile.yaml), else `host` on the profile search path ($PRECSIM_PROFILE_PATH
   first, as every other command finds it). Calibrating takes minutes, so this script
   does not; without a calibrated profile the shipped template is used and the group
   says "uncalibrated template".
Prints predicted vs measured per row, the median and worst |error| per group, and
writes the predicted-vs-measured plot.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

from precsim.api import simulate as api_simulate
from precsim.simulator.cost import prefill_cost
from precsim.simulator.kernels import gemm_cost
from precsim.simulator.models import get_model
from precsim.simulator.profile_loader import cached_profile, load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.validation.kernels import _copies, rotation_bytes
from precsim.validation.run import _last_cache_bytes

TRT_SOURCE = "TensorRT-LLM performance data, A100, LLaMA-7B fp16, as quoted in issue 21"
#: (prompt tokens, measured TTFT in ms) [TRT_SOURCE]
TRT_ROWS = ((128, 16.1), (2048, 120.5))
SWEEP = (128, 256, 512, 1024, 2048, 4096, 8192)
HOST_SHAPES = ((1, 4099, 1024), (4, 4099, 1024), (16, 1000, 1024), (33, 4099, 1024),
               (64, 2051, 1024), (64, 4099, 1024))
HOST_TILE = {"value": "6x16", "assumed": "BLIS Haswell sgemm micro-kernel 6 x 16 (AVX2 + FMA) "
             "as the register block of an fp32 GEMM on x86-64"}
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "prefill_pred_vs_meas.png"


def _variant(name: str, **gemm):
    """Profile `name` with fields of its `gemm` block set (drop=True: removed)."""
    profile = cached_profile(name)
    if gemm.pop("drop", False):
        doc = profile.raw()
        doc.pop("gemm", None)
        from precsim.simulator.profiles import profile_from_mapping
        return profile_from_mapping(doc, f"{name} without gemm")
    return profile.with_overrides({f"gemm.{k}": v for k, v in gemm.items()})


def trt_rows() -> list[dict]:
    """Predicted TTFT for the TensorRT-LLM rows: the model, no shape model, no split-K."""
    model = get_model("llama-2-7b")
    variants = {"model": cached_profile("a100-sxm-80gb"),
                "no gemm block": _variant("a100-sxm-80gb", drop=True),
                "no split-K": _variant("a100-sxm-80gb", max_split={
                    "value": 1, "assumed": "sensitivity: the library never splits K"})}
    prompts = np.array([p for p, _ in TRT_ROWS], dtype=float)
    preds = {k: np.asarray(prefill_cost(v, model, "FP16", 1, prompts).time_s) * 1e3
             for k, v in variants.items()}
    preds["runtime tensorrt-llm"] = np.asarray(api_simulate(
        "a100-sxm-80gb", model, "FP16", batch=1, prompt=prompts, gen=1,
        runtime="tensorrt-llm").totals["ttft_s"]) * 1e3
    return [{"group": "trt-llm a100", "case": f"prompt {int(p)}", "measured_ms": m,
             **{f"pred_ms[{k}]": float(v[i]) for k, v in preds.items()},
             "pred_ms": float(preds["model"][i])}
            for i, (p, m) in enumerate(TRT_ROWS)]


def published_prefill(trt: list[dict]) -> dict:
    """|error| of every published prompt-processing case (the TRT-LLM TTFTs and the
    llama.cpp pp512 rows of runtime_validation.py), per runtime choice."""
    from runtime_validation import ROWS, tokens_per_s  # the sibling script's rows
    pp = [r for r in ROWS if r[6] == "pp512"]
    out = {}
    for label, trt_key, own in (("reference runtime", "model", False),
                                ("each row's own runtime", "runtime tensorrt-llm", True)):
        cases = [(f"TRT-LLM A100 {r['case']}", r[f"pred_ms[{trt_key}]"] / r["measured_ms"] - 1)
                 for r in trt]
        cases += [(f"llama.cpp M2 {r[2]} pp512",
                   r[3] / tokens_per_s(r, r[7] if own else "reference") - 1) for r in pp]
        err = [abs(e) for _, e in cases]
        out[label] = {"cases": dict(cases), "median_abs_error": float(np.median(err)),
                      "worst_abs_error": float(np.max(err))}
    return out


def sweep() -> list[dict]:
    model = get_model("llama-2-7b")
    lens = np.array(SWEEP, dtype=float)
    out = []
    for name in ("a100-sxm-80gb", "h100-sxm"):
        t = np.asarray(prefill_cost(name, model, "FP16", 1, lens).time_s) * 1e3
        out += [{"profile": name, "prompt": int(p), "pred_ttft_ms": float(x)}
                for p, x in zip(lens, t)]
    return out


def host_profile(ref: str | Path = "host") -> tuple[HardwareProfile, str]:
    """The host profile `ref` (a file, or a name on the profile search path) and the
    host rows' group name: it says whether the profile was calibrated on a machine
    (its fp32 peak `measured:`) or is the uncalibrated template."""
    profile = load_profile(ref)
    calibrated = bool(profile.raw()["compute"]["fp32"]["peak"].get("measured"))
    return profile, (f"host torch fp32 (calibrated: {profile.path})" if calibrated
                     else "host torch fp32 (uncalibrated template)")


#: CPU threads the host template's rates are for ("2-core CI-class slice", host.yaml)
TEMPLATE_THREADS = 2


def profile_threads(profile: HardwareProfile) -> int:
    """Threads a host profile's rates are for: the "N torch threads" a calibration
    stamped into its description, else the template's TEMPLATE_THREADS."""
    found = re.search(r"(\d+) torch threads", profile.description or "")
    return int(found.group(1)) if found else TEMPLATE_THREADS


def host_rows(repeats: int = 21, budget_s: float = 20.0, ref: str | Path = "host"
              ) -> list[dict]:
    """torch.matmul fp32 at HOST_SHAPES (fastest of `repeats` calls, the calibration's
    rule on a shared machine; the median is kept beside it) vs gemm_cost on the host
    profile `ref` (host_profile) with a `gemm` block."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a loaded machine wait ~15 ms per call
    base, group = host_profile(ref)
    fp32 = base.compute["fp32"].peak.value / profile_threads(base)
    flat = base.with_overrides({"compute.fp32.peak": f"{fp32 / 1e9:.6g} GFLOP/s"})
    profile = flat.with_overrides({
        "gemm.units": {"value": 1, "measured": "torch.set_num_threads(1)"},
        "gemm.tiles": HOST_TILE,
        "gemm.k_step": {"value": 1, "assumed": "a CPU micro-kernel steps K one rank-1 "
                                               "update at a time"}})
    torch.manual_seed(0)
    cold = rotation_bytes(_last_cache_bytes("cpu"))
    start, out = time.perf_counter(), []
    for m, n, k in HOST_SHAPES:
        # cold weights, as the simulator prices them and as `validate` measures: the
        # calls rotate over copies filling `cold` bytes (kernels.rotation_bytes, past
        # the last-level cache) so each call streams its weight from main memory
        a = torch.randn(m, k)
        ws = [torch.randn(k, n) for _ in range(_copies(4.0 * k * n, cold))]
        for w in ws:
            torch.matmul(a, w)  # warm-up (and first touch of every page)
        times = []
        for i in range(repeats):
            w = ws[i % len(ws)]
            t0 = time.perf_counter()
            torch.matmul(a, w)
            times.append(time.perf_counter() - t0)
        del ws
        pred = float(gemm_cost(profile, m, n, k, "FP32").time_s)
        out.append({"group": group, "case": f"m={m} n={n} k={k}",
                    "measured_ms": min(times) * 1e3, "median_ms": statistics.median(times)
                    * 1e3, "pred_ms": pred * 1e3,
                    # sensitivity: the profile alone (a calibrated one already averages
                    # the shapes in its peak and fractions: docs/prefill.md)
                    "pred_ms[no gemm block]": float(gemm_cost(flat, m, n, k, "FP32").time_s)
                    * 1e3})
        if time.perf_counter() - start > budget_s:
            break
    torch.set_num_threads(threads)
    return out


def summary(rows: list[dict]) -> dict:
    out = {}
    for group in dict.fromkeys(r["group"] for r in rows):
        err = [abs(r["pred_ms"] / r["measured_ms"] - 1) for r in rows if r["group"] == group]
        out[group] = {"rows": len(err), "median_abs_error": float(np.median(err)),
                      "worst_abs_error": float(np.max(err))}
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for group, marker in zip(dict.fromkeys(r["group"] for r in rows), "os^"):
        pts = [(r["measured_ms"], r["pred_ms"]) for r in rows if r["group"] == group]
        ax.scatter(*zip(*pts), marker=marker, label=group)
    lo = min(min(r["measured_ms"], r["pred_ms"]) for r in rows) / 2
    hi = max(max(r["measured_ms"], r["pred_ms"]) for r in rows) * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = measured")
    ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)",
           title="Prefill TTFT and host GEMMs: predicted vs measured")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-host", action="store_true", help="skip the host measurement")
    ap.add_argument("--host-profile", metavar="FILE", default="host",
                    help="host profile calibrated on this machine (`precsim calibrate --out "
                         "FILE`, or a validate run's profile.yaml); default: `host` on the "
                         "profile search path ($PRECSIM_PROFILE_PATH, else the template)")
    ap.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    trt = trt_rows()
    rows = trt + ([] if args.no_host else host_rows(ref=args.host_profile))
    result = {"rows": rows, "summary": summary(rows), "published": published_prefill(trt),
              "sweep": sweep()}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{'group':17s} {'case':24s} {'measured ms':>11s} {'predicted ms':>12s} "
              f"{'error':>7s}")
        for r in rows:
            print(f"{r['group']:17s} {r['case']:24s} {r['measured_ms']:11.3f} "
                  f"{r['pred_ms']:12.3f} {r['pred_ms'] / r['measured_ms'] - 1:+7.1%}")
        for r in rows:
            extra = {k: v for k, v in r.items() if k.startswith("pred_ms[")}
            if extra:
                print(f"  {r['case']}: " + ", ".join(f"{k[8:-1]} {v:.2f} ms"
                                                      for k, v in extra.items()))
        for group, s in result["summary"].items():
            print(f"{group}: {s['rows']} rows, median |error| {s['median_abs_error']:.1%}, "
                  f"worst {s['worst_abs_error']:.1%}")
        for label, s in result["published"].items():
            print(f"published prompt-processing cases, {label}: {len(s['cases'])} cases, "
                  f"median |error| {s['median_abs_error']:.1%}, worst "
                  f"{s['worst_abs_error']:.1%} ("
                  + ", ".join(f"{k} {e:+.0%}" for k, e in s["cases"].items()) + ")")
        print("TTFT sweep (predicted only, llama-2-7b fp16, batch 1):")
        for r in result["sweep"]:
            print(f"  {r['profile']:14s} {r['prompt']:5d} tokens {r['pred_ttft_ms']:9.2f} ms")
    plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
