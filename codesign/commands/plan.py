"""`precsim plan`: the cheapest N, D, training precision and serving format at a target loss.

Starts from a study (the built-in one, or `--study FILE.yaml`) and lets flags replace
its fields: profiles, target, workload, objective and cost weights.
"""
from __future__ import annotations

import argparse
import os

import pandas as pd

from precsim.codesign.commands.common import (MAX_ITERATIONS, MAX_SEQUENCES, MAX_TOKENS,
                                              add_json_arg, add_profile_dir_arg, exit_code,
                                              int_arg, print_json, quantity_arg, verdict)
from precsim.codesign.commands.law import warn_validity
from precsim.codesign.law_search import LawSolver
from precsim.codesign.planner import hardware_costs, plan
from precsim.codesign.problem import JOULES_PER_KWH, cost_text
from precsim.codesign.robustness import DEFAULT_DRAWS, robustness
from precsim.codesign.study import (SLO, Baseline, Deployment, Target, Training, load_study,
                                    problem_from_study, resolve_study, updated)
from precsim.simulator.errors import InputError
from precsim.simulator.io import is_file_reference
from precsim.simulator.units import flag_help


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _positive(text)


def _count(maximum: int):
    """A whole number in [1, maximum], written plainly or as 1e3."""
    def parse(text: str) -> int:
        value = _positive(text)
        if value != int(value) or value > maximum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from 1 to {maximum:,}, got {text[:40]!r}")
        return int(value)
    return parse


_COUNT = quantity_arg("count", "positive")
_PRICE = quantity_arg("price_per_hour", "non-negative")


def _cli_profile(ref: str) -> str:
    """Profile file paths given on the command line are taken from the working folder."""
    return os.path.abspath(os.path.expanduser(ref)) if is_file_reference(ref) else ref


def add_study_args(parser: argparse.ArgumentParser, deploy: bool = True) -> None:
    """Flags shared by plan and whatif: the study and the fields a flag may replace."""
    g = parser.add_argument_group("study (flags replace the study's fields)")
    g.add_argument("--study", metavar="FILE.yaml",
                   help="study file (default: the built-in study, codesign/default_study.yaml)")
    g.add_argument("--train-profile", metavar="NAME|FILE",
                   help="training profile (default: the study's)")
    g.add_argument("--no-train", action="store_true",
                   help="leave training cost out (the model is trained elsewhere)")
    if deploy:
        g.add_argument("--deploy-profile", metavar="NAME|FILE",
                       help="deployment profile (default: the study's first deployment); a "
                            "profile listed in the study keeps its workload and $/hour")
        g.add_argument("--no-deploy", action="store_true",
                       help="training only: no serving cost, no post-training quantization")
    t = g.add_mutually_exclusive_group()
    t.add_argument("--target-loss", type=_positive, metavar="L", help="absolute target loss")
    t.add_argument("--loss-increase", type=_non_negative, metavar="DL",
                   help="allowed loss over the 16-bit baseline model")
    g.add_argument("--baseline-n", type=_COUNT, metavar="N",
                   help=flag_help("count", "1.5B", "1.5e9", "baseline N for --loss-increase"))
    g.add_argument("--baseline-d", type=_COUNT, metavar="D",
                   help=flag_help("count", "30B", "3e10",
                                  "baseline D (tokens) for --loss-increase"))
    g.add_argument("--objective", choices=("time", "energy", "dollars"))
    g.add_argument("--tokens-served", type=_COUNT, metavar="T",
                   help=flag_help("count", "1T", "1e12", "generated tokens over the model's life"))
    g.add_argument("--batch", type=_count(MAX_SEQUENCES))
    g.add_argument("--prompt-len", type=_count(MAX_TOKENS))
    g.add_argument("--output-len", type=_count(MAX_TOKENS))
    g.add_argument("--slo-tpot", type=quantity_arg("time", "positive"), metavar="TIME",
                   help=flag_help("time", "50 ms", "0.05", "time-per-output-token target"))
    g.add_argument("--slo-ttft", type=quantity_arg("time", "positive"), metavar="TIME",
                   help=flag_help("time", "1 s", "1", "time-to-first-token target"))
    g.add_argument("--dollars-per-device-hour", type=_PRICE, metavar="PRICE",
                   help=flag_help("price_per_hour", "2.5 $/h", "2.5", "deployment device price"))
    g.add_argument("--train-dollars-per-device-hour", type=_PRICE, metavar="PRICE",
                   help=flag_help("price_per_hour", "2.5 $/h", "2.5", "training device price"))
    g.add_argument("--dollars-per-kwh", type=quantity_arg("energy_price", "non-negative"),
                   metavar="PRICE",
                   help=flag_help("energy_price", "0.12 $/kWh", "0.12", "electricity price"))
    add_profile_dir_arg(parser)


