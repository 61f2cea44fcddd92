"""How the optimum moves with the lifetime tokens served (report figure "lifetime").

Serving time and energy are linear in `tokens_served` (`planner.serving_costs`: tokens x
device time and energy per generated token), so the hardware half of a plan
(`planner.hardware_costs`) is computed once per deployment and its serving columns are
scaled for each lifetime T; the law half (`law_search.solve_law`: the smallest D per format
pair and N) does not depend on T either and is solved once. Per T only the candidates are
re-priced and the cheapest taken (`planner.price`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from precsim.codesign.law_search import solve_law
from precsim.codesign.planner import PlanResult, hardware_costs, price

#: Lifetime tokens served the figure spans (1e9 to 1e13, two points per decade).
LIFETIME_TOKENS = np.geomspace(1e9, 1e13, 9)


def lifetime_sweep(name: str, result: PlanResult, tokens: np.ndarray = LIFETIME_TOKENS,
                   hardware: tuple | None = None, solve=solve_law) -> pd.DataFrame:
    """The optimum (N, D, format pair, training/serving cost) of one deployment per T.

    `hardware`: the plan's `hardware_costs`, when the caller kept it; `solve`: the law
    half's solver (a report's `law_search.LawSolver` shares it with the plan)."""
    problem = result.problem
    if problem.deploy_profile is None or problem.workload is None:
        return pd.DataFrame()
    rates, serve, train = hardware or hardware_costs(problem)
    solution = solve(problem)
    rows = []
    for T in np.asarray(tokens, float):
        scale = T / problem.workload.tokens_served
        scaled = {**serve, "serve_time_s": serve["serve_time_s"] * scale,
                  "serve_energy_j": serve["serve_energy_j"] * scale}
        workload = problem.workload.model_copy(update={"tokens_served": float(T)})
        best = price(dataclasses.replace(problem, workload=workload), (rates, scaled, train),
                     solution).optimum()
        rows.append({"deployment": name, "tokens_served": float(T),
                     "feasible": best is not None,
                     "train_format": None if best is None else best.train_format,
                     "serve_format": None if best is None else best.serve_format,
                     "N": np.nan if best is None else best.N,
                     "D": np.nan if best is None else best.D,
                     "train_cost": np.nan if best is None else best.training.cost,
                     "serve_cost": np.nan if best is None else best.serving.cost})
    return pd.DataFrame(rows)


def fig_lifetime(table: pd.DataFrame, objective_label: str, scale: float):
    """Optimal N (left) and cost of the optimum split in training/serving (right) vs T."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, rows in table.groupby("deployment", sort=False):
        rows = rows[rows.feasible]
        line, = left.loglog(rows.tokens_served, rows.N, "o-", label=name)
        for _, r in rows.iterrows():
            left.annotate(f"{r.train_format}/{r.serve_format}", (r.tokens_served, r.N),
                          fontsize=6, rotation=30, xytext=(2, 3), textcoords="offset points")
        right.loglog(rows.tokens_served, rows.train_cost / scale, "--",
                     color=line.get_color(), label=f"{name} training")
        right.loglog(rows.tokens_served, rows.serve_cost / scale, "-",
                     color=line.get_color(), label=f"{name} serving")
    left.set(xlabel="lifetime tokens served", ylabel="optimal N (parameters)")
    right.set(xlabel="lifetime tokens served", ylabel=f"cost of the optimum ({objective_label})")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig
