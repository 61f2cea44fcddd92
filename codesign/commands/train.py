"""`precsim train`: one training step (simulator.training) for models, recipes and layouts.

Comma lists in --model, --recipe, --devices, --seq and --global-batch evaluate every
combination (numeric ones in one vectorised call per model and recipe). Exit 3 with
"feasible": false when a configuration does not fit, naming what would.
"""
from __future__ import annotations

import argparse
import itertools
import math

import numpy as np

from precsim.codesign.commands.common import (MAX_DEGREE, MAX_SEQUENCES, MAX_TOKENS,
                                              add_json_arg, add_profile_dir_arg,
                                              add_runtime_arg, int_arg, print_json,
                                              resolve_profile, runtime_profile)
from precsim.simulator.errors import InputError
from precsim.simulator.models import get_model, list_models, model_for_params
from precsim.simulator.runtime import load_runtime
from precsim.simulator.training import (PHASES, RECIPES, fit_advice, get_recipe,
                                        training_step)
from precsim.simulator.training_memory import RECOMPUTE_MODES
from precsim.simulator.units import format_quantity

_KEYS = ("step_time_s", "tokens_per_s", "tokens_per_s_per_device", "mfu", "hfu",
         "energy_per_step_j", "energy_per_token_j", "micro_batch", "n_micro",
         "largest_micro_batch", "fits", "binding")


def _ints(maximum: int):
    """A comma list of whole numbers in [1, maximum] (1e3 allowed: it is whole)."""
    def parse(text: str) -> list[int]:
        try:
            numbers = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            numbers = [math.nan]
        if not numbers or not all(n == int(n) if math.isfinite(n) else False for n in numbers):
            raise argparse.ArgumentTypeError(
                f"expected whole numbers separated by commas, got {text[:40]!r}")
        if any(not 1 <= n <= maximum for n in numbers):
            raise argparse.ArgumentTypeError(
                f"expected whole numbers from 1 to {maximum:,}, got {text[:40]!r}")
        return [int(n) for n in numbers]
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="time, MFU, energy and memory of a training step")
    p.add_argument("--profile", required=True, help="hardware profile name or YAML path")
    p.add_argument("--model", required=True,
                   help=f"comma list of built-ins ({', '.join(list_models())}), config.json "
                        "paths or parameter counts (e.g. 7e9: a Llama-style shape)")
    p.add_argument("--recipe", default="bf16",
                   help=f"comma list of precision recipes: {', '.join(RECIPES)}")
    p.add_argument("--seq", type=_ints(MAX_TOKENS), default=[2048], help="sequence length(s)")
    p.add_argument("--global-batch", type=_ints(MAX_SEQUENCES), required=True,
                   metavar="TOKENS", help="tokens per optimizer step (comma list)")
    p.add_argument("--devices", type=_ints(MAX_DEGREE), default=[1],
                   help="devices (comma list)")
    p.add_argument("--tp", type=int_arg(MAX_DEGREE), default=1,
                   help="tensor-parallel degree (in a node)")
    p.add_argument("--pp", type=int_arg(MAX_DEGREE), default=1, help="pipeline-parallel stages")
    p.add_argument("--zero", type=int, default=1, choices=(0, 1, 2, 3),
                   help="ZeRO / FSDP stage (default 1)")
    p.add_argument("--recompute", default="none", choices=RECOMPUTE_MODES,
                   help="activation recomputation (default none)")
    p.add_argument("--micro-batch", type=int_arg(MAX_SEQUENCES), default=None,
                   help="sequences per micro-batch (default: the largest that fits)")
    add_profile_dir_arg(p)
    add_runtime_arg(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_train)


def _model(text: str):
    try:
        n = float(text)
    except ValueError:
        return get_model(text)
    return model_for_params(n, round_shape=True, name=f"llama-style-{n:.3g}")


