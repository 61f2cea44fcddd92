"""`precsim law predict|fit|optimal|plot`: the precision-aware scaling laws (lawcore).

Extending the group: `register()` leaves the `law` sub-command parsers in the module
attribute `LAW_SUBPARSERS` (an argparse sub-parsers action). Another module listed
*after* "precsim.codesign.commands.law" in `COMMAND_MODULES` adds a sub-command from its own
`register(subparsers)`:

    from precsim.codesign.commands import law
    p = law.LAW_SUBPARSERS.add_parser("validate", help="...")
    law.add_law_arg(p); add_json_arg(p); p.set_defaults(func=handler)

`add_law_arg`, `resolve_law` (registry name or fitted-law JSON path) and `parse_count`
("1.5B", "70M", "1e21") are the shared argument helpers.
"""
from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precsim.codesign.commands.common import (MAX_BOOTSTRAP, MAX_ITERATIONS, MAX_SEED,
                                              add_json_arg, int_arg, print_json,
                                              quantity_arg, verdict)
from precsim.lawcore import (DEFAULT_LAW, LAWS, HIGH_PRECISION_BITS, Law, LawFitError, LawInputError,
                     compute_optimal, get_law, law_from_json,
                     optimal_precision_fixed_n)
from precsim.lawcore.plots import law_figures
from precsim.simulator.io import (MAX_JSON_BYTES, atomic_write_bytes, atomic_write_text,
                                  read_text_bounded)
from precsim.simulator.units import flag_help

LAW_SUBPARSERS: argparse._SubParsersAction | None = None  # set by register()

MAX_RUNS_CSV_BYTES = 16 << 20  # 16 MiB: a runs CSV of MAX_FIT_ROWS rows is about 1 MiB
#: most runs one fit takes: published suites have tens to a few hundred runs; a fit's
#: cost grows with rows x starts x bootstrap resamples
MAX_FIT_ROWS = 10_000
#: a count such as 1e9, 70M, 1.5B, 2T: the one quantity grammar (simulator.units "count")
parse_count = quantity_arg("count")


