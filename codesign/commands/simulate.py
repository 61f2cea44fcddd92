"""`precsim simulate` and `precsim roofline`: one request of a model, format and profile.

`simulate --json` loads neither pandas nor matplotlib (the per-op table and the figure
import them when they are built): tests/test_architecture.py keeps it so."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from precsim.codesign.commands.common import (MAX_SEQUENCES, MAX_TOKENS, add_json_arg,
                                              add_profile_dir_arg, add_runtime_arg,
                                              add_unit_args, exit_code, int_arg, print_json,
                                              resolve_profile, units_from_args, verdict)
from precsim.codesign.commands.layout_args import (add_layout_args, layout_from_args,
                                                   with_imbalance)
from precsim.simulator.compute_units import (phase_profiles, place_units, unit_line,
                                             unit_record)
from precsim.simulator.cost import SimulationResult, simulate
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_text
from precsim.simulator.models import get_model, list_models
from precsim.simulator.ops import object_memo
from precsim.simulator.parallel import simulate_parallel
from precsim.simulator.quant import GRAMMAR_HELP, PRESETS, parse_quant
from precsim.simulator.runtime import apply_runtime, load_runtime
from precsim.simulator.units import format_quantity

_TIMING = ("ttft_s", "tpot_s", "decode_tokens_per_s", "prefill_tokens_per_s",
           "e2e_latency_s", "energy_j", "energy_per_token_j", "decode_energy_per_token_j",
           "average_power_w", "launch_overhead_s", "energy_per_request_j", "energy_static_j",
           "energy_compute_j", "energy_memory_j", "throttled")


def _add_request_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="hardware profile name or YAML path")
    parser.add_argument("--model", required=True,
                        help=f"built-in ({', '.join(list_models())}), a Hugging Face "
                             "org/name in the local cache, or a config.json path (or its "
                             "folder)")
    parser.add_argument("--quant", default="W16A16",
                        help=f"format: {GRAMMAR_HELP}; presets {', '.join(PRESETS)}")
    parser.add_argument("--override", action="append", default=[], metavar="GROUP=FORMAT",
                        help="per-layer-group format, e.g. lm_head=W16A16 (repeatable)")
    parser.add_argument("--batch", type=int_arg(MAX_SEQUENCES), default=1,
                        help="concurrent sequences")
    parser.add_argument("--prompt", type=int_arg(MAX_TOKENS), default=512,
                        help="prompt tokens per sequence")
    parser.add_argument("--gen", type=int_arg(MAX_TOKENS), default=128,
                        help="generated tokens per sequence")
    parser.add_argument("--no-flash", action="store_true",
                        help="unfused attention (QK^T, softmax, PV as three kernels)")
    parser.add_argument("--separate-dequant", action="store_true",
                        help="dequantise weights in a separate kernel before each GEMM")
    add_layout_args(parser)
    add_unit_args(parser)
    add_profile_dir_arg(parser)
    add_runtime_arg(parser)
    add_json_arg(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    p_sim = subparsers.add_parser("simulate", help="time, bytes and energy of one request")
    _add_request_args(p_sim)
    p_sim.add_argument("--csv", metavar="FILE", help="write the per-op table as CSV")
    p_sim.set_defaults(func=cmd_simulate)
    p_roof = subparsers.add_parser("roofline", help="draw the model's ops on the roofline")
    _add_request_args(p_roof)
    p_roof.add_argument("--out", required=True, metavar="FIG.png", help="output PNG")
    p_roof.set_defaults(func=cmd_roofline)


#: The approximations a model object states (its own, the MoE routing's), per model
#: (`ops.object_memo`: models are frozen).
_MODEL_NOTES: dict = {}
#: The stated approximation of top-k routing (a MoE model).
_MOE_NOTE = "MoE: uniform top-k routing (expected distinct experts E(1-(1-k/E)^B))"


def run_request(profile, model_ref, quant_ref: str, batch: int, prompt: int, gen: int,
                overrides=(), flash: bool = True, fused_dequant: bool = True,
                layout=None, moe_imbalance: float = 1.0, runtime=None, unit=None,
                prefill_unit=None, decode_unit=None):
    """(model, quant, result) of one request, checked as `precsim simulate` checks it.

    `overrides`: "GROUP=FORMAT" strings (the repeatable --override flag); `layout`: a
    `simulator.parallel.ParallelLayout` (None or a single device: `cost.simulate`);
    `moe_imbalance`: as --moe-imbalance; `runtime`: a runtime name, YAML path or
    RuntimeProfile (None: `reference`), applied by `simulator.runtime.apply_runtime`
    (its profile, and its flash / fused-dequantisation switches ANDed with the flags);
    totals gain `runtime` (name and the switches in effect); `unit` / `prefill_unit` /
    `decode_unit`: the compute units of a SoC profile (as --unit, --prefill-unit,
    --decode-unit; default the runtime's preferred unit, else the format's default).
    """
    for name, value, top in (("batch", batch, MAX_SEQUENCES), ("prompt", prompt, MAX_TOKENS),
                             ("gen", gen, MAX_TOKENS)):
        if type(value) is int and 1 <= value <= top:
            continue  # the common scalar case, without numpy
        values = np.asarray(value, dtype=object).ravel()
        bad = [v for v in values if not 1 <= v <= top]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise InputError(f"--{name} must be at least 1 and at most {top:,}, got "
                             f"{bad[0]}{more}")
    profile = place_units(profile, unit, prefill_unit, decode_unit)
    model = with_imbalance(get_model(model_ref), moe_imbalance)
    quant = parse_quant(quant_ref)
    if overrides:
        pairs = {}
        for item in overrides:
            group, sep, fmt = item.partition("=")
            if not sep:
                raise InputError(f"--override {item!r}: expected GROUP=FORMAT, "
                                 "e.g. lm_head=W16A16")
            given = pairs.get(group.strip()) or dict(quant.overrides).get(group.strip())
            if given is not None:
                shown = given if isinstance(given, str) else f"{given.name} in --quant"
                raise InputError(f"--override {item!r}: group {group.strip()!r} is already "
                                 f"overridden ({shown}); give each group once")
            pairs[group.strip()] = fmt.strip()
        quant = quant.with_overrides(pairs)
    run = apply_runtime(runtime, profile, quant)
    options = {"flash": flash and run.flash,
               "fused_dequant": fused_dequant and run.fused_dequant}
    stated = {"runtime": {"name": run.runtime.name, **options}}
    if layout is None or (layout.is_single and layout.devices_per_node is None):
        result = simulate(run.profile, model, quant, batch, prompt, gen, **options)
        notes = [*object_memo(_MODEL_NOTES, (model,), lambda: (
            *model.approximations, *((_MOE_NOTE,) if model.is_moe else ()))),
            *run.approximations]
        if notes:
            stated["approximations"] = notes
        result.totals.update(stated)  # a new result of this call: its totals gain them
        return model, quant, result
    par = simulate_parallel(run.profile, model, quant, batch, prompt, gen, layout, **options)
    if run.approximations:
        stated["approximations"] = [*par.totals.get("approximations", []),
                                    *run.approximations]
    return model, quant, dataclasses.replace(par.stage, totals={**par.totals, **stated})


def _run(args: argparse.Namespace):
    profile = units_from_args(args, resolve_profile(args, args.profile), args.runtime)
    model, quant, result = run_request(
        profile, args.model, args.quant, args.batch, args.prompt, args.gen, args.override,
        flash=not args.no_flash, fused_dequant=not args.separate_dequant,
        layout=layout_from_args(args), moe_imbalance=args.moe_imbalance,
        runtime=args.runtime)
    return profile, model, quant, result


def request_dict(profile, model, quant, batch: int, prompt: int, gen: int,
                 flash: bool = True, fused_dequant: bool = True, layout=None,
                 runtime: str = "reference") -> dict:
    """The `request` part of `simulate --json` / `roofline --json` (`flash` and
    `fused_dequant` as asked; the runtime's switches in effect: totals' `runtime`)."""
    out = {"profile": profile.name, "runtime": runtime, "model": model.name,
           "quant": quant.name, "batch": batch, "prompt": prompt, "gen": gen,
           "flash": flash, "fused_dequant": fused_dequant}
    units = unit_record(profile, quant)
    if units is not None:  # a SoC: the compute unit of each phase and why
        out["unit"] = units
    if layout is not None and (not layout.is_single or layout.devices_per_node is not None):
        out["layout"] = {**layout.describe(), "devices_per_node": layout.devices_per_node}
    return out


def _request(profile, model, quant, args) -> dict:
    return request_dict(profile, model, quant, args.batch, args.prompt, args.gen,
                        not args.no_flash, not args.separate_dequant, layout_from_args(args),
                        load_runtime(args.runtime).name)


def simulate_json(profile, model, quant, result: SimulationResult, batch: int, prompt: int,
                  gen: int, flash: bool = True, fused_dequant: bool = True,
                  layout=None) -> dict:
    """The `precsim simulate --json` object (timings None and `feasible: false` with the
    reason when the model does not fit)."""
    return {"request": request_dict(profile, model, quant, batch, prompt, gen, flash,
                                    fused_dequant, layout,
                                    result.totals.get("runtime", {}).get("name", "reference")),
            "totals": _json_totals(result), **verdict(fit_reason(profile, result.totals))}


def fit_reason(profile, totals: dict) -> str | None:
    """Why the request has no answer (the DOES NOT FIT line), None when it fits."""
    return None if totals["fits"] else _fits_line(profile, totals)


def _fits_line(profile, totals: dict) -> str:
    need = format_quantity(totals["memory_bytes"], "bytes")
    per = " per device" if "devices" in totals else ""
    parts = (f"weights {format_quantity(totals['weight_bytes'], 'bytes')}, KV cache "
             f"{format_quantity(totals['kv_cache_bytes'], 'bytes')}, activations "
             f"{format_quantity(totals['activation_bytes'], 'bytes')}")
    cap = format_quantity(totals.get("usable_capacity_bytes", totals["capacity_bytes"]),
                          "bytes")
    if totals["fits"]:
        return f"fits: needs {need}{per} of {cap} ({parts})"
    return (f"DOES NOT FIT: needs {need}{per} ({parts}) but {profile.name} "
            f"{profile.main_memory.name} holds {cap}"
            + (" usable" if per else "") + "; timings are not reported"
            + ("" if per else "; try --tp / --pp to split the model over devices"))


def _share(energy_j: float, totals: dict) -> str:
    return f"{format_quantity(energy_j, 'energy')} ({energy_j / totals['energy_j']:.0%})"


def _json_totals(result: SimulationResult) -> dict:
    totals = dict(result.totals)
    if not totals["fits"]:
        for key in _TIMING:
            totals[key] = None
    return totals


def cmd_simulate(args: argparse.Namespace) -> int:
    profile, model, quant, result = _run(args)
    totals = result.totals
    if args.csv:
        atomic_write_text(args.csv, result.ops.to_csv(index=False))
    if args.json:
        out = simulate_json(profile, model, quant, result, args.batch, args.prompt,
                            args.gen, not args.no_flash, not args.separate_dequant,
                            layout_from_args(args))
        print_json(out)
        return exit_code(out.get("reason"))
    layout = layout_from_args(args)
    where = (f" x {int(totals['devices'])} ("
             + ", ".join(f"{k} {v}" for k, v in layout.describe().items()) + ")"
             if "devices" in totals else "")
    runtime = totals["runtime"]["name"]
    units = unit_line(profile, quant)
    print(f"{model.name} {quant.name} on {profile.name}{where}"
          + (f" {units}" if units else "")
          + (f" under {runtime}" if runtime != "reference" else "")
          + f": batch {args.batch}, prompt {args.prompt}, generate {args.gen}")
    for note in totals.get("approximations", []):
        print(f"approximation: {note}")
    print(_fits_line(profile, totals))
    if not totals["fits"]:
        return exit_code(fit_reason(profile, totals))
    t = totals
    lines = [
        ("TTFT (prefill)", format_quantity(t["ttft_s"], "time")),
        ("TPOT (per decode step)", "-" if np.isnan(t["tpot_s"])
         else format_quantity(t["tpot_s"], "time")),
        ("decode tokens/s", f"{t['decode_tokens_per_s']:.1f}"),
        ("prefill tokens/s", f"{t['prefill_tokens_per_s']:.0f}"),
        ("end-to-end latency", format_quantity(t["e2e_latency_s"], "time")),
        ("energy per generated token", format_quantity(t["energy_per_token_j"], "energy")),
        ("energy per request", format_quantity(t["energy_per_request_j"], "energy")),
        ("average power", format_quantity(t["average_power_w"], "power")
         + (" (the power cap binds in a phase: its clock throttled)" if t["throttled"]
            else "")),
        ("energy: static (idle + active baseline)", _share(t["energy_static_j"], t)),
        ("energy: compute", _share(t["energy_compute_j"], t)),
    ] + [(f"energy: memory {name}", _share(v, t)) for name, v in t["energy_memory_j"].items()
         ] + [
        ("launch overhead (total)", format_quantity(t["launch_overhead_s"], "time")),
        ("kernels per decode step", f"{t['kernels_per_decode_step']:.0f}"),
    ] + ([("collectives per decode step", format_quantity(
        t["collective_s_per_decode_step"], "time")),
          ("pipeline bubble", f"{t['pipeline_bubble']:.0%}")] if "devices" in t else []) + [(f"bytes moved at {name}", format_quantity(v, "bytes"))
         for name, v in t["bytes_moved"].items()]
    width = max(len(k) for k, _ in lines)
    for key, val in lines:
        print(f"  {key:<{width}}  {val}")
    main = f"bytes_{profile.main_memory.name}"
    rows = result.rows()
    total = sum(r["time_s"] for r in rows)
    print("\nper op (decode rows summed over all decode steps):")
    print(_text_table({
        "phase": [r["phase"] for r in rows], "op": [r["op"] for r in rows],
        "exec_dtype": [r["exec_dtype"] for r in rows], "bound": [r["bound"] for r in rows],
        "time": [format_quantity(r["time_s"], "time") for r in rows],
        "time share": [f"{r['time_s'] / total * 100:.1f}%" for r in rows],
        f"bytes at {profile.main_memory.name}": [format_quantity(r[main], "bytes")
                                                 for r in rows],
        "FLOPs": [f"{r['flops']:.3g}" for r in rows]}))
    return 0


def _text_table(columns: dict[str, list[str]]) -> str:
    """Columns of strings right-justified under their headers, one space apart (the
    layout of pandas' `to_string(index=False)`, without importing pandas)."""
    widths = [max([len(name), *map(len, values)]) for name, values in columns.items()]
    lines = [" ".join(n.rjust(w) for n, w in zip(columns, widths))]
    lines += [" ".join(v.rjust(w) for v, w in zip(row, widths))
              for row in zip(*columns.values())]
    return "\n".join(lines)


def cmd_roofline(args: argparse.Namespace) -> int:
    from precsim.simulator.roofline_plot import plot_roofline, roofline_data
    profile, model, quant, result = _run(args)
    ops = result.ops
    roof = phase_profiles(profile, quant, "decode")  # a SoC: its decode unit's ceilings
    unit = f" {roof._unit} ceilings" if roof._unit else ""
    path = plot_roofline(roof, ops, args.out,
                         title=f"{model.name} {quant.name} on {profile.name}{unit} "
                               f"(batch {args.batch}, prompt {args.prompt}, gen {args.gen})")
    reason = fit_reason(profile, result.totals)
    if args.json:
        print_json({"request": _request(profile, model, quant, args), "figure": str(path),
                    **roofline_data(roof, ops), **verdict(reason)})
    else:
        print(f"wrote {path}")
        if reason:
            print(reason)
    return exit_code(reason)
