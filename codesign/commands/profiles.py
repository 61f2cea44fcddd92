"""`precsim profiles list|show|check`: the hardware profiles and users' own files."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from codesign.commands.common import (add_json_arg, add_profile_dir_arg, print_json,
                                      resolve_profile)
from simulator.errors import InputError
from simulator.profiles import HardwareProfile, list_profiles, load_profile_file
from simulator.units import format_quantity

_DIMENSIONS = {"peak": "compute_rate", "capacity": "bytes", "bandwidth": "bandwidth",
               "energy_per_op": "energy", "access_energy": "energy_per_byte",
               "kernel_launch": "time", "tdp": "power", "static": "power",
               "clock": "frequency", "device_to_device": "bandwidth",
               "host_link": "bandwidth"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profiles", help="list, show and check hardware profiles")
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION")
    sub.required = True

    p_list = sub.add_parser("list", help="one line per known profile")
    add_profile_dir_arg(p_list)
    add_json_arg(p_list)
    p_list.set_defaults(func=cmd_list)

    p_show = sub.add_parser("show", help="every field of a profile, with units and sources")
    p_show.add_argument("name", help="profile name or YAML path")
    add_profile_dir_arg(p_show)
    add_json_arg(p_show)
    p_show.set_defaults(func=cmd_show)

    p_check = sub.add_parser("check", help="validate profile YAML files")
    p_check.add_argument("files", nargs="+", metavar="FILE")
    add_json_arg(p_check)
    p_check.set_defaults(func=cmd_check)


def profile_summary(profile: HardwareProfile) -> dict:
    """One row of `profiles list`: peak bf16 / int8 (native or not), main memory."""
    def peak(dtype: str) -> float | None:
        spec = profile.compute.get(dtype)
        return spec.peak_ops_per_s if spec else None
    main = profile.main_memory
    return {"name": profile.name, "kind": profile.kind, "hypothetical": profile.hypothetical,
            "peak_bf16_flop_per_s": peak("bf16"), "peak_int8_op_per_s": peak("int8"),
            "dram_bandwidth_bytes_per_s": main.bandwidth_bytes_per_s,
            "dram_capacity_bytes": main.capacity_bytes, "path": profile.path}


def cmd_list(args: argparse.Namespace) -> int:
    rows = [profile_summary(p) for p in list_profiles(args.profile_dir)]
    if args.json:
        print_json({"profiles": rows})
        return 0
    table = pd.DataFrame([{
        "name": r["name"], "kind": r["kind"] + (" (hypothetical)" if r["hypothetical"] else ""),
        "bf16 peak": _fmt(r["peak_bf16_flop_per_s"], "compute_rate"),
        "int8 peak": _fmt(r["peak_int8_op_per_s"], "compute_rate"),
        "DRAM bandwidth": _fmt(r["dram_bandwidth_bytes_per_s"], "bandwidth"),
        "DRAM capacity": _fmt(r["dram_capacity_bytes"], "bytes")} for r in rows])
    print(table.to_string(index=False))
    return 0


def _fmt(value: float | None, dimension: str) -> str:
    return "-" if value is None else format_quantity(value, dimension)


def _walk(node: object, path: str, lines: list[str]) -> None:
    """Flatten the raw document into 'path: value   [provenance]' lines."""
    if isinstance(node, dict) and "value" in node:
        prov = "; ".join(f"{k}: {node[k]}" for k in ("source", "derived", "measured",
                                                    "assumed") if node.get(k))
        lines.append(f"{path}: {node['value']}\n{'':4}[{prov}]")
    elif isinstance(node, dict):
        for key, val in node.items():
            _walk(val, f"{path}.{key}" if path else str(key), lines)
    elif isinstance(node, list) and path != "sources":
        for item in node:
            label = item.get("name", "?") if isinstance(item, dict) else "?"
            _walk(item, f"{path}[{label}]", lines)
    else:
        lines.append(f"{path}: {node}")


def cmd_show(args: argparse.Namespace) -> int:
    profile = resolve_profile(args, args.name)
    doc = profile.raw()
    if args.json:
        print_json({"profile": doc, "parsed_si": profile.model_dump(mode="json"),
                    "path": profile.path})
        return 0
    sources = doc.pop("sources", [])
    lines: list[str] = []
    _walk(doc, "", lines)
    print(f"# {profile.name}  ({profile.path})")
    print("\n".join(lines))
    print("sources:")
    for src in sources:
        print(f"  - {src}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    results, failed = [], 0
    for file in args.files:
        try:
            profile = load_profile_file(file)
            results.append({"file": file, "ok": True, "name": profile.name, "error": None})
        except InputError as exc:
            failed += 1
            results.append({"file": file, "ok": False, "name": None, "error": str(exc)})
    if args.json:
        print_json({"files": results, "ok": failed == 0})
    else:
        for r in results:
            if r["ok"]:
                print(f"ok    {r['file']} ({r['name']})")
            else:
                print(f"error {r['error']}", file=sys.stderr)
    return 2 if failed else 0
