"""`precsim serve` and `precsim size`: discrete-event simulation of LLM serving.

serve: one device, continuous batching, Poisson arrivals (--qps, --requests) or a trace
CSV (arrival_s, prompt_tokens, output_tokens); prints latency percentiles, throughput,
energy per token, utilisation and rejections.
size: the fewest devices (replicas x devices per replica, load split evenly) meeting p99
TTFT and TPOT SLOs, over formats and parallel layouts (--tp/--pp/--ep lists, or every
layout on one node when a single device does not hold the model); exit 3 when none does.
serve exits 3 when the model does not fit one device (or replica); an overloaded run
(arrivals above the sustainable rate, simulator.des.capacity) is an answer (exit 0)
flagged OVERLOADED in the table and `"overloaded": true` in --json.
"""
from __future__ import annotations

import argparse

import pandas as pd

from precsim.codesign.commands.common import (MAX_DEGREE, MAX_SEED, MAX_SEQUENCES, MAX_TOKENS,
                                              add_json_arg, add_profile_dir_arg,
                                              add_runtime_arg, add_unit_args, exit_code,
                                              int_arg, print_json, quantity_arg,
                                              resolve_profile, runtime_profile,
                                              units_from_args, verdict)
from precsim.codesign.commands.layout_args import (add_layout_args, layout_from_args,
                                                   with_imbalance)
from precsim.simulator.des.serving import serve
from precsim.simulator.des.sizing import (MAX_DEVICES, SLO, SLO_PERCENTILE, compare_sizing,
                                  sizing_table)
from precsim.simulator.des.workload import MAX_REQUESTS, poisson_workload, read_trace
from precsim.simulator.compute_units import unit_line, unit_record
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_text
from precsim.simulator.models import get_model
from precsim.simulator.quant import parse_quant
from precsim.simulator.parallel import candidate_layouts
from precsim.simulator.units import flag_help

SERVE_KEYS = ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s",
              "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "queue_p99_s",
              "throughput_tokens_per_s", "energy_per_token_j", "energy_per_request_j",
              "average_power_w", "energy_static_j", "energy_dynamic_j", "utilization", "served",
              "rejected", "kv_capacity_tokens", "mean_decode_batch")
_RATE = quantity_arg("rate")   # positivity: des.workload.check_rate (InputError)


def _add_common(parser: argparse.ArgumentParser, quant_help: str, repeat_quant: bool) -> None:
    parser.add_argument("--profile", required=True, help="hardware profile name or YAML path")
    parser.add_argument("--model", required=True,
                        help="built-in model name, a Hugging Face org/name in the local cache, "
                             "or the path of a config.json (or of its folder)")
    parser.add_argument("--quant", required=True, action="append" if repeat_quant else None,
                        metavar="Q", help=quant_help)
    parser.add_argument("--max-batch", type=int_arg(MAX_SEQUENCES), default=64, metavar="B",
                        help="most requests running at once (default 64)")
    parser.add_argument("--max-batch-tokens", type=int_arg(MAX_TOKENS), default=8192, metavar="T",
                        help="prompt tokens per prefill iteration without chunking "
                             "(default 8192)")
    parser.add_argument("--chunked-prefill", type=int_arg(MAX_TOKENS), default=None,
                        metavar="TOKENS",
                        help="token budget per iteration: decode every running request "
                             "and fill the rest with prompt chunks (default: off)")
    parser.add_argument("--on-full", choices=("wait", "reject"), default="wait",
                        help="when the KV cache is full: queue the request (default) or "
                             "reject it")
    parser.add_argument("--seed", type=int_arg(MAX_SEED, 0), default=0,
                        help="seed of the Poisson arrivals")
    parser.add_argument("--prompt-tokens", default="512", metavar="N|LO:HI",
                        help="prompt length of generated requests: fixed or uniform range "
                             "(default 512)")
    parser.add_argument("--output-tokens", default="128", metavar="N|LO:HI",
                        help="output length of generated requests (default 128)")
    add_unit_args(parser)
    add_profile_dir_arg(parser)
    add_runtime_arg(parser)
    add_json_arg(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    p_serve = subparsers.add_parser(
        "serve", help="simulate serving an LLM on one device or one parallel replica (continuous "
             "batching)",
        description="Discrete-event simulation of one device serving requests with "
                    "continuous batching; iteration times from the roofline cost model.")
    _add_common(p_serve, "quant format, e.g. W4A16-g128 or FP8", repeat_quant=False)
    source = p_serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--qps", type=_RATE, metavar="RATE",
                        help=flag_help("rate", "20/s", "20", "Poisson arrival rate, requests"))
    source.add_argument("--trace", metavar="FILE.csv",
                        help="trace CSV with columns arrival_s, prompt_tokens, output_tokens")
    p_serve.add_argument("--requests", type=int_arg(MAX_REQUESTS), default=1000, metavar="N",
                         help="requests to generate with --qps (default 1000)")
    p_serve.add_argument("--kv-capacity-tokens", type=int_arg(MAX_SEQUENCES * MAX_TOKENS, 0),
                         default=None, metavar="TOKENS",
                         help="override the KV capacity derived from device memory")
    p_serve.add_argument("--requests-out", metavar="FILE.csv",
                         help="write the per-request table (TTFT, TPOT, latency, queueing)")
    add_layout_args(p_serve)
    p_serve.set_defaults(func=cmd_serve)

    p_size = subparsers.add_parser(
        "size", help="fewest devices meeting p99 TTFT/TPOT SLOs, found by simulation",
        description=f"Replicas with the load split evenly; a deployment meets the SLOs "
                    f"when nothing is rejected and the p{SLO_PERCENTILE} TTFT and TPOT "
                    "of the served requests are within the targets.")
    _add_common(p_size, "quant format; repeat to compare formats side by side",
                repeat_quant=True)
    p_size.add_argument("--qps", type=_RATE, required=True, metavar="RATE",
                        help=flag_help("rate", "1200/min", "20",
                                       "total request rate over all devices"))
    p_size.add_argument("--slo-ttft", type=quantity_arg("time"), required=True, metavar="TIME",
                        help=flag_help("time", "500 ms", "0.5",
                                       f"p{SLO_PERCENTILE} time-to-first-token target"))
    p_size.add_argument("--slo-tpot", type=quantity_arg("time"), required=True, metavar="TIME",
                        help=flag_help("time", "50 ms", "0.05",
                                       f"p{SLO_PERCENTILE} time-per-output-token target"))
    p_size.add_argument("--requests", type=int_arg(MAX_REQUESTS), default=2000, metavar="N",
                        help="requests simulated per candidate (default 2000)")
    p_size.add_argument("--max-devices", type=int_arg(MAX_DEGREE), default=MAX_DEVICES, metavar="N",
                        help=f"largest deployment searched (default {MAX_DEVICES})")
    add_layout_args(p_size, lists=True)
    p_size.set_defaults(func=cmd_size)