def parse_bits(text: str) -> float:
    """Bit width: a number, or 'inf' for not quantized."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bits") from None


def add_law_arg(parser: argparse.ArgumentParser, default: str = DEFAULT_LAW) -> None:
    parser.add_argument("--law", default=default, metavar="NAME|FIT.json",
                        help=f"law name ({', '.join(LAWS)}; default {default}) or a JSON "
                             "written by `precsim law fit --out`")


def resolve_law(spec: str) -> Law:
    """A registry law by name, or a law (fitted or not) from a `law fit --out` JSON file."""
    if spec in LAWS:
        return get_law(spec)
    path = Path(spec)
    if not (spec.endswith(".json") or path.exists()):
        raise LawInputError(f"unknown law {spec!r}; known: {', '.join(LAWS)} (or the path of "
                            "a law JSON written by `precsim law fit --out`)")
    text = read_text_bounded(path, "law JSON", MAX_JSON_BYTES)
    try:
        return law_from_json(text)
    except LawInputError as exc:
        raise LawInputError(f"{path}: {exc}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    global LAW_SUBPARSERS
    parser = subparsers.add_parser("law", help="precision-aware scaling laws: predict, fit, "
                                               "compute-optimal precision, figures")
    sub = parser.add_subparsers(dest="law_command", metavar="ACTION")
    sub.required = True
    LAW_SUBPARSERS = sub

    p = sub.add_parser("predict", help="loss for N, D, training bits and post-training bits")
    p.add_argument("--N", type=parse_count, required=True,
                   help=flag_help("count", "1.5B", "1.5e9", "parameters"))
    p.add_argument("--D", type=parse_count, required=True,
                   help=flag_help("count", "30B", "3e10", "training tokens"))
    p.add_argument("--train-bits", type=parse_bits, default=HIGH_PRECISION_BITS,
                   help="training precision of weights, activations and KV cache (default 16)")
    for part, what in (("weight", "weights"), ("act", "activations"), ("kv", "KV cache")):
        p.add_argument(f"--{part}-bits", type=parse_bits, default=None,
                       help=f"training precision of the {what} (overrides --train-bits)")
    p.add_argument("--post-bits", type=parse_bits, default=None,
                   help="post-training quantization to this many bits (default: none)")
    add_law_arg(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("fit", help="fit a law to training runs (CSV: N, D, [P_w, P_a, P_kv, "
                                   "P_post], loss)")
    p.add_argument("runs", help="runs CSV file")
    p.add_argument("--out", help="write the fitted law as JSON (usable as --law FILE)")
    p.add_argument("--bootstrap", type=int_arg(MAX_BOOTSTRAP, 0), default=None, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default: the law's, 50)")
    p.add_argument("--seed", type=int_arg(MAX_SEED, 0), default=0,
                   help="bootstrap seed (default 0)")
    p.add_argument("--max-iter", type=int_arg(MAX_ITERATIONS), default=None, metavar="N",
                   help="L-BFGS-B iteration limit per start (default: the law's, 2000)")
    p.add_argument("--heldout", action="store_true",
                   help="also fit on the smaller models and check the largest N")
    add_law_arg(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("optimal", help="compute-optimal N, D and training precision "
                                       "(cost C = (6/16)·N·D·P)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--compute", type=parse_count, metavar="FLOPS",
                      help=flag_help("count", "1e21", "1e21", "training budget in FLOPs: "
                                     "optimise N, D and precision"))
    mode.add_argument("--N", type=parse_count,
                      help=flag_help("count", "1B", "1e9", "fixed model size: optimise "
                                     "precision for the budget of --D tokens at 16 bits"))
    p.add_argument("--D", type=parse_count,
                   help=flag_help("count", "20B", "2e10", "tokens at 16 bits (with --N)"))
    p.add_argument("--precision", type=parse_bits, default=None,
                   help="fix the training precision (with --compute)")
    p.add_argument("--max-bits", type=float, default=32.0,
                   help="upper end of the precision search (default 32)")
    add_law_arg(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_optimal)

    p = sub.add_parser("plot", help="write the standard PNG figures of a law")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--N", type=parse_count, default=1e8,
                   help=flag_help("count", "100M", "1e8",
                                  "model size of the fixed-N figures (default 1e8)"))
    p.add_argument("--compute", type=parse_count, default=1e21, metavar="FLOPS",
                   help=flag_help("count", "1e21", "1e21",
                                  "budget of the iso-loss figure (default 1e21)"))
    add_law_arg(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_plot)


def warn_validity(record: dict[str, Any]) -> None:
    """Each validity flag (lawcore.domain) as a warning on stderr."""
    for flag in record["flags"]:
        print(f"precsim: warning: {flag}", file=sys.stderr)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.6g}"


def cmd_predict(args: argparse.Namespace) -> int:
    law = resolve_law(args.law)
    bits = {name: args.train_bits if value is None else value for name, value in (
        ("P_w", args.weight_bits), ("P_a", args.act_bits), ("P_kv", args.kv_bits))}
    parts = law.components(args.N, args.D, P_post=args.post_bits, **bits)
    n_eff = law.n_eff(args.N, **bits) if law.NEFF_FORM else None
    result = {"law": law.name, "law_class": type(law).__name__, "fitted": law.is_fitted,
              "N": args.N, "D": args.D, "weight_bits": bits["P_w"], "act_bits": bits["P_a"],
              "kv_bits": bits["P_kv"], "post_bits": args.post_bits, "N_eff": n_eff,
              "components": {k: v for k, v in parts.items() if k != "loss"},
              "loss": parts["loss"],
              "validity": law.validity(args.N, args.D, P_post=args.post_bits, **bits)}
    warn_validity(result["validity"])
    if args.json:
        print_json(result)
        return 0
    post = "none" if args.post_bits is None else f"{args.post_bits:g}"
    print(f"law {law.name} ({type(law).__name__}{', fitted' if law.is_fitted else ''}): "
          f"N = {args.N:.4g}, D = {args.D:.4g}, training bits w/a/kv = "
          f"{bits['P_w']:g}/{bits['P_a']:g}/{bits['P_kv']:g}, post-training bits = {post}")
    rows = [("N_eff", math.nan if n_eff is None else n_eff), *((k.replace("_", " "), v) for k, v in result["components"].items()),
            ("loss", parts["loss"])]
    for label, value in rows:
        print(f"  {label:<18} {float(value):.6g}")
    return 0


def _read_runs(path: str) -> pd.DataFrame:
    """Runs CSV with the index set to file line numbers (errors say 'line 7')."""
    text = read_text_bounded(path, "runs file", MAX_RUNS_CSV_BYTES)
    try:
        runs = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise LawInputError(f"{path}: runs file is empty") from None
    except pd.errors.ParserError as exc:
        raise LawInputError(f"{path}: not a readable CSV: {str(exc)[:120]}") from None
    if len(runs) > MAX_FIT_ROWS:
        raise LawInputError(f"{path}: {len(runs):,} runs; a fit takes at most "
                            f"{MAX_FIT_ROWS:,} (each bootstrap refit revisits every row): "
                            "average repeated runs or pass a subset")
    runs.index = np.arange(2, len(runs) + 2)
    return runs


def cmd_fit(args: argparse.Namespace) -> int:
    law = resolve_law(args.law)
    overrides: dict[str, Any] = {"seed": args.seed}
    if args.bootstrap is not None:
        overrides["n_bootstrap"] = args.bootstrap
    if args.max_iter is not None:
        overrides["max_iter"] = args.max_iter
    law = law.clone(**overrides)
    runs = _read_runs(args.runs)
    try:
        law.fit(runs, row_name=f"{args.runs}: line")
        from precsim.lawcore.fitting import heldout_check  # scipy: loaded only when fitting

        heldout = heldout_check(law, runs, row_name=f"{args.runs}: line") \
            if args.heldout else None
    except LawInputError as exc:  # every message names the runs file
        text = str(exc)
        raise LawInputError(text if args.runs in text else f"{args.runs}: {text}") from None
    except LawFitError as exc:
        print(f"precsim: error: fit did not converge: {exc}", file=sys.stderr)
        return 1
    if args.out:
        atomic_write_text(args.out, law.to_json() + "\n")
    result = {"law": law.name, "law_class": type(law).__name__, "runs": args.runs,
              "n_runs": law.n_runs_, "converged": law.converged_, "constants": law.constants_,
              "fitted_constants": law.fitted_constants_, "ci_level": law.ci_level_,
              "ci": {k: list(v) for k, v in law.ci_.items()}, "rmse": law.rmse_, "r2": law.r2_,
              "n_bootstrap_ok": law.n_bootstrap_ok_, "out": args.out}
    if heldout is not None:
        result["heldout"] = {k: v for k, v in heldout.items() if k not in ("law", "table")}
    if args.json:
        print_json(result)
        return 0
    level = f"{100 * law.ci_level_:g}%"
    print(f"fit of {law.name} ({type(law).__name__}) to {law.n_runs_} runs from {args.runs}: "
          f"RMSE {law.rmse_:.4g}, R² {law.r2_:.5f}, {law.fit_message_}")
    def interval(name: str, end: int) -> str:
        if name in law.ci_:
            return _fmt(law.ci_[name][end])
        return "= alpha" if (name == "beta" and law.tie_alpha_beta) else "fixed"

    table = pd.DataFrame([{"constant": name, "value": _fmt(value),
                           f"{level} CI low": interval(name, 0),
                           f"{level} CI high": interval(name, 1)}
                          for name, value in law.constants_.items()])
    print(table.to_string(index=False))
    if heldout is not None:
        print(f"held-out check: fit on {heldout['n_train']} runs with N < "
              f"{heldout['heldout_N']:.4g}, predicted {heldout['n_heldout']} runs at N = "
              f"{heldout['heldout_N']:.4g}: RMSE {heldout['rmse']:.4g}, mean |rel. error| "
              f"{heldout['mean_abs_rel_error']:.3%}, max {heldout['max_abs_rel_error']:.3%}")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def optimal_json(law, opt, mode: str) -> dict:
    """The `precsim law optimal --json` object: the optimum and its validity under the
    law's fitted domain (the training precision applies to weights, activations, KV)."""
    p = opt.precision
    return {"law": law.name, "mode": mode, **opt.to_dict(),
            "validity": law.validity(opt.N, opt.D, p, p, p), **verdict(None)}


