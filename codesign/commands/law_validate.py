"""`precsim law validate`: train small models here, fit the precision laws, report what holds.

Runs a sweep (validation.training: QAT + PTQ of tiny decoder-only transformers on the
CPU, durable and resumable in OUT/runs.csv) or reuses a runs CSV, fits lawcore's forms
and writes a Markdown/PNG/CSV report into OUT. Registered as a sub-command of the `law`
group (codesign.commands.law.LAW_SUBPARSERS), so this module must follow
"precsim.codesign.commands.law" in COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from precsim.codesign.commands.common import (MAX_BOOTSTRAP, MAX_DEGREE, add_json_arg, int_arg,
                                              print_json)
from precsim.codesign.progress import reporter, stages
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_text, read_text_bounded
from precsim.validation.training.data import make_source


def register(subparsers: argparse._SubParsersAction) -> None:
    from precsim.codesign.commands import law
    if law.LAW_SUBPARSERS is None:
        raise RuntimeError("precsim.codesign.commands.law must be registered before "
                           "precsim.codesign.commands.law_validate (order of COMMAND_MODULES)")
    p = law.LAW_SUBPARSERS.add_parser(
        "validate", help="train small models at chosen precisions on the CPU, fit the laws, "
                         "report what holds")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (runs.csv, summary.md, figures, tables); a sweep "
                        "interrupted here resumes from DIR/runs.csv")
    p.add_argument("--quick", action="store_true",
                   help="the short sweep (14 runs instead of the default's 98; measured "
                        "2026-12-06 on the shared 2-core VM: 266 s wall, 156 s of CPU time "
                        "at load average ~5; 885 s wall at ~9; README 'The laws')")
    p.add_argument("--grid", metavar="NAME|FILE.yaml", default=None,
                   help="sweep grid: default, quick, tiny, or a YAML file (see "
                        "validation/training/sweep.py)")
    p.add_argument("--data", default="synthetic", metavar="SOURCE",
                   help="synthetic (Markov language with known entropy; default) or stdlib "
                        "(bytes of Python's standard library)")
    p.add_argument("--runs", metavar="CSV", default=None,
                   help="analyse this runs CSV instead of training")
    p.add_argument("--jobs", type=int_arg(MAX_DEGREE), default=None, metavar="N",
                   help="runs trained at once, each in its own single-threaded process "
                        "(default: one per usable core)")
    p.add_argument("--bootstrap", type=int_arg(MAX_BOOTSTRAP, 0), default=50, metavar="N",
                   help="bootstrap resamples for the fitted constants' intervals (default 50)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (default: a bar with an ETA on a terminal, "
                        "one line per stage and per training run otherwise)")
    add_json_arg(p)
    p.set_defaults(func=cmd_validate)


def _check_args(args: argparse.Namespace) -> None:
    if args.quick and args.grid:
        raise InputError("--quick and --grid are exclusive (--quick is --grid quick)")
    if args.runs and (args.quick or args.grid):
        raise InputError("--runs analyses an existing runs CSV; it takes no --quick/--grid")
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap {args.bootstrap}: expected >= 0")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    make_source(args.data)   # an unknown source is an error even with --runs


def _sweep(args: argparse.Namespace, log_path: Path):
    from precsim.validation.torchenv import load_torch
    from precsim.validation.training.sweep import load_grid, run_sweep

    source = make_source(args.data)
    grid = load_grid("quick" if args.quick else (args.grid or "default"))
    load_torch()
    t0 = time.perf_counter()
    with reporter("law validate: training", enabled=False if args.no_progress else None,
                  unit="run") as on_progress:
        table = run_sweep(grid, source, log_path, jobs=args.jobs, progress=on_progress)
    extra = {"grid": grid.name, "sweep_wall_time_s": time.perf_counter() - t0}
    return table, source.describe(), extra


def _runs(args: argparse.Namespace, out: Path, log_path: Path):
    """(runs table, data note, extra report fields): --runs read and copied, else trained."""
    from precsim.validation.training.runs import MAX_RUNS_CSV_BYTES, read_runs_csv

    if not args.runs:
        return _sweep(args, log_path)
    source_path = Path(args.runs)
    table = read_runs_csv(source_path)
    sources = sorted(table["data"].dropna().astype(str).unique()) \
        if "data" in table.columns else []
    note = f"runs CSV {source_path}" + (f" (data: {', '.join(sources)})" if sources else "")
    data = read_text_bounded(source_path, "runs CSV", MAX_RUNS_CSV_BYTES)
    if not log_path.exists():
        atomic_write_text(log_path, data)
    elif read_text_bounded(log_path, "runs CSV", MAX_RUNS_CSV_BYTES) != data:
        raise InputError(f"--out {out}: already holds a different runs.csv (a sweep log?); "
                         "choose another --out so that it is not overwritten")
    return table, note, {"runs_csv": str(source_path)}


def cmd_validate(args: argparse.Namespace) -> int:
    from precsim.validation.training.analysis import analyse
    from precsim.validation.training.report import render, write_report

    _check_args(args)
    out = Path(args.out)
    log_path = out / "runs.csv"
    with stages("law validate", total=3, enabled=False if args.no_progress else None) as step:
        step.advance("reading the runs" if args.runs else "training the sweep")
        table, note, extra = _runs(args, out, log_path)
        step.advance(f"fitting the laws ({args.bootstrap} bootstrap resamples)")
        label = Path(args.runs).name if args.runs else log_path.name
        analysis = analyse(table, note, n_bootstrap=args.bootstrap, label=label)
        step.advance("writing the report")
        files, doc = render(analysis, extra)
        written = write_report(out, files)
    doc["out"] = str(out)
    doc["files"] = sorted(["runs.csv", *(p.name for p in written)])
    if args.json:
        print_json(doc)
        return 0
    print(f"law validation report written to {out}/ ({len(written) + 1} files; "
          f"{doc['training_runs']} training runs)")
    for question, answer in doc["verdicts"].items():
        print(f"  {question.replace('_', ' ').replace('D over N', 'D/N')}: {answer}")
    known = doc["E"].get("known_E")
    for label in ("chinchilla", "precision"):
        entry = doc["E"].get(label)
        if entry and known is not None:
            print(f"  E fitted ({label}) {entry['E_fit']:.4f} vs known entropy {known:.4f} "
                  f"({entry['abs_error']:+.4f} nats)")
    print(f"  see {out / 'summary.md'}")
    return 0

