"""Argument helpers shared by the `precsim` command groups."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from precsim.simulator.profile_loader import PROFILE_PATH_ENV, load_profile
from precsim.simulator.profiles import HardwareProfile


def add_profile_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile-dir", action="append", default=[], metavar="PATH",
        help=f"extra profile file or folder (repeatable); also ${PROFILE_PATH_ENV}")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one machine-readable JSON object instead of a table")


def resolve_profile(args: argparse.Namespace, name: str) -> HardwareProfile:
    return load_profile(name, extra_paths=getattr(args, "profile_dir", []) or [])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: Any) -> None:
    """Print `obj` as one JSON object (numpy values converted, NaN/inf as null)."""
    json.dump(_jsonable(obj), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