def cmd_optimal(args: argparse.Namespace) -> int:
    law = resolve_law(args.law)
    if args.compute is not None:
        if args.D is not None:
            raise LawInputError("--D goes with --N (fixed model size), not with --compute")
        opt = compute_optimal(args.compute, law, precision=args.precision,
                              max_bits=args.max_bits)
        mode = "compute"
    else:
        if args.D is None:
            raise LawInputError("--N needs --D (tokens the budget buys at 16 bits)")
        if args.precision is not None:
            raise LawInputError("--precision goes with --compute; with --N the precision is "
                                "what is optimised")
        opt = optimal_precision_fixed_n(args.N, args.D, law, max_bits=args.max_bits)
        mode = "fixed_N"
    result = optimal_json(law, opt, mode)
    warn_validity(result["validity"])
    if args.json:
        print_json(result)
        return 0
    what = "compute-optimal" if mode == "compute" else "fixed-N optimal"
    print(f"{what} training under C = (6/16)·N·D·P with law {law.name}:")
    print(f"  compute    {opt.compute_flops:.4g} FLOPs")
    print(f"  N          {opt.N:.4g} parameters")
    print(f"  D          {opt.D:.4g} tokens")
    print(f"  precision  {opt.precision:.3f} bits"
          + (" (at the search's upper bound --max-bits)" if opt.at_bound else ""))
    print(f"  loss       {opt.loss:.5g}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    law = resolve_law(args.law)
    figures = law_figures(law, N=args.N, compute_flops=args.compute)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LawInputError(f"{out}: exists and is not a directory")
    written = [str(atomic_write_bytes(out / name, data)) for name, data in figures.items()]
    if args.json:
        print_json({"law": law.name, "files": written})
    else:
        for path in written:
            print(f"wrote {path}")
    return 0
