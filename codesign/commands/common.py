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


def add_runtime_arg(parser: argparse.ArgumentParser) -> None:
    """--runtime NAME|PATH: the software stack the hardware runs under (simulator.runtime;
    `precsim runtimes list`)."""
    parser.add_argument(
        "--runtime", default=None, metavar="NAME|PATH",
        help="runtime profile: a shipped name (reference, torch-compile, llama-cpp, "
             "tensorrt-llm, executorch, vllm; `precsim runtimes list`) or a runtime YAML "
             "path (default reference: the hardware profile as it is)")


def runtime_profile(args: argparse.Namespace, profile: HardwareProfile, quants=()
                    ) -> tuple[HardwareProfile, str, list[str]]:
    """(profile as --runtime runs it, the runtime's name, notes to report) for a command
    that prices `quants` (each checked: a format the runtime refuses is exit 2) with
    fused kernels: a runtime's dequantise-then-GEMM or unfused attention is stated as
    not modelled there (only `simulate` applies them)."""
    from precsim.simulator.runtime import apply_runtime
    runs = [apply_runtime(getattr(args, "runtime", None), profile, q) for q in quants] or \
        [apply_runtime(getattr(args, "runtime", None), profile)]
    name = runs[0].runtime.name
    notes = list(dict.fromkeys(n for r in runs for n in r.approximations))
    if not all(r.fused_dequant for r in runs):
        notes.append(f"runtime {name}: dequantise-then-GEMM not modelled by this command "
                     "(weights priced as dequantised inside the GEMM; see simulate)")
    if not all(r.flash for r in runs):
        notes.append(f"runtime {name}: unfused attention not modelled by this command "
                     "(priced as one fused kernel; see simulate)")
    return runs[0].profile, name, notes


def resolve_profile(args: argparse.Namespace, name: str) -> HardwareProfile:
    return load_profile(name, extra_paths=getattr(args, "profile_dir", []) or [])


def print_json(obj: Any) -> None:
    """Print `obj` as one JSON object (numpy values converted, NaN/inf as null)."""
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
    return parse