def _rows(profile, args) -> list[dict]:
    rows = []
    for name, recipe in itertools.product(args.model.split(","), args.recipe.split(",")):
        model, recipe = _model(name.strip()), get_recipe(recipe)
        dev, seq, batch = (a.reshape(-1) for a in np.meshgrid(
            args.devices, args.seq, args.global_batch, indexing="ij"))
        kw = dict(tp=args.tp, pp=args.pp, zero=args.zero, recompute=args.recompute)
        step = training_step(profile, model, recipe, seq=seq, global_batch=batch,
                             devices=dev, micro_batch=args.micro_batch, **kw)
        for i in range(dev.size):
            def at(v):
                v = np.broadcast_to(np.asarray(v), dev.shape)[i]
                return v.item() if isinstance(v, np.generic) else v
            row = {"model": model.name, "recipe": recipe.name, "devices": int(dev[i]),
                   "seq": int(seq[i]), "global_batch": int(batch[i]),
                   **{k: at(getattr(step, k)) for k in _KEYS},
                   "phases_s": {k: at(step.phases_s[k]) for k in PHASES},
                   "memory_bytes": {k: at(v) for k, v in step.memory_bytes.items()}}
            if not row["fits"]:
                row["reason"] = (
                    f"needs {format_quantity(row['memory_bytes']['total'], 'bytes')} per "
                    f"device of {format_quantity(step.capacity_bytes, 'bytes')}; "
                    + (f"largest micro-batch that fits: {row['largest_micro_batch']:.0f}"
                       if row["largest_micro_batch"] >= 1 else fit_advice(
                           profile, model, recipe, seq=row["seq"],
                           global_batch=row["global_batch"], devices=row["devices"], **kw)))
            rows.append(row)
    return rows


def cmd_train(args: argparse.Namespace) -> int:
    profile, runtime, notes = runtime_profile(args, resolve_profile(args, args.profile))
    if not load_runtime(args.runtime).trains:
        raise InputError(f"--runtime {runtime}: an inference stack (trains: false); "
                         "training runtimes: reference, torch-compile or a YAML with "
                         "trains: true")
    rows = _rows(profile, args)
    feasible = all(r["fits"] for r in rows)
    if args.json:
        out = {"request": {"profile": profile.name, "runtime": runtime, "tp": args.tp,
                           "pp": args.pp, "zero": args.zero, "recompute": args.recompute},
               "feasible": feasible, "results": rows}
        if notes:
            out["approximations"] = notes
        if not feasible:
            out["reason"] = "; ".join(f"{r['model']} {r['recipe']} x{r['devices']}: "
                                      f"{r['reason']}" for r in rows if not r["fits"])
        print_json(out)
        return 0 if feasible else 3
    for note in notes:
        print(f"approximation: {note}")
    print(f"training step on {profile.name}"
          + (f" under {runtime}" if runtime != "reference" else "")
          + f": tp {args.tp}, pp {args.pp}, ZeRO {args.zero}, "
          f"recompute {args.recompute}; MFU = (6 N + 12 L s q_dim) x tokens / (time x "
          "devices x bf16 peak)")
    for r in rows:
        head = (f"{r['model']} {r['recipe']} x{r['devices']} seq {r['seq']} batch "
                f"{r['global_batch']} tokens")
        if not r["fits"]:
            print(f"{head}: DOES NOT FIT: {r['reason']}")
            continue
        phases = ", ".join(f"{k} {format_quantity(v, 'time')}"
                           for k, v in r["phases_s"].items() if v > 0)
        mem = r["memory_bytes"]
        print(f"{head}: step {format_quantity(r['step_time_s'], 'time')}, "
              f"{r['tokens_per_s_per_device']:.0f} tokens/s per device "
              f"({r['tokens_per_s']:.0f} total), MFU {r['mfu']:.1%}, HFU {r['hfu']:.1%}, "
              f"{format_quantity(r['energy_per_token_j'], 'energy')}/token, micro-batch "
              f"{r['micro_batch']:.0f} x {r['n_micro']:.0f}, bound by {r['binding']}")
        print(f"  phases: {phases}")
        print(f"  memory per device {format_quantity(mem['total'], 'bytes')}: weights "
              f"{format_quantity(mem['weights'], 'bytes')}, gradients "
              f"{format_quantity(mem['gradients'], 'bytes')}, optimizer "
              f"{format_quantity(mem['optimizer'], 'bytes')}, activations "
              f"{format_quantity(mem['activations'], 'bytes')}, logits "
              f"{format_quantity(mem['logits'], 'bytes')}")
    return 0 if feasible else 3
