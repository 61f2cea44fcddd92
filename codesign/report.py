"""The co-design report: which precision is cheapest on which silicon, and why.

`build_report(resolved, out)` plans every deployment of a study, runs its what-ifs, and
writes a self-contained folder atomically (simulator.io.atomic_directory): report.md,
report.html (figures embedded as base64 PNG), figures/*.png and the tables as CSV. A
failed run leaves no half report and an existing report is replaced only by a complete
one.

Sections: the answer per profile; the paper's abstract-cost optimum against the real
silicon optimum; iso-loss curves over N and precision; cost vs precision per profile;
the Pareto frontier (loss vs cost); the roofline of each chosen configuration; what-if
studies; the validation summary if one exists; assumptions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.codesign.candidate import Candidate
from precsim.codesign.document import Document
from precsim.codesign.lifetime import fig_lifetime, lifetime_sweep
from precsim.codesign.law_search import LawSolver
from precsim.codesign.planner import PlanResult, hardware_costs, plan
from precsim.codesign.problem import JOULES_PER_KWH, SECONDS_PER_HOUR, cost_text
from precsim.codesign.progress import iterate
from precsim.codesign.robustness import (answers_by_law, members_table, price_text,
                                         robustness, robustness_blocks)
from precsim.codesign.runtime_table import runtime_comparison
from precsim.codesign.study import ResolvedStudy, Workload, problem_from_study
from precsim.codesign.whatif import run_whatif, whatif_figure
from precsim.simulator.errors import InputError
from precsim.simulator.io import (atomic_directory, atomic_write_bytes, atomic_write_text,
                                  read_text_bounded)
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.units import format_quantity

#: Where `precsim report` looks for `precsim validate --out DIR` output when neither the
#: study nor `--validation` names one (relative to the working directory).
DEFAULT_VALIDATION_DIRS = ("precsim-validation", "validation-report")
_UNITS = {"dollars": "$", "energy": "kWh", "time": "device-hours"}


def _cost_scale(objective: str) -> float:
    """Divisor taking an objective value to the unit of _UNITS."""
    return {"dollars": 1.0, "energy": JOULES_PER_KWH, "time": SECONDS_PER_HOUR}[objective]


# ---- the computation -------------------------------------------------------------------------

@dataclass
class StudyResults:
    resolved: ResolvedStudy
    plans: dict[str, PlanResult]    # deployment profile name (or "(training only)") -> plan
    whatifs: list                   # (WhatIf spec, profile name, DataFrame)
    validation: tuple | None        # (path, markdown text, scatter PNG bytes or None)
    robustness: dict = field(default_factory=dict)   # deployment -> codesign.robustness
    answers: dict = field(default_factory=dict)      # deployment -> answers_by_law rows
    lifetime: pd.DataFrame = field(default_factory=pd.DataFrame)  # codesign.lifetime rows


def run_study(resolved: ResolvedStudy, validation: str | None = None) -> StudyResults:
    """Every plan and what-if of a study (progress on stderr).

    Per deployment the hardware half of its plans (`planner.hardware_costs`; its training
    part once for all deployments) is priced once and shared by the plan, the law
    ensemble, the answers per law, the lifetime sweep and the as-is what-if; the law half (`law_search.solve_law`) is solved once per distinct law question
    of the whole report (`law_search.LawSolver`: the deployments share the study's law,
    target, formats and grids)."""
    study = resolved.study
    summary = load_validation(validation or study.validation_summary, resolved.source)
    plans: dict[str, PlanResult] = {}
    sections, answers, life, hardware_of = {}, {}, [], {}
    solve = LawSolver()
    targets = list(range(len(study.deployments))) or [None]
    for index in iterate(targets, "report: plans", label=lambda i: "training only" if i is None
                         else resolved.deploy_profiles[i].name):
        name = resolved.deploy_profiles[index].name if index is not None else \
            "(training only)"
        problem = problem_from_study(resolved, index)
        # the training half comes from the study's training and search sections alone
        # (problem_from_study): the same for every deployment, priced once
        first = next(iter(hardware_of.values()), None)
        hardware = hardware_of[index] = hardware_costs(
            problem, train=first and (first[0], first[2]))
        plans[name] = plan(problem, hardware, solve(problem))
        sections[name] = robustness(problem, hardware, solve=solve)
        answers[name] = answers_by_law(problem, hardware, solve=solve)
        life.append(lifetime_sweep(name, plans[name], hardware=hardware, solve=solve))
    whatifs = []
    for spec in iterate(study.whatif, "report: what-ifs", label=lambda w: w.profile):
        names = [d.profile for d in study.deployments]
        if spec.profile in names:       # varied as the deployment (and for training if same)
            index = names.index(spec.profile)
            profile = resolved.deploy_profiles[index]
        else:                           # the training profile, with the first deployment
            index, profile = (0 if names else None), resolved.train_profile
        whatifs.append((spec, profile.name, run_whatif(
            resolved, index, profile, spec.vary, solve=solve, hardware=hardware_of[index])))
    return StudyResults(resolved, plans, whatifs, summary, sections, answers,
                        pd.concat(life, ignore_index=True))


def load_validation(path: str | None, source: str) -> tuple | None:
    """(path, summary.md text, scatter.png bytes or None) of a `precsim validate` folder.

    `path` is a folder or a summary.md file (relative to the study file when it comes
    from the study); without one, DEFAULT_VALIDATION_DIRS are tried. None if absent.
    """
    candidates = []
    if path:
        p = Path(path)
        if not p.is_absolute() and Path(source).is_file() and not p.exists():
            p = Path(source).resolve().parent / p
        candidates.append(p)
    else:
        candidates += [Path(d) for d in DEFAULT_VALIDATION_DIRS]
    for p in candidates:
        summary = p / "summary.md" if p.is_dir() else p
        if summary.is_file():
            png = summary.parent / "scatter.png"
            return (str(summary), read_text_bounded(summary, "validation summary"),
                    png.read_bytes() if png.is_file() else None)
    if path:
        raise InputError(f"validation summary {path}: not found (expected the folder "
                         "written by `precsim validate --out DIR`, or its summary.md)")
    return None


# ---- tables -------------------------------------------------------------------------------------

#: The optimum's columns of the optima table (empty where no candidate is feasible).
_OPTIMUM_COLUMNS = ("train_format", "train_recipe", "train_dtype", "serve_format", "N", "D",
                    "tokens_per_param", "loss", "cost", "dollars", "energy_j", "train_time_s",
                    "train_device_hours", "train_mfu", "serve_time_s", "tpot_s",
                    "memory_bytes")


def _optimum_columns(o: Candidate | None) -> dict:
    if o is None:
        return dict.fromkeys(_OPTIMUM_COLUMNS)
    return dict(zip(_OPTIMUM_COLUMNS, (
        o.train_format, o.train_recipe, o.train_dtype, o.serve_format, o.N, o.D,
        o.tokens_per_param, o.loss, o.total.cost, o.total.dollars, o.total.energy_j,
        o.training.time_s, o.training.device_hours, o.train_mfu, o.serving.time_s,
        o.tpot_s, o.memory_bytes), strict=True))


def optima_table(results: StudyResults) -> pd.DataFrame:
    """One row per deployment: its optimum and the paper's abstract-cost optimum."""
    rows = []
    for name, r in results.plans.items():
        a = r.abstract
        rows.append({
            "deploy_profile": name, "feasible": r.optimum is not None,
            **_optimum_columns(r.optimum),
            "paper_bits": a.get("precision_bits"), "paper_N": a.get("N"),
            "paper_D": a.get("D"), "paper_abstract_cost": a.get("abstract_cost"),
            "paper_real_cost": a.get("real_cost"),
            "paper_serve_format": a.get("serve_format")})
    return pd.DataFrame(rows)


