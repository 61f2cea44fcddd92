"""`precsim validate`: calibrate (or load a profile), measure, simulate, compare, write.

Calibration and the held-out cases are timed together, in interleaved rounds with a
drift reference (validation.rounds), so both see the same machine state; the result
reports the noise next to the error (noise_pct, drift_pct, rounds_rejected).
Outputs (written into a temporary sibling and swapped in with atomic_directory):
kernels.csv, by_format.csv, by_kind.csv, scatter.png, summary.md, profile.yaml and,
when calibrated here, calibration_{streams,gemms,tiny_ops,dequant,vector,matmuls}.csv.
Without PyTorch every measurement is skipped (said in the summary and on stderr) and
the simulated times of the held-out cases are still written.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.io import atomic_directory
from precsim.simulator.profile_loader import load_profile_file
from precsim.validation import compare, report
from precsim.validation.calibrate import (dump_profile, finish_calibration, plan_calibration,
                                         template_path)
from precsim.validation.measure import Skip, held_out_jobs, held_out_table
from precsim.validation.plan import PLANS, assert_held_out, torch_shape
from precsim.validation.kernels import reference_stream_bytes, rotation_bytes
from precsim.validation.rounds import reference_kernels, run_rounds, time_job
from precsim.validation.simulate import case_bounds, simulate_cases
from precsim.validation.torchenv import (TorchUnavailable, busy_note, cpu_caches, free_cpus,
                                         load_torch, machine_description, resolve_device,
                                         set_threads, threads_for_free_cpus)
from precsim.validation.transformer import TinyTransformer


def _case_rows(cases) -> pd.DataFrame:
    return pd.DataFrame([{"name": c.name, "kind": c.kind, "op": c.op, "format": c.fmt,
                          "shape": c.shape_text} for c in cases])


#: Why the model misses where it is known to (measured on the 2-core CPU host while
#: building the host model; docs/validation.md): (kind, format or "", op or "") -> why.
KNOWN_CAUSES = {
    ("gemv", "w4a16-deq", ""): "the chain's footprint (6.5 bytes per weight: packed "
    "nibbles, four workspaces) sits between the usable L3 share and twice it, where "
    "the cached share of its temporaries is interpolated (`chain_hit_share`, an "
    "assumption); and one `vector.dequant_overlap` is fitted for both dequantise chains, "
    "whose passes differ (w4a16-deq's uint8 and/shift/cat ran 66-142 ps per weight on "
    "one core against the model's 30-60)",
    ("gemm", "w4a16-deq", ""): "as its GEMV: the cached share of the dequantisation "
    "chain's temporaries is interpolated between the usable L3 share and twice it, and "
    "one pass overlap is fitted for both dequantise chains",
    ("gemv", "w8a8", ""): "one-token torch._int_mm streams its (N, K) int8 weight near "
    "the DRAM rate, which drifts with the VM's neighbours (41 GB/s, and 68-74 GB/s ten "
    "minutes later, for the same call); the round's stream reference corrects the "
    "part of the drift it shares",
    ("gemm", "w8a8", ""): "few-row torch._int_mm streams at 14-20 GB/s depending on the "
    "shape; the GEMM-path fraction is pooled over three",
    ("gemm", "fp32", ""): "the GEMM-path stream fraction is fitted at 4 and 64 rows and "
    "interpolated in log(rows): MKL's sgemm on 8 rows runs slower than either on one core "
    "of the Xeon VM (-17 to -21%: its few-row math, not its stream, which no share "
    "between the two calibrated ones expresses)",
    ("gemv", "w8a16-deq", ""): "one `vector.dequant_overlap` is fitted for both "
    "dequantise chains; inside this one the in-place bf16 row-scale mul ran at 231-312 ps "
    "per weight on one core against 170-221 standalone from a cached source",
    ("gemm", "w8a16-deq", ""): "as its GEMV (one pass overlap for both chains); at 256 "
    "rows the bf16 GEMM on the materialised weight is priced slow, as the plain bf16 "
    "256-row GEMM",
    ("gemm", "w8a16", ""): "_weight_int8pack_mm with 8 rows costs 2.5x its one-row call "
    "per weight; the few-row path has the one-token stream fraction (fitted with the "
    "per-row time of one-row calls) and the 128-row peak, no few-row term: -15 to -26%",
    ("transformer_decode", "ternary", ""): "the 32000x1024 LM head's unpack writes a 65 MB "
    "workspace that spills the cache share, while the calibrated unpack is priced as "
    "compute only (-30 to -40%)",
    ("elementwise", "bf16", ""): "each kernel's bf16 widening is fitted on its own "
    "768x1024 case in cache (`vector.widen_by_kernel`: gelu 0.01-0.25 ops per element, "
    "silu 0.6-1.0, add / mul 0.7-0.9 on the Xeon VM); a held-out shape whose tensors "
    "straddle the cache share runs at another rate per element",
    ("gemv", "bf16", ""): "oneDNN's bf16 GEMV speed differs by up to 1.4x between "
    "processes and allocations on this VM (measured: 213-317 us for the same call)",
    ("norm", "", "rms_norm"): "PyTorch's CPU rms_norm is 7 small kernels (9 in bf16); "
    "each pays more than the 1-element-op overhead the profile calibrates",
    ("norm", "fp32", "layer_norm"): "its own rate (`vector.rate_by_kernel.layernorm`) is "
    "fitted on a 768x1024 layer_norm; on two threads the 256x2048 one runs ~10% faster "
    "per element than it",
    ("transformer_decode", "", ""): "the eager step's glue (views, transposes, casts, "
    "KV-cache writes: about 100 small ops per step) costs more than the modelled "
    "kernels' launches (measured in the ternary step: 3.1 ms outside its projections "
    "against 0.8 ms modelled), and the VM's bandwidth drift moves the projections",
    ("transformer_decode", "bf16", ""): "its time is mostly bf16 GEMVs, whose speed "
    "differs by up to 1.4x between processes and allocations on this VM",
    ("attention_prefill", "", ""): "the peak and the per-output-element work "
    "(`attention.output_ops_per_element`; bf16 on AMX: `attention.tiles.bf16`) are "
    "fitted on 128- and 384-token prefills; the bf16 prefill is bound by its vector work "
    "(softmax, output rows), so its tiles' fitted peak is poorly determined (2.2-4.4 "
    "TFLOP/s over the saved runs, 1.5-1.6x each run's bf16 GEMM peak)",
    ("gemm", "bf16", ""): "256-row bf16 matmuls on the AMX tiles: +13% (one thread) to "
    "+21% (two) with the overlap fitted at 256 rows (+23 to +27% before); the bf16 rate's "
    "achievable fraction is the median over two square-ish GEMMs (2.1 of 2.7 TFLOP/s on "
    "two threads), which oneDNN beats at this shape",
    ("gemv", "fp32", ""): "on two threads (an idle machine) the fp32 one-token matmuls "
    "stream from 30 to 46 GB/s depending on the shape (the 1x2816x2048 one +39% in the "
    "final tree's idle run, -4 to +3% on one thread); the fitted fraction clips at 1",
}


def known_causes(table: pd.DataFrame, threshold_pct: float = 10.0) -> list[str]:
    """KNOWN_CAUSES of the cases off by more than `threshold_pct`, once each."""
    notes: dict[str, str] = {}
    for row in table[table["abs_pct_error"] > threshold_pct].itertuples():
        op = row.op if isinstance(row.op, str) else ""
        for key in ((row.kind, row.format, op), (row.kind, row.format, ""),
                    (row.kind, "", op)):
            if key in KNOWN_CAUSES:
                notes.setdefault(key, f"{row.name} ({row.pct_error:+.0f}%): "
                                      f"{KNOWN_CAUSES[key]}")
                break
    return list(notes.values())


def findings(table: pd.DataFrame, stats: pd.DataFrame, column: str) -> list[str]:
    """Plain-language notes on every group (format or kernel kind) outside the target:
    its median error against its run-to-run spread, the direction of the error, and the
    worst kernel with what the simulator says bounds it."""
    notes = []
    for row in stats.itertuples():
        if row.within_target:
            continue
        key = getattr(row, column)
        sub = table[(table[column] == key) & table["abs_pct_error"].notna()]
        worst = sub.loc[sub["abs_pct_error"].idxmax()]
        faster = int((sub["pct_error"] < 0).sum())
        noise = (" - within the run-to-run noise" if max(
            row.median_spread_pct, row.median_noise_pct) >= row.median_abs_pct_error
            else "")
        notes.append(
            f"{column} {key}: median |error| {row.median_abs_pct_error:.0f}% over "
            f"{row.kernels} kernels, median spread {row.median_spread_pct:.0f}%, noise "
            f"{row.median_noise_pct:.0f}%{noise}; "
            f"the simulator is faster than PyTorch on {faster} of {len(sub)}; worst "
            f"{worst['name']} {worst['pct_error']:+.0f}% (simulated "
            f"{worst['simulated_bound']}-bound).")
    return notes


def calibration_findings(cal) -> list[str]:
    """What calibration found about this machine's kernels, as the profile carries it."""
    s = cal.summary()
    notes = [f"element-wise kernels run at {s['vector_ops_per_s_simulated'] / 1e9:.3g} G "
             f"vector ops/s (profile `vector.rate`), matrix kernels at their GEMM peaks"]
    fractions = ", ".join(f"{dt} {f:.2f}" for dt, f in s["stream_fraction"].items())
    few = ", ".join(f"{dt} {f:.2f}" for dt, f in s["gemm_stream_fraction"].items())
    notes.append(f"one-token matmuls stream weights at a share of main memory's stream "
                 f"bandwidth ({fractions}: `compute.<type>.stream_fraction`), few-row ones "
                 f"at ({few}: `.gemm_stream_fraction`); streaming "
                 f"and math overlap {s['matmul_overlap']:.2f} (`overheads.matmul_overlap`, "
                 "0 = they add up)")
    for dtype, k in s["weight_only"].items():
        notes.append(f"weight-only {dtype} kernel: {k['achievable_ops_per_s'] / 1e9:.3g} "
                     f"GFLOP/s, streams at {k['stream_fraction']:.2f}")
    return notes


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _last_cache_bytes(device: str) -> float | None:
    caches = cpu_caches() if device == "cpu" else []
    return caches[-1].total_bytes if caches else None


