"""What-if studies: vary fields of a hardware profile and see how the optimal plan moves.

`run_whatif` plans once per profile variant (`codesign.variants.profile_variants`, the
`--vary` grammar VARY_HELP shown by `precsim whatif --help`); `whatif_figure` draws the
optimal cost per variant.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precsim.codesign.planner import plan
from precsim.codesign.study import ResolvedStudy, problem_from_study
from precsim.codesign.variants import profile_variants
from precsim.simulator.errors import InputError
from precsim.simulator.profiles import HardwareProfile


def run_whatif(resolved: ResolvedStudy, deployment: int | None, profile: HardwareProfile,
               specs: list[str], progress=None) -> pd.DataFrame:
    """One plan per profile variant; the profile is varied in every role it plays.

    Rows: variant label, the optimum (formats, N, D, loss, cost parts) and the change of
    the objective cost against the unmodified profile (`delta_pct`).
    """
    train_name = getattr(resolved.train_profile, "name", None)
    deploy_name = (resolved.deploy_profiles[deployment].name
                   if deployment is not None else None)
    if profile.name not in (train_name, deploy_name):
        raise InputError(f"what-if profile {profile.name} plays no role in the plan "
                         f"(training: {train_name}, deployment: {deploy_name})")
    rows = []
    variants = profile_variants(profile, specs)
    for label, variant in (progress(variants) if progress else variants):
        problem = problem_from_study(
            resolved, deployment, with_training=resolved.train_profile is not None,
            train_profile=variant if train_name == profile.name else None,
            deploy_profile=variant if deploy_name == profile.name else None)
        result = plan(problem)
        row = {"variant": label}
        o = result.optimum
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
    return table


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