def _long(results: StudyResults, attr: str) -> pd.DataFrame:
    frames = [getattr(r, attr).assign(deploy_profile=name)
              for name, r in results.plans.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---- figures --------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def fig_iso_loss(result: PlanResult, target: float):
    """D needed to reach the target vs N, one curve per training precision (no PTQ),
    and dashed for 16-bit training followed by post-training quantization."""
    plt = _plt()
    iso = result.iso_loss
    fig, ax = plt.subplots(figsize=(8, 5.2))
    tied = iso[(iso.weight_bits == iso.act_bits) & (iso.act_bits == iso.kv_bits)]
    cmap = plt.get_cmap("viridis")
    bits = sorted(tied.weight_bits.unique())
    for k, b in enumerate(bits):
        cur = tied[(tied.weight_bits == b) & tied.P_post.isna()]
        ax.plot(cur.N, cur.D, color=cmap(k / max(len(bits) - 1, 1)), lw=1.6,
                label=f"train {b:g}-bit")
    ptq = tied[(tied.weight_bits >= 16) & tied.P_post.notna()]
    styles = iter([(0, (5, 2)), (0, (2, 2)), (0, (6, 2, 1, 2)), (0, (1, 1))] * 4)
    for p in sorted(ptq.P_post.unique(), reverse=True):
        cur = ptq[ptq.P_post == p]
        if cur.D.notna().any():
            ax.plot(cur.N, cur.D, color="0.35", lw=1, ls=next(styles),
                    label=f"16-bit + PTQ to {p:g} bits")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (non-embedding parameters)")
    ax.set_ylabel("D (training tokens) to reach the target")
    ax.set_title(f"iso-loss curves at loss {target:.4f} ({result.problem.law.name})",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fig_cost_vs_precision(results: StudyResults, objective: str):
    """Best cost per serving format and per training format, one line per profile."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    scale = _cost_scale(objective)
    for name, r in results.plans.items():
        bf = r.by_format[r.by_format["feasible"]]
        if not len(bf):
            continue
        for ax, key in zip(axes, ("serve_format", "train_format")):
            if bf[key].isna().all():
                continue
            order = [f for f in (r.by_format[key].drop_duplicates()) if f is not None]
            best = bf.groupby(key)["cost"].min().reindex(order)
            ax.plot(range(len(order)), best.to_numpy() / scale, marker="o", label=name)
            ax.set_xticks(range(len(order)), order, rotation=40, ha="right", fontsize=8)
    for ax, what in zip(axes, ("serving format (P_post = weight bits)",
                               "training precision")):
        ax.set_yscale("log")
        ax.set_xlabel(what)
        ax.set_ylabel(f"cheapest plan reaching the target ({_UNITS[objective]})")
        ax.grid(True, which="both", alpha=0.2)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_title("cost vs serving precision (best training format)", fontsize=10)
    axes[1].set_title("cost vs training precision (best serving format)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_pareto(results: StudyResults, objective: str, target: float):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2))
    scale = _cost_scale(objective)
    for name, r in results.plans.items():
        fr = r.frontier
        fr = fr[fr.loss <= target + 0.15]
        line, = ax.step(fr.cost / scale, fr.loss, where="post", label=name)
        if r.optimum:
            ax.scatter([r.optimum.total.cost / scale], [r.optimum.loss],
                       color=line.get_color(), zorder=3, s=30)
    ax.axhline(target, color="k", ls=":", lw=1, label="target loss")
    ax.set_xscale("log")
    ax.set_xlabel(f"cost ({_UNITS[objective]})")
    ax.set_ylabel("predicted loss")
    ax.set_title("Pareto frontier: lowest loss at each cost (dots: the optimum)", fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_abstract_vs_real(optima: pd.DataFrame, objective: str):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ok = optima[optima["feasible"]]
    x = np.arange(len(ok))
    scale = _cost_scale(objective)
    real = ok["cost"].to_numpy(float) / scale
    paper = ok["paper_real_cost"].to_numpy(float) / scale
    ax.bar(x - 0.2, real, 0.4, label="real-silicon optimum")
    ax.bar(x + 0.2, np.nan_to_num(paper), 0.4, label="paper's abstract optimum, priced here")
    for i, r in enumerate(ok.itertuples()):
        ax.text(i - 0.2, real[i], f"{r.train_format}\n{r.serve_format or ''}", ha="center",
                va="bottom", fontsize=7)
        if np.isfinite(paper[i]):
            ax.text(i + 0.2, paper[i], f"{r.paper_bits:g}-bit\n{r.paper_serve_format or ''}",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, ok["deploy_profile"])
    ax.set_ylabel(f"cost at the target loss ({_UNITS[objective]})")
    ax.set_title("abstract cost (N·D·P bit-operations) vs real silicon", fontsize=10)
    ax.margins(y=0.2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _served(profile: HardwareProfile, optimum: Candidate, workload: Workload, options: dict):
    """`simulator.cost.simulate` of a chosen configuration's serving batch."""
    from precsim.simulator.cost import simulate
    from precsim.simulator.models import model_for_params

    model = model_for_params(optimum.N, **options)
    return simulate(profile, model, optimum.serve_format, workload.batch,
                    workload.prompt_len, workload.output_len)


def energy_split_table(results: StudyResults) -> pd.DataFrame:
    """Per profile, the served optimum's average power, J/token and the shares that are
    static (idle + active baseline, `simulator.power`), compute and memory."""
    rows = []
    for name, r in results.plans.items():
        if r.optimum is None or r.problem.deploy_profile is None:
            continue
        t = _served(r.problem.deploy_profile, r.optimum, r.problem.workload,
                    r.problem.model_options).totals
        e = float(t["energy_j"])
        rows.append({"deploy_profile": name, "serve_format": r.optimum.serve_format,
                     **{k: float(t[k]) for k in ("average_power_w", "energy_per_token_j")},
                     "static_share": float(t["energy_static_j"]) / e,
                     "compute_share": float(t["energy_compute_j"]) / e,
                     "memory_share": float(sum(t["energy_memory_j"].values())) / e,
                     "throttled": bool(t["throttled"])})
    return pd.DataFrame(rows)


def roofline_png(profile: HardwareProfile, optimum: Candidate, workload: Workload,
                 model_options: dict) -> bytes:
    """The hierarchical roofline (simulator.roofline_plot) of a chosen configuration."""
    import tempfile

    from precsim.simulator.compute_units import phase_profiles
    from precsim.simulator.quant import as_quant
    from precsim.simulator.roofline_plot import plot_roofline

    sim = _served(profile, optimum, workload, model_options)
    roof = phase_profiles(profile, as_quant(optimum.serve_format), "decode")  # a SoC's unit
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_roofline(roof, sim.ops, Path(tmp) / "roofline.png",
                             title=f"{profile.name}: N={optimum.N:.3g}, "
                                   f"{optimum.serve_format}, batch {workload.batch} "
                                   "(o prefill, s decode)")
        return Path(path).read_bytes()


# ---- writing ------------------------------------------------------------------------------------

def _fmt_table(df: pd.DataFrame, formats: dict) -> pd.DataFrame:
    out = df.copy()
    for col, fmt in formats.items():
        if col in out:
            out[col] = out[col].map(lambda v, f=fmt: "-" if v is None or
                                    (isinstance(v, float) and not np.isfinite(v)) else f(v))
    return out


def conclusions(results: StudyResults) -> list[str]:
    """One sentence per deployment: the optimum, and what the paper's choice costs there."""
    obj = results.resolved.study.objective
    lines = []
    for name, r in results.plans.items():
        o, a = r.optimum, r.abstract
        if o is None:
            lines.append(f"**{name}**: no configuration reaches the target loss under the "
                         "memory and SLO constraints.")
            continue
        mfu = "" if o.train_mfu is None else (
            f", recipe {o.train_recipe}, MFU {o.train_mfu:.0%}, "
            f"{o.training.device_hours:,.0f} device-h")
        text = (f"**{name}**: train at {o.train_format} (runs as {o.train_dtype}{mfu}), "
                f"serve {o.serve_format or 'as trained'}; N = {o.N / 1e9:.2f}B, "
                f"D = {o.D / 1e9:.0f}B tokens ({o.tokens_per_param:.0f}/param); "
                f"{cost_text(o.total.cost, obj)}")
        if a.get("real_cost"):
            extra = 100 * (a["real_cost"] / o.total.cost - 1)
            text += (f". The paper's abstract optimum ({a['precision_bits']:g}-bit, "
                     f"N = {a['N'] / 1e9:.2f}B) costs {cost_text(a['real_cost'], obj)} "
                     f"here ({extra:+.0f}%).")
        else:
            text += "."
        lines.append(text)
    return lines


def build_document(results: StudyResults) -> tuple[Document, dict]:
    """The report's blocks and its CSV tables."""
    rs = results.resolved
    study = rs.study
    obj = study.objective
    doc = Document()
    optima = optima_table(results)
    tables = {"optima.csv": optima, "by_format.csv": _long(results, "by_format"),
              "pareto.csv": _long(results, "frontier"),
              "training_rates.csv": _long(results, "train_rates"),
              "iso_loss.csv": next(iter(results.plans.values())).iso_loss,
              "robustness.csv": members_table(results.robustness)}
    doc.h(1, f"PrecSim co-design report: {study.name}")
    if study.description:
        doc.p(study.description)
    target = (f"target loss **{rs.target_loss:.4f}**"
              + (f" = the 16-bit baseline (N = {study.target.baseline.N:.3g}, D = "
                 f"{study.target.baseline.D:.3g}) + {study.target.loss_increase:g}"
                 if rs.baseline_loss is not None else ""))
    doc.p(f"Question: which N, D, training precision and serving format reach the {target} "
          f"at the lowest {obj} on each profile? Law `{study.law}`; training on "
          f"`{getattr(rs.train_profile, 'name', 'none')}`; study file `{rs.source}`.")
    doc.h(2, "The answer")
    doc.bullets(conclusions(results))
    doc.table(_fmt_table(optima[["deploy_profile", "train_format", "train_dtype",
                                 "serve_format", "N", "D", "loss", "cost", "tpot_s",
                                 "memory_bytes", "paper_bits", "paper_real_cost"]], {
        "N": "{:.3g}".format, "D": "{:.3g}".format, "loss": "{:.4f}".format,
        "cost": lambda v: cost_text(v, obj), "paper_real_cost": lambda v: cost_text(v, obj),
        "tpot_s": lambda v: f"{v * 1e3:.1f} ms", "memory_bytes": lambda v: f"{v / 1e9:.2f} GB",
        "paper_bits": "{:g}".format}))

    robustness_blocks(doc, results.robustness, results.answers, obj)

    doc.h(2, "Abstract cost vs real silicon")
    first = next(iter(results.plans.values())).abstract
    if first.get("available") and "precision" in first["lawcore_compute_optimal"]:
        lc = first["lawcore_compute_optimal"]
        doc.p(f"The paper prices training as bit-operations, C = (6/16)·N·D·P. At this target "
              f"its optimum is P = {first['precision_bits']:g} bits, N = {first['N']:.3g}, "
              f"D = {first['D']:.3g} (C = {first['abstract_cost']:.3g}); "
              f"`lawcore.compute_optimal` at that budget gives P = {lc['precision']:.2f} bits, "
              f"N = {lc['N']:.3g}, loss {lc['loss']:.4f}. Real chips run only some formats "
              "natively (a 7-bit model trains in an 8-bit container), pay for scales and "
              "dequantisation, and serving is mostly limited by bytes moved, so the "
              "real optimum differs:")
    doc.figure("abstract_vs_real.png", fig_abstract_vs_real(optima, obj),
               "Cost at the target loss: the real-silicon optimum and the paper's abstract "
               "optimum priced on the same hardware.")

    doc.h(2, "Iso-loss curves over N and precision")
    doc.figure("iso_loss.png", fig_iso_loss(next(iter(results.plans.values())), rs.target_loss),
               "Training tokens needed to reach the target loss for each model size and "
               "training precision; dashed: 16-bit training then post-training quantization.")
    doc.h(2, "Cost vs precision per profile")
    doc.figure("cost_vs_precision.png", fig_cost_vs_precision(results, obj),
               "The cheapest plan reaching the target for each serving format (left) and "
               "training precision (right); missing points are infeasible.")
    doc.h(2, "Pareto frontier")
    doc.figure("pareto.png", fig_pareto(results, obj, rs.target_loss),
               "Lowest predicted loss reachable at each cost (grid candidates that fit memory "
               "and meet the SLO).")
    life = results.lifetime
    if not life.empty:
        doc.h(2, "The optimum over the model's lifetime")
        doc.figure("lifetime.png", fig_lifetime(life, _UNITS[obj], _cost_scale(obj)),
                   "Optimal model size and format pair (left) and the optimum's training "
                   "and serving cost (right) for 1e9 to 1e13 tokens served over the model's "
                   "life; serving costs scale linearly with tokens (codesign/lifetime.py).")
        tables["lifetime.csv"] = life
    doc.h(2, "Roofline of the chosen configurations")
    for index, (name, r) in enumerate(iterate(list(results.plans.items()), "report: rooflines",
                                                 label=lambda item: item[0])):
        if r.optimum is None or r.problem.deploy_profile is None:
            continue
        doc.add_png(f"roofline_{name}.png",
                    roofline_png(r.problem.deploy_profile, r.optimum, r.problem.workload,
                                 r.problem.model_options),
                    f"{name}: hierarchical roofline of the optimum served "
                    f"({r.optimum.serve_format}, N = {r.optimum.N:.3g}).")
    split = energy_split_table(results)
    if len(split):
        tables["energy_split.csv"] = split
        doc.h(2, "Energy: static vs dynamic per profile")
        doc.p("Serving energy of each optimum (`simulator.power`): static = idle floor + "
              "active baseline, paid per second; dynamic = ops and bytes moved.")
        share = "{:.0%}".format
        doc.table(_fmt_table(split, {"average_power_w": "{:.3g} W".format,
                                     "energy_per_token_j": "{:.3g} J".format} | {
            k: share for k in ("static_share", "compute_share", "memory_share")}))
    compare = runtime_comparison(results)
    if len(compare):
        tables["runtimes.csv"] = compare
        doc.h(2, "Runtime comparison")
        doc.p("Each optimum served on its chip under every runtime of the study "
              "(`runtimes:`, default `reference`; docs/runtimes.md): prefill time, decode "
              "time per token, decode tokens/s and energy per generated token, as "
              "`precsim simulate --runtime` gives them.")
        doc.table(_fmt_table(compare, {
            "prefill_s": lambda v: format_quantity(v, "time"),
            "tpot_s": lambda v: format_quantity(v, "time"),
            "decode_tokens_per_s": "{:.4g}".format,
            "energy_per_token_j": lambda v: format_quantity(v, "energy")}))
    if results.whatifs:
        doc.h(2, "What if")
        frames = []
        for spec, pname, table in results.whatifs:
            frames.append(table.assign(profile=pname))
            doc.h(3, f"{pname}: {', '.join(spec.vary)}")
            doc.table(_fmt_table(table[[c for c in ("variant", "train_format", "train_dtype",
                                                    "serve_format", "N", "D", "cost",
                                                    "delta_pct") if c in table]],
                                 {"N": "{:.3g}".format, "D": "{:.3g}".format,
                                  "cost": lambda v: cost_text(v, obj),
                                  "delta_pct": "{:+.1f}%".format}))
            for row in table.itertuples():
                if isinstance(row.unchanged_because, str):
                    doc.p(f"{row.variant} changes nothing: {row.unchanged_because}.")
            doc.figure(f"whatif_{len(frames)}.png",
                       whatif_figure(table, obj, f"{pname}: {', '.join(spec.vary)}"),
                       f"What-if on {pname}: optimal cost per variant.")
        tables["whatif.csv"] = pd.concat(frames, ignore_index=True)
    doc.h(2, "Validation")
    if results.validation is None:
        doc.p("No validation summary found. Run `precsim validate --out precsim-validation` "
              "to measure this machine and compare with the simulator; the report picks "
              "up `precsim-validation/summary.md` (or `validation_summary:` in the study, "
              "or `--validation DIR`).")
    else:
        path, text, png = results.validation
        doc.p(f"From `{path}`:")
        doc.pre(text)
        if png is not None:
            doc.add_png("validation_scatter.png", png, "Validation: measured vs simulated.")
    doc.h(2, "Assumptions")
    doc.bullets([
        "Training FLOPs = 6·N·D (N non-embedding parameters), run as large GEMMs in the "
        "training format on the training profile: time and energy from "
        "`simulator.kernels.matmul_cost` (native peak or the profile's fallback rule, at "
        "achievable fractions, operand traffic included; board baseline and power cap from "
        "`simulator.power`). b-bit operands may run in any wider type "
        "(4-bit values in int8); the cheapest is used.",
        "Serving: `tokens_served` generated tokens in requests of prompt_len + output_len "
        "priced by `simulator.cost.simulate` on the parametric model family "
        "(`simulator.models.model_for_params`); one device; the model must fit main "
        "memory and meet the SLO (mean TPOT, TTFT).",
        "P_post = the serving format's weight bits (16-bit formats: no post-training "
        "quantization; per-group overrides: docs/laws.md). Quantizing activations or the "
        "KV cache at serving time is priced by a stated proxy, not a measurement: the law's "
        "activation and KV factors at min(training bits, serving bits).",
        f"Costs: objective {obj}; $/kWh {study.dollars_per_kwh:g} (study); $/device-hour: "
        + "; ".join(price_text(name, r.problem) for name, r in results.plans.items())
        + ". No device-hour is priced at an unstated $0 (codesign.study.device_hour_price).",
        "Search: dense log grid in N; for each N and format pair the smallest D reaching "
        "the target (grid + bisection). Candidates and timings per plan: "
        + ", ".join(f"{n} {r.candidates:,} in {r.elapsed_s:.2f} s"
                    for n, r in results.plans.items()) + ".",
    ])
    return doc, tables


def write_report(results: StudyResults, out: str | Path) -> Path:
    """Write the report folder atomically; returns its path."""
    doc, tables = build_document(results)
    title = f"PrecSim co-design report: {results.resolved.study.name}"
    with atomic_directory(out) as tmp:
        (tmp / "figures").mkdir()
        for name, png in doc.figures.items():
            atomic_write_bytes(tmp / "figures" / name, png)
        for name, df in tables.items():
            atomic_write_text(tmp / name, df.to_csv(index=False))
        atomic_write_text(tmp / "report.md", doc.markdown())
        atomic_write_text(tmp / "report.html", doc.html(title))
    return Path(out)


def build_report(resolved: ResolvedStudy, out: str | Path, validation: str | None = None) -> StudyResults:
    """Plan, run the what-ifs and write the report folder `out` (atomically)."""
    results = run_study(resolved, validation)
    write_report(results, out)
    return results
