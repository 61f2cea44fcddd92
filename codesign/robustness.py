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
The hardware half of the plan (training rates, serving and training costs) is computed
once; each member prices the candidates (`planner.price`) without the plan's frontier, and
`solve` (a `law_search.LawSolver` in the report) may share a law's half between plans.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from precsim import lawcore
from precsim.codesign.law_search import solve_law
from precsim.codesign.planner import hardware_costs, price
from precsim.codesign.problem import PlanProblem, cost_text
from precsim.codesign.study import USER_OWNED_KINDS
from precsim.lawcore.lowbit import bootstrap_laws
from precsim.simulator.errors import InputError

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
    laws = bootstrap_laws(draws)
    if len(laws) < draws:
        raise InputError(f"--draws {draws}: only {len(laws)} bootstrap refits of lowbit-qat "
                         "are stored (lawcore/data/lowbit_qat_bootstrap.csv); expected 0 to "
                         f"{len(laws)}")
    members += [(f"lowbit-qat bootstrap {i + 1}", law) for i, law in enumerate(laws)]
    return members


def _pair(row: dict) -> tuple[str, str | None]:
    return row["train_format"], row["serve_format"]


def robustness(problem: PlanProblem, hardware: tuple | None = None,
               draws: int = DEFAULT_DRAWS, margin: float = TIE_MARGIN,
               solve=solve_law) -> dict[str, Any]:
    """The robustness section of a plan (JSON-ready); see the module docstring."""
    hardware = hardware or hardware_costs(problem)
    members, failed = [], []
    preset_of_draws = lawcore.get_law("lowbit-qat")
    for name, law in ensemble(problem.law, draws):
        # the draws share the preset's domain (same runs)
        judge = preset_of_draws if name.startswith("lowbit-qat bootstrap") else law
        try:
            member = dataclasses.replace(problem, law=law)
            priced = price(member, hardware, solve(member))
        except lawcore.LawInputError as exc:
            failed.append({"law": name, "reason": str(exc)})
            continue
        table = priced.by_format()
        feasible = table[table["feasible"]].sort_values("cost", kind="stable") \
            if "cost" in table else table.iloc[:0]
        if feasible.empty:
            members.append({"law": name, "feasible": False})
            continue
        best = feasible.iloc[0]
        entry = {"law": name, "feasible": True, "train_format": best["train_format"],
                 "serve_format": best["serve_format"], "cost": float(best["cost"]),
                 "N": float(best["N"]), "D": float(best["D"]),
                 "runner_up": None, "gap": None, "tie": False,
                 "validity_flags": judge.check_domain(
                     best["N"], best["D"], best["weight_bits"], best["act_bits"],
                     best["kv_bits"], _p_post(best["P_post"]))}
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


LOW_BIT = 3.0  # training weight bits below Kumar et al.'s swept range (ternary, binary, 2-bit)


def answers_by_law(problem: PlanProblem, hardware: tuple,
                   names: tuple[str, ...] = ("kumar2024", "lowbit-qat"),
                   solve=solve_law) -> list[dict]:
    """Per law: the optimum, the best pair trained below LOW_BIT weight bits and its gap,
    and the law's domain flags at each (JSON-ready rows)."""
    rows = []
    for name in names:
        law = lawcore.get_law(name)
        member = dataclasses.replace(problem, law=law)
        table = price(member, hardware, solve(member)).by_format()
        ok = table[table["feasible"]].sort_values("cost", kind="stable") \
            if "cost" in table else table.iloc[:0]
        row: dict[str, Any] = {"law": name, "feasible": not ok.empty}
        for key, part in (("optimum", ok), ("low_bit", ok[ok["weight_bits"] < LOW_BIT])):
            if part.empty:
                row[key] = None
                continue
            r = part.iloc[0]
            p_post = _p_post(r["P_post"])
            row[key] = {"train_format": r["train_format"], "serve_format": r["serve_format"],
                        "N": float(r["N"]), "D": float(r["D"]), "cost": float(r["cost"]),
                        "flags": law.check_domain(r["N"], r["D"], r["weight_bits"],
                                                  r["act_bits"], r["kv_bits"], p_post)}
        if row["optimum"] and row["low_bit"]:
            row["low_bit"]["gap"] = row["low_bit"]["cost"] / row["optimum"]["cost"] - 1.0
        rows.append(row)
    return rows


