"""`precsim whatif`: how the optimal precision and its cost move when a profile changes."""
from __future__ import annotations

import argparse
import sys

from precsim.codesign.commands.common import (add_json_arg, exit_code, print_json,
                                              resolve_profile, verdict)
from precsim.codesign.commands.plan import add_study_args, study_from_args
from precsim.codesign.problem import cost_text
from precsim.codesign.variants import VARY_HELP, editable_fields
from precsim.codesign.whatif import run_whatif, whatif_figure
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_directory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "whatif", help="vary a hardware profile and see the optimal plan move",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Plan once per variant of a hardware profile (the Cartesian product "
                    "of the --vary arguments, plus the profile as it is) and report how "
                    "the optimal training precision, serving format and cost shift. The "
                    "profile is varied wherever the plan uses it: as the deployment "
                    "profile (added with the study's default workload if the study does "
                    "not list it) and, if it is also the training profile, for training.",
        epilog=VARY_HELP + "\nExamples:\n"
               "  precsim whatif --list-fields h100-sxm      (every FIELD and its value)\n"
               "  precsim whatif --profile h100-sxm --vary memory.hbm.bandwidth=0.5x,1x,2x\n"
               "  precsim whatif --profile h100-sxm --vary 'memory.hbm.bandwidth=4 TB/s'\n"
               "  precsim whatif --profile snapdragon-8-gen3 --vary "
               "compute_units.npu.compute.int4=native\n"
               "  precsim whatif --profile h100-sxm --vary compute.int8=emulated\n"
               "  precsim whatif --profile apple-m2 --vary 'memory.lpddr5.access_energy="
               "0.5x' --out whatif-m2\n"
               "\nA variant whose plan does not move says why (e.g. no searched format "
               "runs the edited data type, or the edited peak does not bind).\n")
    parser.add_argument("--profile", metavar="NAME|FILE",
                        help="the hardware profile to vary (required unless --list-fields)")
    parser.add_argument("--vary", action="append", metavar="FIELD=VALUES",
                        help="a field and its values (repeatable; grammar below)")
    parser.add_argument("--list-fields", metavar="PROFILE",
                        help="print every editable field of PROFILE with its current value "
                             "and exit")
    parser.add_argument("--out", metavar="DIR",
                        help="write whatif.csv and whatif.png into DIR (replaced atomically)")
    add_study_args(parser, deploy=False)
    add_json_arg(parser)
    parser.set_defaults(func=cmd_whatif)


def cmd_list_fields(args: argparse.Namespace) -> int:
    profile = resolve_profile(args, args.list_fields)
    rows = editable_fields(profile)
    if args.json:
        print_json({"profile": profile.name, "fields": rows})
        return 0
    print(f"editable fields of {profile.name} (--vary FIELD=VALUES; provenance of the value)")
    width = max(len(r["field"]) for r in rows)
    value_width = max(len(r["value"]) for r in rows)
    print(f"{'field':<{width}}  {'value':<{value_width}}  provenance")
    for r in rows:
        print(f"{r['field']:<{width}}  {r['value']:<{value_width}}  {r['provenance']}")
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    if args.list_fields:
        return cmd_list_fields(args)
    if not args.profile or not args.vary:
        raise InputError("whatif: --profile and at least one --vary are required (or "
                         "--list-fields PROFILE to see the editable fields)")
    profile = resolve_profile(args, args.profile)
    resolved, index = study_from_args(args, deploy_profile=args.profile)
    table = run_whatif(resolved, index, resolved.deploy_profiles[index], args.vary)
    objective = resolved.study.objective
    written = []
    if args.out:
        title = (f"what-if on {profile.name}: optimal {objective} at target loss "
                 f"{resolved.target_loss:.4f}")
        fig = whatif_figure(table, objective, title)
        with atomic_directory(args.out) as tmp:
            table.to_csv(tmp / "whatif.csv", index=False)
            fig.savefig(tmp / "whatif.png", dpi=120)
        written = [f"{args.out}/whatif.csv", f"{args.out}/whatif.png"]
    reason = None if table["feasible"].any() else (
        f"no variant reaches the target loss {resolved.target_loss:.4f} under the "
        "constraints")
    if args.json:
        print_json({"profile": profile.name, "objective": objective,
                    "target_loss": resolved.target_loss,
                    "variants": table.to_dict(orient="records"), "files": written,
                    **verdict(reason)})
        return exit_code(reason)
    show = table.assign(
        N=table["N"].map("{:.3g}".format) if "N" in table else None,
        D=table["D"].map("{:.3g}".format) if "D" in table else None,
        cost=table["cost"].map(lambda v: cost_text(v, objective)),
        delta=table["delta_pct"].map("{:+.1f}%".format))
    cols = [c for c in ("variant", "train_format", "train_dtype", "serve_format", "N", "D",
                        "cost", "delta") if c in show]
    units = {"N": "N params", "D": "D tokens"}
    show = show.rename(columns=units)
    cols = [units.get(c, c) for c in cols]
    print(f"what-if on {profile.name} (objective {objective}, target loss "
          f"{resolved.target_loss:.4f})")
    print(show[cols].to_string(index=False))
    for row in table.itertuples():
        if isinstance(row.unchanged_because, str):
            print(f"{row.variant}: changes nothing: {row.unchanged_because}")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if reason:
        print(reason)
    return exit_code(reason)
