"""`precsim whatif`: how the optimal precision and its cost move when a profile changes."""
from __future__ import annotations

import argparse
import sys

from precsim.codesign.commands.common import add_json_arg, print_json, resolve_profile
from precsim.codesign.commands.plan import add_study_args, study_from_args
from precsim.codesign.problem import cost_text
from precsim.codesign.variants import VARY_HELP
from precsim.codesign.whatif import run_whatif, whatif_figure
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
               "  precsim whatif --profile h100-sxm --vary memory.hbm.bandwidth=0.5x,1x,2x\n"
               "  precsim whatif --profile snapdragon-8-gen3 --vary compute_units.npu.compute.int4=native\n"
               "  precsim whatif --profile apple-m2 --vary 'memory.lpddr5.access_energy="
               "0.5x' --out whatif-m2\n")
    parser.add_argument("--profile", required=True, metavar="NAME|FILE",
                        help="the hardware profile to vary")
    parser.add_argument("--vary", action="append", required=True, metavar="FIELD=VALUES",
                        help="a field and its values (repeatable; grammar below)")
    parser.add_argument("--out", metavar="DIR",
                        help="write whatif.csv and whatif.png into DIR (replaced atomically)")
    add_study_args(parser, deploy=False)
    add_json_arg(parser)
    parser.set_defaults(func=cmd_whatif)


def cmd_whatif(args: argparse.Namespace) -> int:
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
    if args.json:
        print_json({"profile": profile.name, "objective": objective,
                    "target_loss": resolved.target_loss,
                    "variants": table.to_dict(orient="records"), "files": written})
        return 0
    show = table.assign(
        N=table["N"].map("{:.3g}".format) if "N" in table else None,
        D=table["D"].map("{:.3g}".format) if "D" in table else None,
        cost=table["cost"].map(lambda v: cost_text(v, objective)),
        delta=table["delta_pct"].map("{:+.1f}%".format))
    cols = [c for c in ("variant", "train_format", "train_dtype", "serve_format", "N", "D",
                        "cost", "delta") if c in show]
    print(f"what-if on {profile.name} (objective {objective}, target loss "
          f"{resolved.target_loss:.4f})")
    print(show[cols].to_string(index=False))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
