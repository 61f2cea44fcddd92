"""What-if studies: vary fields of a hardware profile and see how the optimal plan moves.

`run_whatif` finds the optimum once per profile variant (`codesign.variants.
profile_variants`, the `--vary` grammar VARY_HELP shown by `precsim whatif --help`;
`planner.price`: a plan without its frontier); `whatif_figure` draws the
optimal cost per variant. A variant whose plan is the same as the profile's (same
optimum, same cost) gets `unchanged_because`: why the edit does not reach the answer
(`why_unchanged`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precsim.codesign.law_search import LawSolver
from precsim.codesign.planner import hardware_costs, price, training_rates
from precsim.codesign.problem import PlanProblem
from precsim.codesign.study import ResolvedStudy, problem_from_study
from precsim.codesign.variants import profile_variants
from precsim.simulator.cost import simulate
from precsim.simulator.errors import InputError
from precsim.simulator.models import model_for_params
from precsim.simulator.profiles import DTYPES, HardwareProfile

#: optimum columns that must all match the profile's for a variant to count as unchanged
_ANSWER = ("feasible", "train_format", "train_dtype", "serve_format", "N", "D", "cost")


def run_whatif(resolved: ResolvedStudy, deployment: int | None, profile: HardwareProfile,
               specs: list[str], progress=None, solve: LawSolver | None = None,
               hardware: tuple | None = None) -> pd.DataFrame:
    """One plan per profile variant; the profile is varied in every role it plays. The
    law half of the plans does not depend on the profile: it is solved once for all
    variants (`solve`: the caller's `law_search.LawSolver`, e.g. the report's); of the
    hardware half, the role the profile does not play (training or serving) is priced
    once, and `hardware` (the caller's `hardware_costs` of the unmodified plan) serves
    the as-is variant.

    Rows: variant label, the optimum (formats, N, D, loss, cost parts) and the change of
    the objective cost against the unmodified profile (`delta_pct`).
    """
    train_name = getattr(resolved.train_profile, "name", None)
    deploy_name = (resolved.deploy_profiles[deployment].name
                   if deployment is not None else None)
    if profile.name not in (train_name, deploy_name):
        raise InputError(f"what-if profile {profile.name} plays no role in the plan "
                         f"(training: {train_name}, deployment: {deploy_name})")
    rows, problems, optima = [], [], []
    solve, fixed = solve or LawSolver(), {}
    variants = profile_variants(profile, specs)
    for label, variant in (progress(variants) if progress else variants):
        problem = problem_from_study(
            resolved, deployment, with_training=resolved.train_profile is not None,
            train_profile=variant if train_name == profile.name else None,
            deploy_profile=variant if deploy_name == profile.name else None)
        hw = hardware if hardware and variant is profile else hardware_costs(problem, **fixed)
        if not fixed:
            fixed = ({} if train_name == profile.name else {"train": (hw[0], hw[2])}) | (
                {} if deploy_name == profile.name else {"serve": hw[1]})
        o = price(problem, hw, solve(problem)).optimum()   # no frontier needed
        problems.append(problem)
        optima.append(o)
        row = {"variant": label}
        if o is None:
            row.update(feasible=False, cost=np.inf)
        else:
            row.update(feasible=True, train_format=o.train_format, train_dtype=o.train_dtype,
                       serve_format=o.serve_format, P_post=o.P_post, N=o.N, D=o.D,
                       loss=o.loss, train_time_s=o.training.time_s,
                       serve_time_s=o.serving.time_s, energy_j=o.total.energy_j,
                       dollars=o.total.dollars, cost=o.total.cost, tpot_s=o.tpot_s,
                       memory_bytes=o.memory_bytes)
        rows.append(row)
    table = pd.DataFrame(rows)
    base = table["cost"].iloc[0]
    table["delta_pct"] = 100.0 * (table["cost"] / base - 1.0) if np.isfinite(base) else np.nan
    table["unchanged_because"] = [
        why_unchanged(label, problems[i], optima[i], profile.name)
        if i and table["feasible"].iloc[0] and _same_answer(table.iloc[0], table.iloc[i])
        else None
        for i, label in enumerate(table["variant"])]
    return table


def _same_answer(base: pd.Series, row: pd.Series) -> bool:
    return all(base.get(k) == row.get(k) or (pd.isna(base.get(k)) and pd.isna(row.get(k)))
               for k in _ANSWER)


def _fields(label: str) -> list[str]:
    """The varied fields of a variant label ('memory.hbm.bandwidth=2x compute.int4=native')."""
    return [part.split("=", 1)[0] for part in label.split() if "=" in part]


def serving_ops(problem: PlanProblem, optimum) -> pd.DataFrame | None:
    """Per-op rows (exec_dtype, bound, time_s, format) of every searched serving format
    at the optimum's N and serving batch on the deployment profile (None without one)."""
    if problem.deploy_profile is None or optimum is None:
        return None
    model = model_for_params(float(optimum.N), **problem.model_options)
    wl = problem.workload
    frames = []
    for fmt in problem.serve_axis:
        ops = simulate(problem.deploy_profile, model, fmt, int(optimum.serve_batch or 1),
                       wl.prompt_len, min(wl.output_len, 4)).ops
        frames.append(ops[["phase", "exec_dtype", "bound", "time_s"]].assign(format=fmt.name))
    return pd.concat(frames, ignore_index=True)


def why_unchanged(label: str, problem: PlanProblem, optimum, profile: str) -> str:
    """Why the what-if `label` leaves the plan as it is: the edited data type runs no
    format of the search, the edited compute peak does not bind (memory-bound), the
    objective ignores the edited power or the edit does not enter any priced cost."""
    reasons = []
    for field in _fields(label):
        parts = field.split(".")
        if parts[0] == "compute_units" and len(parts) >= 4:   # a SoC unit's engine
            parts = parts[2:]
        if parts[0] == "compute" and len(parts) >= 2:
            reasons.append(_compute_reason(parts[1], len(parts) > 2 and parts[2] == "peak",
                                           problem, optimum, profile))
        elif parts[0] == "power" and problem.weights.objective == "time":
            reasons.append(f"{field}: the objective is time; power does not enter it")
        else:
            reasons.append(f"{field}: no cost the plan prices depends on it here (the "
                           "simulator's costs of the searched formats are the same)")
    return "; ".join(reasons)


def _compute_reason(dtype: str, peak: bool, problem: PlanProblem, optimum,
                    profile: str) -> str:
    deploys = getattr(problem.deploy_profile, "name", None) == profile
    ops = serving_ops(problem, optimum) if deploys else None
    serving = sorted(set(ops["exec_dtype"]) & set(DTYPES)) if ops is not None else []
    training = (sorted(set(training_rates(problem)["exec_dtype"].dropna()))
                if getattr(problem.train_profile, "name", None) == profile else [])
    if dtype not in serving and dtype not in training:
        roles = [f"{what} runs on {', '.join(types)}" for what, types, plays in (
            ("serving", serving, deploys),
            ("training", training, getattr(problem.train_profile, "name", None) == profile))
            if plays]
        return (f"compute.{dtype}: no format in the search runs {dtype} on {profile} "
                f"({'; '.join(roles)})")
    notes = []
    if dtype in serving:
        on = ops[ops["exec_dtype"] == dtype]
        if peak and not (on["bound"] == "compute").any():
            bounds = " or ".join(sorted(set(on["bound"])))
            notes.append(f"every serving op on {dtype} is {bounds}-bound (launch overhead "
                         f"counts as 'overhead'); the {dtype} compute peak does not bind")
        elif optimum.serve_format not in set(on["format"]):
            notes.append(f"only serving formats that cost more run on {dtype} (the optimum "
                         f"serves {optimum.serve_format})")
    if dtype in training and optimum.train_dtype != dtype:
        notes.append(f"only training formats that cost more run on {dtype} (the optimum "
                     f"trains {optimum.train_format} on {optimum.train_dtype})")
    return f"compute.{dtype}: " + ("; ".join(notes) or
                                   "the edit does not change the optimum's priced cost")


def whatif_figure(table: pd.DataFrame, objective: str, title: str):
    """Horizontal bars: optimal cost per variant, labelled with the optimal formats."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.55 * len(table) + 1.6))
    cost = table["cost"].to_numpy(dtype=float)
    y = np.arange(len(table))
    colors = ["#888888"] + ["#3b75af"] * (len(table) - 1)
    ax.barh(y, np.where(np.isfinite(cost), cost, 0.0), color=colors)
    for i, r in enumerate(table.itertuples()):
        text = (f"train {r.train_format} ({r.train_dtype}), serve {r.serve_format}, "
                f"N={r.N:.2g}" + (f", {r.delta_pct:+.1f}%" if i else "")
                if r.feasible else "infeasible")
        ax.text(0.01, i, text, va="center", ha="left", fontsize=8,
                transform=ax.get_yaxis_transform(), color="white" if r.feasible else "k")
    ax.set_yticks(y, table["variant"])
    ax.invert_yaxis()
    ax.set_xlabel({"dollars": "optimal cost ($)", "energy": "optimal energy (J)",
                   "time": "optimal device time (s)"}[objective])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
