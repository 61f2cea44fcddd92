"""Argument helpers shared by the `precsim` command groups."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from precsim.simulator.io import json_text
from precsim.simulator.profile_loader import PROFILE_PATH_ENV, load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.units import UnitError, parse_flag_quantity


def add_profile_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile-dir", action="append", default=[], metavar="PATH",
        help=f"extra profile file or folder (repeatable); also ${PROFILE_PATH_ENV}")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one machine-readable JSON object instead of a table")


def resolve_profile(args: argparse.Namespace, name: str) -> HardwareProfile:
    return load_profile(name, extra_paths=getattr(args, "profile_dir", []) or [])


#: exit code of an answered but infeasible request (README "Exit codes")
INFEASIBLE_EXIT = 3


def verdict(reason: str | None) -> dict:
    """The `--json` verdict: {"feasible": true}, or false with the reason."""
    return {"feasible": True} if reason is None else {"feasible": False, "reason": reason}


def exit_code(reason: str | None) -> int:
    """0 when answered, INFEASIBLE_EXIT when answered with `reason` against it."""
    return 0 if reason is None else INFEASIBLE_EXIT


def print_json(obj: Any) -> None:
    """Print `obj` as one JSON object (numpy values converted, NaN/inf as null); a dict
    without a verdict gains `"feasible": true` (every --json answer carries one)."""
    if isinstance(obj, dict) and "feasible" not in obj:
        obj = {"feasible": True, **obj}
    sys.stdout.write(json_text(obj) + "\n")


def quantity_arg(dimension: str, minimum: str | None = None):
    """argparse `type` of a quantity flag (simulator.units.parse_flag_quantity): a
    number with a unit or a bare number in the base unit; `minimum` "positive" or
    "non-negative" bounds it. Bad input exits 2 naming the flag."""
    def parse(text: str) -> float:
        try:
            value = parse_flag_quantity(text, dimension)
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if (minimum == "positive" and not value > 0) or (minimum and value < 0):
            raise argparse.ArgumentTypeError(
                f"expected a {minimum} finite number ({dimension}), got {text!r}")
        return value
    parse.__name__ = dimension  # argparse names the type in its error message
    parse.dimension = dimension  # tests/test_quantity_flags.py finds every quantity flag
    return parse