def study_from_args(args: argparse.Namespace, deploy_profile: str | None = None):
    """(ResolvedStudy, deployment index or None) after applying the flags."""
    study, source = load_study(args.study)
    update: dict = {}
    if args.objective:
        update["objective"] = args.objective
    if args.dollars_per_kwh is not None:
        update["dollars_per_kwh"] = args.dollars_per_kwh
    if args.target_loss is not None:
        update["target"] = Target(target_loss=args.target_loss)
    elif args.loss_increase is not None or args.baseline_n or args.baseline_d:
        base = study.target.baseline
        if base is None and not (args.baseline_n and args.baseline_d):
            raise InputError("--loss-increase needs --baseline-n and --baseline-d (the "
                             "study has no baseline)")
        base = Baseline(N=args.baseline_n or base.N, D=args.baseline_d or base.D)
        inc = args.loss_increase if args.loss_increase is not None else \
            (study.target.loss_increase or 0.0)
        update["target"] = Target(loss_increase=inc, baseline=base)
    training = study.training
    if args.train_profile:
        training = Training(profile=_cli_profile(args.train_profile),
                            dollars_per_device_hour=training.dollars_per_device_hour
                            if training else None)
    if args.train_dollars_per_device_hour is not None:
        if training is None:
            raise InputError("--train-dollars-per-device-hour: no training profile "
                             "(give --train-profile)")
        training = training.model_copy(
            update={"dollars_per_device_hour": args.train_dollars_per_device_hour})
    if getattr(args, "no_train", False):
        training = None
    update["training"] = training
    deployments = list(study.deployments)
    index = None
    name = deploy_profile or getattr(args, "deploy_profile", None)
    name = _cli_profile(name) if name else None
    if not getattr(args, "no_deploy", False):
        if name:
            index = next((i for i, d in enumerate(deployments) if d.profile == name), None)
            if index is None:
                deployments.append(Deployment(profile=name))
                index = len(deployments) - 1
        elif deployments:
            index = 0
    if index is not None:
        dep = deployments[index]
        fields = {k: getattr(args, k) for k in ("tokens_served", "batch", "prompt_len",
                                                "output_len")
                  if getattr(args, k) is not None}
        if args.dollars_per_device_hour is not None:
            fields["dollars_per_device_hour"] = args.dollars_per_device_hour
            fields["capital"] = None   # the flag replaces a capital-cost price
        if args.slo_tpot is not None or args.slo_ttft is not None:
            slo = dep.workload(study.workload).slo if study.workload else SLO()
            fields["slo"] = slo.model_copy(update={
                k: v for k, v in (("tpot", args.slo_tpot), ("ttft", args.slo_ttft))
                if v is not None})
        deployments[index] = dep.model_copy(update=fields)
        if study.workload is None:
            raise InputError(f"{source}: deployments need a workload section")
    elif training is None:
        raise InputError("nothing to plan: no training profile and no deployment "
                         "(drop --no-train or --no-deploy)")
    update["deployments"] = deployments
    study = updated(study, f"{source} with the command-line flags", **update)
    resolved = resolve_study(study, source, args.profile_dir)
    return resolved, index


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="cheapest N, D, training precision and serving format at a target loss",
        description="Search model size N, training tokens D, training precision and "
                    "serving format for the cheapest configuration (time, energy or "
                    "dollars on real hardware profiles) whose predicted loss reaches the "
                    "target; show the paper's abstract-cost optimum beside it. Training "
                    "cost = 6*N*D FLOPs in the training format on the training profile; "
                    "serving cost from the simulator on the deployment profile.")
    add_study_args(parser)
    parser.add_argument("--top", type=_count(MAX_ITERATIONS), default=10,
                        help="rows of the per-format table to print (default 10)")
    parser.add_argument("--draws", type=int_arg(MAX_ITERATIONS, 0), default=DEFAULT_DRAWS,
                        metavar="N", help="bootstrap draws of the low-bit law in the "
                        f"robustness ensemble (default {DEFAULT_DRAWS}; 0: presets only)")
    add_json_arg(parser)
    parser.set_defaults(func=cmd_plan)




def optimum_validity(result) -> dict:
    """The plan law's validity record at the optimum (lawcore.domain); flags go to stderr."""
    o = result.optimum
    law = result.problem.law
    if o is None:
        return {"inside": True, "flags": [], "domain": None}
    record = law.validity(o.N, o.D, o.weight_bits, o.act_bits, o.kv_bits, o.P_post)
    warn_validity(record)
    return record


def cmd_plan(args: argparse.Namespace) -> int:
    resolved, index = study_from_args(args)
    result, section = plan_with_robustness(problem_from_study(resolved, index), args.draws)
    if args.json:
        print_json(plan_json(resolved, result, section))
    else:
        print(plan_text(result, resolved, args.top))
        print(f"robustness: {section['summary']}")
    return exit_code(plan_reason(result))


def plan_reason(result) -> str | None:
    """Why the plan has no answer (None when it has an optimum)."""
    if result.optimum is not None:
        return None
    return (f"no configuration reaches the target loss {result.problem.target_loss:.4f} "
            "under the constraints")