def cmd_serve(args: argparse.Namespace) -> int:
    profile = units_from_args(args, resolve_profile(args, args.profile), args.runtime)
    profile, runtime, notes = runtime_profile(args, profile, [args.quant])
    if args.trace:
        workload = read_trace(args.trace)
    else:
        workload = poisson_workload(args.qps, args.requests, args.seed, args.prompt_tokens,
                                    args.output_tokens)
    layout = layout_from_args(args)
    model = with_imbalance(get_model(args.model), args.moe_imbalance)
    result = serve(profile, model, args.quant, workload, max_batch=args.max_batch,
                   max_batch_tokens=args.max_batch_tokens,
                   chunked_prefill_tokens=args.chunked_prefill, on_full=args.on_full,
                   kv_capacity_tokens=args.kv_capacity_tokens,
                   layout=None if layout.is_single and args.devices_per_node is None
                   else layout)
    if args.requests_out:
        atomic_write_text(args.requests_out, result.requests.to_csv(index=False))
    if notes:
        result.summary["approximations"] = [*result.summary.get("approximations", []),
                                            *notes]
    summary = {"workload": workload.source, "runtime": runtime, **result.summary}
    units = unit_record(profile, parse_quant(args.quant))
    if units is not None:  # a SoC: the compute unit of each phase and why
        summary["unit"] = units
    nothing = result.summary["served"] == 0  # infeasible: every request was rejected
    reason = ("no request was served: no latency, throughput or energy to report"
              if nothing else None)
    summary |= verdict(reason)
    if args.json:
        print_json(summary)
        return exit_code(reason)
    q = result.summary
    where = (f" x {q['devices']} ({', '.join(f'{k} {v}' for k, v in q['layout'].items())})"
             if "layout" in q else "")
    units = unit_line(profile, parse_quant(args.quant))
    print(f"# {q['model']} {q['quant']} on {q['profile']}{where}"
          + (f" {units}" if units else "")
          + (f" under {runtime}" if runtime != "reference" else "") + f": {workload.source}")
    for note in q.get("approximations", []):
        print(f"approximation: {note}")
    print(f"served {q['served']} of {q['requests']} requests ({q['rejected']} rejected: "
          f"{q['rejected_exceeds_kv_capacity']} longer than the KV cache, "
          f"{q['rejected_kv_cache_full']} found it full)")
    if nothing:
        print(reason)
        return exit_code(reason)
    if q["overloaded"]:
        print(overload_line(q))
    print(latency_table(q).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"throughput {q['throughput_tokens_per_s']:.1f} tokens/s, "
          f"energy {q['energy_per_token_j']:.4g} J/token ({q['energy_per_request_j']:.4g} "
          f"J/request, average {q['average_power_w']:.4g} W, static "
          f"{q['energy_static_j'] / q['energy_j']:.0%}), utilisation "
          f"{q['utilization']:.1%}, mean decode batch {q['mean_decode_batch']:.1f}, "
          f"KV capacity {q['kv_capacity_tokens']} tokens (peak {q['kv_peak_tokens']})")
    if args.requests_out:
        print(f"per-request table -> {args.requests_out}")
    return 0


