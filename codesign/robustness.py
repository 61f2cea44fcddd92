"""How robust is a plan's answer to the law? The same plan under an ensemble of laws.

Members: the precision-law presets that apply to quantized training with post-training
quantization and share Kumar et al.'s Chinchilla part (so one absolute target loss means
the same model quality for all): `kumar2024`, `kumar2024-b` (Table 2's b read as the PTQ
offset), `lowbit-qat` (weight factor fitted on ternary/binary QAT suites), and the first
`draws` bootstrap refits of `lowbit-qat` (lawcore/data/lowbit_qat_bootstrap.csv). The
study's own law joins if it is not one of them. sun2025, ouyang2024 and the Chinchilla
laws do not model quantized training with PTQ and are listed as not applicable.

Per member: the optimal (training format, serving format), its cost, the runner-up pair
and its relative gap. Over the ensemble: how often each pair wins, the spread of the
optimal cost, and ties — a runner-up within `margin` (relative cost) of the optimum.
The hardware half of the plan (training rates, serving costs) is computed once.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from precsim import lawcore
from precsim.codesign.planner import PlanProblem, cost_text, hardware_costs, plan
from precsim.lawcore.lowbit import bootstrap_laws

ENSEMBLE_LAWS = ("kumar2024", "kumar2024-b", "lowbit-qat")
NOT_APPLICABLE = {
    "sun2025": "no post-training-quantization term; forward activations never quantized",
    "ouyang2024": "models 16-bit training only",
    "chinchilla": "no precision terms", "epoch2024": "no precision terms",
    "kumar2024-fp": "floating-point weight constants; the search mixes integer formats"}
DEFAULT_DRAWS = 10
TIE_MARGIN = 0.02  # runner-up within 2% of the optimal cost: a tie


def ensemble(study_law: Any, draws: int = DEFAULT_DRAWS) -> list[tuple[str, Any]]:
    """(name, law) members: the study's law if not a preset below, the presets, the draws."""
    members = [(name, lawcore.get_law(name)) for name in ENSEMBLE_LAWS]
    if study_law.name not in ENSEMBLE_LAWS:
        members.insert(0, (study_law.name, study_law))
    members += [(f"lowbit-qat bootstrap {i + 1}", law)
                for i, law in enumerate(bootstrap_laws(draws))]
    return members


def _pair(row: dict) -> tuple[str, str | None]:
    return row["train_format"], row["serve_format"]


def robustness(problem: PlanProblem, hardware: tuple | None = None,
               draws: int = DEFAULT_DRAWS, margin: float = TIE_MARGIN) -> dict[str, Any]:
    """The robustness section of a plan (JSON-ready); see the module docstring."""
    hardware = hardware or hardware_costs(problem)
    members, failed = [], []
    for name, law in ensemble(problem.law, draws):
        try:
            result = plan(dataclasses.replace(problem, law=law), hardware)
        except lawcore.LawInputError as exc:
            failed.append({"law": name, "reason": str(exc)})
            continue
        table = result.by_format
        feasible = table[table["feasible"]].sort_values("cost", kind="stable") \
            if "cost" in table else table.iloc[:0]
        if result.optimum is None or feasible.empty:
            members.append({"law": name, "feasible": False})
            continue
        best = feasible.iloc[0]
        entry = {"law": name, "feasible": True, "train_format": best["train_format"],
                 "serve_format": best["serve_format"], "cost": float(best["cost"]),
                 "N": float(best["N"]), "D": float(best["D"]),
                 "runner_up": None, "gap": None, "tie": False}
        if len(feasible) > 1:
            second = feasible.iloc[1]
            gap = float(second["cost"] / best["cost"] - 1.0)
            entry.update(runner_up={"train_format": second["train_format"],
                                    "serve_format": second["serve_format"],
                                    "cost": float(second["cost"])},
                         gap=gap, tie=bool(gap <= margin))
        members.append(entry)
    ok = [m for m in members if m["feasible"]]
    wins = Counter((m["train_format"], m["serve_format"]) for m in ok)
    costs = np.array([m["cost"] for m in ok])
    spread = None if not ok else {
        "min": float(costs.min()), "median": float(np.median(costs)),
        "max": float(costs.max()), "max_over_min": float(costs.max() / costs.min())}
    out = {"ensemble_size": len(members) + len(failed), "evaluated": len(members),
           "feasible": len(ok), "tie_margin": margin,
           "wins": [{"train_format": t, "serve_format": s, "wins": n,
                     "share": n / len(members)} for (t, s), n in wins.most_common()],
           "infeasible": len(members) - len(ok),
           "optimal_cost_spread": spread, "members": members, "failed": failed,
           "not_applicable": [{"law": k, "reason": v} for k, v in NOT_APPLICABLE.items()]}
    out["summary"] = robustness_text(out, problem.weights.objective)
    return out


def robustness_text(section: dict[str, Any], objective: str) -> str:
    """The section in words: the winner's share, the cost spread, the ties."""
    if not section["wins"]:
        return (f"Under none of the {section['evaluated']} laws of the ensemble does a "
                "configuration reach the target within the constraints.")
    top = section["wins"][0]
    serve = top["serve_format"] or "as trained"
    words = [f"Training {top['train_format']} and serving {serve} wins under "
             f"{top['wins']} of {section['evaluated']} laws of the ensemble"]
    others = [f"{w['train_format']}/{w['serve_format'] or 'as trained'} {w['wins']}"
              for w in section["wins"][1:4]]
    if others:
        words.append(f" (others: {', '.join(others)})")
    s = section["optimal_cost_spread"]
    words.append(f"; the optimal cost ranges from {cost_text(s['min'], objective)} to "
                 f"{cost_text(s['max'], objective)}.")
    ties = [m for m in section["members"] if m.get("tie")]
    if ties:
        m = ties[0]
        words.append(
            f" Under {len(ties)} of them the runner-up is within "
            f"{100 * section['tie_margin']:g}% of the optimum — a tie: e.g. under "
            f"{m['law']}, {m['train_format']}/{m['serve_format'] or 'as trained'} and "
            f"{m['runner_up']['train_format']}/"
            f"{m['runner_up']['serve_format'] or 'as trained'} differ by "
            f"{100 * m['gap']:.1f}%.")
    return "".join(words)