def plan_with_robustness(problem, draws: int = DEFAULT_DRAWS, hardware: tuple | None = None,
                         solve: LawSolver | None = None):
    """(the plan, its robustness section): the hardware costs are priced once and
    reused by every law of the ensemble (`codesign.robustness`), and the plan's law half
    by the ensemble's member that is the same law. `hardware` (`planner.hardware_costs`
    of `problem`) and `solve` (a `LawSolver`): the caller's, kept between plans."""
    hardware, solve = hardware or hardware_costs(problem), solve or LawSolver()
    return (plan(problem, hardware, solve(problem)),
            robustness(problem, hardware, draws=draws, solve=solve))


def plan_json(resolved, result, section: dict) -> dict:
    """The `precsim plan --json` object: the study's identity, the plan's summary, the
    optimum's validity under the law's fitted domain, and the robustness section."""
    return {"study": resolved.study.name, "source": resolved.source,
            "law": resolved.study.law, "baseline_loss": resolved.baseline_loss,
            **result.summary(), "validity": optimum_validity(result),
            "robustness": section, **verdict(plan_reason(result))}


def plan_text(result, resolved, top: int = 10) -> str:
    """The console form of a plan: the optimum, the paper's optimum, the format table."""
    p = result.problem
    obj = p.weights.objective
    lines = [f"target loss {p.target_loss:.4f}"
             + (f" (16-bit baseline {resolved.baseline_loss:.4f})"
                if resolved.baseline_loss is not None else "")
             + f"; objective {obj}; training on "
             + f"{getattr(p.train_profile, 'name', '-')}, serving on "
             + f"{getattr(p.deploy_profile, 'name', '-')}"]
    o = result.optimum
    if o is None:
        lines.append("no configuration reaches the target loss under the constraints")
    else:
        lines.append(
            f"optimum: N = {o.N:.3g}, D = {o.D:.3g} ({o.tokens_per_param:.0f} "
            f"tokens/param), train {o.train_format} (runs as {o.train_dtype}), "
            f"serve {o.serve_format or '(as trained)'}; loss {o.loss:.4f}; cost "
            f"{cost_text(o.total.cost, obj)} (train {o.training.device_hours:,.0f} h, serve "
            f"{o.serving.device_hours:,.0f} device-h, "
            f"{o.total.energy_j / JOULES_PER_KWH:,.0f} kWh)")
        if o.serve_devices > 1:
            lines.append(f"served on {o.serve_devices} devices per replica (tensor parallel "
                         f"tp {o.serve_devices}: one device does not hold it; device-hours "
                         f"count all of them); approximation: {o.to_dict()['serve_approximation']}")
    a = result.abstract
    if a.get("available"):
        real = (f"; on this hardware it costs {cost_text(a['real_cost'], obj)} "
                f"(train {a['train_format']} as {a['train_dtype']}, serve "
                f"{a['serve_format'] or '(as trained)'})"
                if a.get("real_cost") is not None else f"; {a.get('note', '')}")
        lines.append(f"paper's abstract-cost optimum (C = 6/16 N D P): P = "
                     f"{a['precision_bits']:g} bits, N = {a['N']:.3g}, D = {a['D']:.3g}, "
                     f"C = {a['abstract_cost']:.3g}" + real)
        lc = a["lawcore_compute_optimal"]
        lines.append(f"  lawcore.compute_optimal at that budget: P = {lc['precision']:.2f} "
                     f"bits, N = {lc['N']:.3g}, D = {lc['D']:.3g}, loss {lc['loss']:.4f}"
                     if "precision" in lc else f"  lawcore.compute_optimal: {lc['reason']}")
    table = result.by_format
    feasible = table[table["feasible"]]
    if len(feasible):   # an all-infeasible table has no cost column
        feasible = feasible.sort_values("cost").head(top)
    if len(feasible):
        show = pd.DataFrame({
            "train": feasible["train_format"], "runs as": feasible["train_dtype"],
            "serve": feasible["serve_format"].fillna("-"),
            "N params": feasible["N"].map("{:.3g}".format),
            "D tokens": feasible["D"].map("{:.3g}".format),
            "cost": feasible["cost"].map(lambda v: cost_text(v, obj)),
            "TPOT ms": (feasible["tpot_s"] * 1e3).map("{:.1f}".format),
            "memory GB": (feasible["memory_bytes"] / 1e9).map("{:.2f}".format)})
        lines += ["", f"best {len(show)} of {len(table)} (training, serving) pairs:",
                  show.to_string(index=False)]
    bad = table[~table["feasible"]]
    if len(bad):
        lines.append(f"{len(bad)} pairs infeasible: " + "; ".join(
            f"{r.train_format}/{r.serve_format}: {r.reason}" for r in bad.head(4).itertuples())
            + (" ..." if len(bad) > 4 else ""))
    lines.append(f"{result.candidates:,} candidates in {result.elapsed_s:.2f} s")
    return "\n".join(lines)