def answers_text(rows: list[dict], objective: str) -> str:
    """The answers of `answers_by_law` in words, extrapolations named."""
    parts = []
    for row in rows:
        o, low = row["optimum"], row["low_bit"]
        if o is None:
            parts.append(f"Under `{row['law']}` no configuration reaches the target.")
            continue
        text = (f"Under `{row['law']}` the answer is training {o['train_format']}, serving "
                f"{o['serve_format'] or 'as trained'} ({cost_text(o['cost'], objective)})")
        if low is not None and low is not o:
            text += (f"; the best training below {LOW_BIT:g} weight bits "
                     f"({low['train_format']}, serving {low['serve_format'] or 'as trained'})"
                     f" costs {cost_text(low['cost'], objective)} ({100 * low['gap']:+.1f}%)")
        text += ". Outside the runs behind the law (extrapolated): " + "; ".join(
            f"{what} — {_quantities(r['flags']) or 'nothing'}"
            for what, r in (("the answer", o), ("the low-bit pair", low))
            if r is not None and (what == "the answer" or low is not o)) + "."
        parts.append(text)
    return " ".join(parts)


def _quantities(flags: list[str]) -> str:
    """'N, D/N, P_w' from domain flags ('N = 7e+10 parameters is outside ...')."""
    return ", ".join(dict.fromkeys(f.split(" = ")[0] for f in flags))


def _p_post(value: Any) -> float | None:
    """A by_format P_post cell: None / NaN (no post-training quantization) → None."""
    return None if value is None or not np.isfinite(value) else float(value)


def members_table(sections: dict[str, dict]) -> pd.DataFrame:
    """One row per (deployment, ensemble member): its optimum, runner-up gap, tie."""
    rows = [{"deploy_profile": name, "law": m["law"], "feasible": m["feasible"],
             "train_format": m.get("train_format"), "serve_format": m.get("serve_format"),
             "cost": m.get("cost"), "gap": m.get("gap"), "tie": m.get("tie"),
             "outside_domain": bool(m.get("validity_flags"))}
            for name, section in sections.items() for m in section["members"]]
    return pd.DataFrame(rows)


def price_text(name: str, problem: PlanProblem) -> str:
    """'l4 $0.8 (study)' or 'apple-m2 user-owned: only energy is charged'."""
    rate = problem.weights.deploy_dollars_per_device_hour
    profile = problem.deploy_profile
    if profile is not None and profile.kind in USER_OWNED_KINDS and rate == 0:
        return f"{name} user-owned: only energy is charged"
    return f"{name} ${rate:g} (study)" if np.isfinite(rate) else f"{name} not stated"


def robustness_blocks(doc: Any, sections: dict, answers: dict, obj: str) -> None:
    """The report's robustness bullets and its 'The answer under each law' section."""
    if sections:
        doc.p("How sure is each answer? The same plan under an ensemble of laws "
              "(kumar2024, its b variant, the low-bit QAT law and bootstrap draws of it; "
              "`precsim plan --json` → `robustness`); pairs within the stated margin of the "
              "optimum are ties:")
        doc.bullets([f"**{name}**: {section['summary']}"
                     for name, section in sections.items()])
    if answers:
        doc.h(2, "The answer under each law")
        doc.p("Kumar et al.'s law was fitted on 3-16-bit runs of up to 1.7B parameters and "
              "26B tokens; below 3 bits it extrapolates (N_eff/N = 0.25 at 1.58-bit "
              "weights). The low-bit QAT law (docs/laws.md) refits the weight factor on "
              "ternary and binary QAT suites (99M-3.9B, 300B tokens). Each answer names "
              "what lies outside the runs behind its law.")
        for name, rows in answers.items():
            doc.h(3, name)
            doc.p(answers_text(rows, obj))
