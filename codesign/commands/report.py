"""`precsim report`: the co-design report of a study (the built-in one by default)."""
from __future__ import annotations

import argparse
import sys

from precsim.codesign.commands.common import add_json_arg, add_profile_dir_arg, print_json

DEFAULT_OUT = "precsim-report"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write the co-design report (Markdown, HTML, figures, CSV)",
        description="Plan every deployment of a study, run its what-ifs and write a "
                    "self-contained folder: report.md, report.html (figures embedded), "
                    "figures/*.png and the tables as CSV. The folder is written "
                    "atomically: a failed run leaves an existing report untouched.")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--study", metavar="FILE.yaml",
                        help="study file (default: the built-in study: a 1B-8B-class "
                             "target on h100-sxm, snapdragon-8-gen3, apple-m2, "
                             "ternary-accel)")
    parser.add_argument("--validation", metavar="DIR",
                        help="folder written by `precsim validate --out DIR` (default: the "
                             "study's validation_summary, else ./precsim-validation if "
                             "present)")
    add_profile_dir_arg(parser)
    add_json_arg(parser)
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from precsim.codesign.report import build_report, conclusions, optima_table
    from precsim.codesign.study import load_study, resolve_study

    study, source = load_study(args.study)
    resolved = resolve_study(study, source, args.profile_dir)
    results = build_report(resolved, args.out, args.validation)
    files = ["report.md", "report.html", "optima.csv", "by_format.csv", "pareto.csv"]
    if args.json:
        print_json({"out": str(args.out), "study": study.name, "source": source,
                    "target_loss": resolved.target_loss, "objective": study.objective,
                    "optima": optima_table(results).to_dict(orient="records"),
                    "validation": results.validation[0] if results.validation else None,
                    "files": files})
        return 0
    for line in conclusions(results):
        print("- " + line.replace("**", ""))
    print(f"wrote {args.out}/report.md and report.html", file=sys.stderr)
    return 0
