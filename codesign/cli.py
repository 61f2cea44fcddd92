"""The `precsim` command line.

Exit codes (design.md): 0 ok, 2 bad input (a message, no traceback), 1 internal error.
Each command group lives in `codesign/commands/<group>.py` and exposes
`register(subparsers)`; every sub-parser sets `func(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from precsim.lawcore.errors import LawInputError
from precsim.simulator.errors import InputError

# Command-group modules, in the order they appear in `precsim --help`.
COMMAND_MODULES = (
    "precsim.codesign.commands.profiles",
    "precsim.codesign.commands.law",
    "precsim.codesign.commands.law_validate",
    "precsim.codesign.commands.simulate",
    "precsim.codesign.commands.validate",
    "precsim.codesign.commands.sweep",
    "precsim.codesign.commands.serve",
    "precsim.codesign.commands.train",
    "precsim.codesign.commands.plan",
    "precsim.codesign.commands.whatif",
    "precsim.codesign.commands.report",
)

INPUT_ERRORS = (InputError, LawInputError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="precsim",
        description="PrecSim: the precision that minimises real-silicon cost at a target loss.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except INPUT_ERRORS as exc:
        print(f"precsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("precsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - last-resort handler of the CLI
        if os.environ.get("PRECSIM_DEBUG"):
            traceback.print_exc()
        print(f"precsim: internal error: {type(exc).__name__}: {exc} "
              "(set PRECSIM_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