def overload_line(summary: dict) -> str:
    """The OVERLOADED line of a serve summary (simulator.des.capacity)."""
    return (f"OVERLOADED: arrivals {summary['arrival_rate_per_s']:.3g}/s (over the run) "
            f"exceed the sustainable {summary['sustainable_rate_per_s']:.3g}/s at batch "
            f"{summary['steady_batch']} (the backlog grew "
            f"{summary['backlog_growth_per_s']:.3g} requests/s); latencies grow with the "
            "run length")


def latency_table(summary: dict) -> pd.DataFrame:
    """TTFT/TPOT/e2e/queue percentiles, in ms (or s when one exceeds 10 s), unit in the
    headers."""
    names = ("ttft", "tpot", "e2e", "queue")
    stats = ("p50", "p90", "p99", "mean")
    worst = max((summary[f"{n}_{s}_s"] for n in names for s in stats
                 if summary[f"{n}_{s}_s"] == summary[f"{n}_{s}_s"]), default=0.0)
    unit, scale = ("s", 1.0) if worst >= 10 else ("ms", 1e3)
    return pd.DataFrame([{"metric": n, **{f"{s} ({unit})": summary[f"{n}_{s}_s"] * scale
                                         for s in stats}} for n in names])


def cmd_size(args: argparse.Namespace) -> int:
    slo = SLO.of(ttft=args.slo_ttft, tpot=args.slo_tpot)
    if len(set(args.quant)) != len(args.quant):
        raise InputError(f"--quant given twice: {', '.join(args.quant)}")
    profile = units_from_args(args, resolve_profile(args, args.profile), args.runtime)
    profile, runtime, notes = runtime_profile(args, profile, args.quant)
    model = with_imbalance(get_model(args.model), args.moe_imbalance)
    layouts = candidate_layouts(profile, model, args.quant, args.tp, args.pp, args.ep,
                                args.devices_per_node)
    results, best = compare_sizing(
        profile, model, args.quant, args.qps, slo, layouts=layouts, n_requests=args.requests,
        seed=args.seed, prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens,
        max_batch=args.max_batch, max_batch_tokens=args.max_batch_tokens,
        chunked_prefill_tokens=args.chunked_prefill, on_full=args.on_full,
        max_devices=args.max_devices)
    out = {"devices": best.devices if best else None,
           "best_quant": best.quant if best else None,
           "percentile": SLO_PERCENTILE, "qps": args.qps, "slo_ttft_s": slo.ttft,
           "slo_tpot_s": slo.tpot, "profile": profile.name, "runtime": runtime,
           "model": args.model,
           "requests_per_candidate": args.requests, "seed": args.seed,
           "results": [r.as_dict() for r in results],
           "best": best.as_dict() if best else None}
    if notes:
        out["approximations"] = notes
    if profile.compute_units:  # a SoC: each format's compute unit per phase and why
        out["unit"] = {q: unit_record(profile, parse_quant(q)) for q in args.quant}
    reason = None if best else (
        f"no {'format' if layouts == [None] else 'layout'} meets the SLOs within "
        f"{args.max_devices} devices: " + "; ".join(f"{r.quant}: {r.reason}"
                                                      for r in results))
    out |= verdict(reason)
    if args.json:
        print_json(out)
        return exit_code(reason)
    q = SLO_PERCENTILE
    print(f"# {args.model} on {profile.name}"
          + (f" under {runtime}" if runtime != "reference" else "")
          + f" at {args.qps:g} req/s; SLOs at p{q}: TTFT <= {slo.ttft:g} s, TPOT <= "
          f"{slo.tpot:g} s")
    for note in notes:
        print(f"approximation: {note}")
    table = sizing_table(results)
    cols = ["quant", "devices", "per_device_qps", f"ttft_p{q}_s", f"tpot_p{q}_s",
            "energy_per_token_j", "reason"]
    if "layout" in table:
        table["layout"] = table["layout"].map(
            lambda d: " ".join(f"{k}{v}" for k, v in d.items() if k != "dp")
            if isinstance(d, dict) else "single")
        cols.insert(1, "layout")
    table[f"ttft_p{q}_s"] = table[f"ttft_p{q}_s"] * 1e3
    table[f"tpot_p{q}_s"] = table[f"tpot_p{q}_s"] * 1e3
    print(table[cols].rename(columns={
        "per_device_qps": "req/s per device", f"ttft_p{q}_s": f"TTFT p{q} (ms)",
        f"tpot_p{q}_s": f"TPOT p{q} (ms)", "energy_per_token_j": "J/token"})
        .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for quant in args.quant if profile.compute_units else ():
        print(f"{quant} {unit_line(profile, parse_quant(quant))}")
    if best:
        where = ("" if best.layout is None else " as " + ", ".join(
            f"{k} {v}" for k, v in best.layout.items() if k != "dp") + " replicas")
        print(f"best: {best.quant} with {best.devices} device(s){where}")
        return 0
    print(reason.split(":")[0])
    return exit_code(reason)
