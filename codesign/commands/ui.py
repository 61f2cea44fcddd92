"""`precsim ui`: the explorer in the browser (Dash; imported only when the command runs)."""
from __future__ import annotations

import argparse
import sys

from precsim.codesign.commands.common import add_profile_dir_arg, int_arg

LOCALHOST = "127.0.0.1"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui", help="a local web page: simulate, co-design, laws, profiles",
        description="Start the PrecSim explorer on http://127.0.0.1:PORT/ and print its URL. "
                    "Its numbers are those of the CLI's --json for the same inputs.")
    parser.add_argument("--port", type=int_arg(65_535, 0), default=8050,
                        help="TCP port (default 8050)")
    parser.add_argument("--host", default=LOCALHOST,
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--study", metavar="FILE.yaml",
                        help="study of the Co-design tab (default: the built-in study)")
    add_profile_dir_arg(parser)
    parser.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from precsim.codesign.ui.app import Context, serve
    from precsim.codesign.ui.compute import study_deployments
    from precsim.simulator.errors import InputError

    if not 0 < args.port < 65536:
        raise InputError(f"--port: expected 1 to 65535, got {args.port}")
    study_deployments(args.study, args.profile_dir)  # a bad study fails here, exit 2
    if args.host != LOCALHOST:
        print(f"precsim ui: warning: listening on {args.host}: other machines can reach "
              "this page (it has no authentication)", file=sys.stderr)
    ctx = Context(study=args.study, profile_dirs=tuple(args.profile_dir))
    print(f"PrecSim explorer on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
          flush=True)
    with ctx.upload_dir:
        serve(ctx, args.host, args.port)
    return 0