def _rotation(plan, device: str) -> float | None:
    """Bytes the held-out cases' weights rotate over: the plan's, or more where the last
    cache level the OS reports needs it (kernels.rotation_bytes, as calibration)."""
    if not plan.cold_bytes:
        return None
    return max(plan.cold_bytes, rotation_bytes(_last_cache_bytes(device)))


def run_validation(out: str | os.PathLike, quick: bool = True, smoke: bool = False,
                   profile: str | os.PathLike | None = None, device: str = "auto",
                   threads: int | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run the whole validation; returns the JSON-able result (see module docstring).
    `on_progress(stage, done, total)` is called as it goes (stages: calibration and
    held-out measurement "measuring", then "simulating", "writing")."""
    report_progress = on_progress or (lambda stage, done, total: None)
    plan = PLANS["smoke" if smoke else ("quick" if quick else "full")]()
    assert_held_out(plan)
    cases = list(plan.kernels) + list(plan.model_cases)
    skips: list[Skip] = []
    warnings: list[str] = []
    cal = None
    rounds = None
    prof = load_profile_file(profile) if profile else None
    try:
        torch = load_torch()
        dev = resolve_device(device)
        set_threads(threads)
        if threads is None and dev == "cpu":  # a core held by other processes: use one
            chosen, note = threads_for_free_cpus(torch.get_num_threads(), free_cpus(),
                                                 _load_average())
            set_threads(chosen)
            warnings += [note] if note else []
        machine = machine_description(dev)
    except TorchUnavailable as exc:
        torch, dev, machine = None, "none", "PyTorch not installed"
        skips.append(Skip("all measurements", str(exc)))
        print(f"precsim: warning: {exc}", file=sys.stderr)
    measured = pd.DataFrame(columns=["name", "measured_s", "spread", "iqr_rel", "noise_pct"])
    if torch is not None:
        busy = busy_note()
        torch.manual_seed(0)
        bounds = case_bounds(cases, prof or load_profile_file(template_path()))
        held, more = held_out_jobs(
            cases, dev, plan.settings, bounds, cold_bytes=_rotation(plan, dev),
            model_factory=lambda fmt: TinyTransformer(torch_shape(plan.model), fmt, dev))
        skips += more
        cal_plan = (plan_calibration(dev, plan.settings, quick=plan.calibration_quick)
                    if prof is None else None)
        rounds = run_rounds((cal_plan.jobs if cal_plan else []) + held,
                            reference_kernels(dev, reference_stream_bytes(
                                _last_cache_bytes(dev))), lambda job: time_job(job, dev),
                            passes=plan.rounds, slices=plan.slices,
                            on_progress=report_progress)
        if cal_plan is not None:
            cal = finish_calibration(cal_plan, rounds)
            prof = cal.profile
            warnings += cal.notes
        if busy and not any(w.startswith(busy[:24]) for w in warnings):
            warnings.append(busy)
        measured, more = held_out_table(held, rounds)
        skips += more
    if prof is None:
        prof = load_profile_file(template_path())
        profile_note = f"template {template_path()} (not calibrated: no PyTorch)"
    elif cal is not None:
        profile_note = "calibrated just now on this machine, interleaved with the held-out cases (profile.yaml)"
    else:
        profile_note = f"given: {profile}"
    report_progress("simulating", 0, 1)
    simulated = simulate_cases(cases, prof, plan.model)
    table = _case_rows(cases).merge(
        measured.drop(columns=["kind", "op", "format", "shape"], errors="ignore"),
        on="name", how="left")
    table["simulated_s"] = table["name"].map(lambda n: simulated[n][0])
    table["simulated_bound"] = table["name"].map(lambda n: simulated[n][1])
    for col in ("measured_s", "spread", "iqr_rel", "noise_pct"):
        if col not in table:
            table[col] = np.nan
    table = compare.add_errors(table.astype({"measured_s": float, "spread": float}))
    kernels_only = table[~table["kind"].str.startswith("transformer")]
    by_format = compare.error_stats(kernels_only, "format")
    by_kind = compare.error_stats(kernels_only, "kind")
    model_rows = table[table["kind"].str.startswith("transformer")]
    overall = compare.overall(kernels_only)
    notes = findings(kernels_only, by_format, "format") + \
        findings(kernels_only, by_kind, "kind")
    models_view = model_rows[["kind", "format", "shape", "measured_s", "simulated_s",
                              "pct_error", "spread_pct", "noise_pct"]]
    notes += [f"{r.kind} {r.format} ({r.shape}): simulated {r.pct_error:+.0f}% vs measured"
              for r in model_rows.itertuples()
              if r.abs_pct_error == r.abs_pct_error
              and r.abs_pct_error > compare.TARGET_MEDIAN_ABS_PCT]
    if dev == "cpu":
        notes += [f"known cause: {text}" for text in known_causes(table)]
    if cal is not None:
        notes += calibration_findings(cal)
    worst = kernels_only.dropna(subset=["abs_pct_error"]).nlargest(8, "abs_pct_error")[
        ["name", "measured_s", "simulated_s", "pct_error", "spread_pct", "noise_pct"]]
    noise = rounds.summary() if rounds is not None else {
        "rounds": 0, "rounds_rejected": 0, "rounds_drifting": 0, "drift_pct": None,
        "drift_by_reference": {}, "threshold_pct": None}
    if noise["rounds_drifting"]:
        warnings.append(
            f"{noise['rounds_drifting']} of {noise['rounds']} measurement rounds never "
            f"came within {noise['threshold_pct']:.0f}% of the median drift reference "
            "after the retries; their cases are drift-corrected, not re-measured")
    title = f"PrecSim validation ({plan.name}) on {dev}"
    summary = report.summary_markdown(
        title=title, machine=machine, profile_note=profile_note, overall=overall,
        noise=noise,
        by_format=by_format, by_kind=by_kind, models=models_view, worst=worst,
        skips=[str(s) for s in skips], findings=notes, warnings=warnings,
        calibration=report.calibration_text(cal) if cal else None)

    with atomic_directory(out) as tmp:
        tmp = Path(tmp)
        table.to_csv(tmp / "kernels.csv", index=False)
        by_format.to_csv(tmp / "by_format.csv", index=False)
        by_kind.to_csv(tmp / "by_kind.csv", index=False)
        (tmp / "scatter.png").write_bytes(compare.scatter_png(
            table, f"{title}: simulated vs measured ({overall['kernels']} kernels)"))
        (tmp / "summary.md").write_text(summary, encoding="utf-8")
        (tmp / "profile.yaml").write_text(dump_profile(prof.raw()), encoding="utf-8")
        if cal is not None:
            for name in ("streams", "gemms", "tiny_ops", "dequant", "vector", "matmuls"):
                getattr(cal, name).to_csv(tmp / f"calibration_{name}.csv", index=False)

    return {"out": str(out), "plan": plan.name, "device": dev, "machine": machine,
            "profile": profile_note, **overall, **noise,
            "by_format": by_format.to_dict(orient="records"),
            "by_kind": by_kind.to_dict(orient="records"),
            "transformer": models_view.to_dict(orient="records"),
            "skipped": [{"what": s.what, "reason": s.reason} for s in skips],
            "warnings": warnings,
            "calibration": cal.summary() if cal else None,
            "findings": notes, "summary_text": _console(overall, noise, by_format, models_view,
                                                       skips, warnings)}


def _console(overall: dict, noise: dict, by_format: pd.DataFrame, models: pd.DataFrame,
             skips, warnings) -> str:
    lines = []
    if overall["median_abs_pct_error"] is None:
        lines.append("no kernel measured")
    else:
        lines.append(f"{overall['kernels']} held-out kernels: median |error| "
                     f"{overall['median_abs_pct_error']:.1f}%, p90 "
                     f"{overall['p90_abs_pct_error']:.1f}%, median spread "
                     f"{overall['median_spread_pct']:.1f}%, median noise "
                     f"{overall['noise_pct']:.1f}%")
        lines.append(report.noise_text(noise))
    if not by_format.empty:
        lines.append(by_format.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if not models.empty:
        lines.append(models.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    lines += [str(s) for s in skips]
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)
