"""Argument helpers shared by the `precsim` command groups."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from precsim.simulator.compute_units import place_units
from precsim.simulator.io import (MAX_DEGREE, MAX_SEED, MAX_SEQUENCES,  # noqa: F401 - flag bounds
                                  MAX_TOKENS, json_text)
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


def add_unit_args(parser: argparse.ArgumentParser) -> None:
    """--unit / --prefill-unit / --decode-unit: the compute unit of a SoC profile
    (simulator.compute_units; default: the profile's default_unit for the format)."""
    parser.add_argument("--unit", metavar="UNIT",
                        help="SoC compute unit running both phases (e.g. cpu, gpu, npu; "
                             "default: the profile's default for the format)")
    parser.add_argument("--prefill-unit", metavar="UNIT",
                        help="SoC compute unit running prefill (default: --unit)")
    parser.add_argument("--decode-unit", metavar="UNIT",
                        help="SoC compute unit running decode (default: --unit); the KV "
                             "cache stays in shared DRAM (zero-copy handoff)")


def units_from_args(args: argparse.Namespace, profile, runtime=None):
    """The profile with the units the flags request and the `runtime`'s preferred unit
    (simulator.compute_units; a SoC profile only)."""
    preference = None
    if profile.compute_units and runtime is not None:
        from precsim.simulator.runtime import load_runtime
        preference = load_runtime(runtime).unit_preference(profile.name)
    return place_units(profile, args.unit, args.prefill_unit, args.decode_unit, preference)


MAX_ITERATIONS = 1_000_000  # --max-iter, --top, --draws
#: --bootstrap: each resample is a whole refit (~0.1 s for a hundred runs), so 10,000 is
#: already about 20 minutes
MAX_BOOTSTRAP = 10_000
MAX_RETRIES = 100  # sweep --retries: extra attempts of a failing chunk


def int_arg(maximum: int, minimum: int = 1):
    """argparse `type` of a whole-number flag in [minimum, maximum]: anything else
    (a fraction, 1e3, a negative where none is meant, a 30-digit number) exits 2 with
    the bound in the message instead of overflowing later."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text[:40]!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {minimum} to {maximum:,}, got "
                f"{text.strip()[:40]}")
        return value
    parse.__name__ = "whole number"
    return parse
