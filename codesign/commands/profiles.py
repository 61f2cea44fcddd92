"""`precsim profiles list|show|check`: the hardware profiles and users' own files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from precsim.codesign.commands.common import (add_json_arg, add_profile_dir_arg, print_json,
                                      resolve_profile)
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import list_profiles, load_profile_file
from precsim.simulator.profiles import HardwareProfile, rate_unit
from precsim.simulator.units import format_quantity

# Columns of `profiles list`: a label and the data types it shows, best native first.
_LIST_COLUMNS = (("16-bit float", ("bf16", "fp16")), ("fp8", ("fp8_e4m3", "fp8_e5m2")),
                 ("int8", ("int8",)), ("int4", ("int4",)), ("ternary", ("ternary",)))
# Unit notes for the dimensionless numbers of a profile, shown by `profiles show`.
_PLAIN_UNITS = {"achievable_fraction": "of peak", "convert_ops_per_element": "ops/element"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profiles", help="list, show and check hardware profiles")
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION")
    sub.required = True

    p_list = sub.add_parser("list", help="one line per known profile: dense peaks, memory")
    add_profile_dir_arg(p_list)
    add_json_arg(p_list)
    p_list.set_defaults(func=cmd_list)

    p_show = sub.add_parser("show", help="every field of a profile, with units and sources")
    p_show.add_argument("name", help="profile name or YAML path")
    add_profile_dir_arg(p_show)
    add_json_arg(p_show)
    p_show.set_defaults(func=cmd_show)

    p_check = sub.add_parser("check", help="validate profile YAML files (or folders of them)")
    p_check.add_argument("files", nargs="+", metavar="FILE")
    add_json_arg(p_check)
    p_check.set_defaults(func=cmd_check)


def profile_summary(profile: HardwareProfile) -> dict:
    """One row of `profiles list` in SI units: dense peak per native type, main memory."""
    def peak(dtype: str) -> float | None:
        spec = profile.compute.get(dtype)
        return spec.peak_ops_per_s if spec else None
    main = profile.main_memory
    return {"name": profile.name, "kind": profile.kind, "hypothetical": profile.hypothetical,
            "peak_bf16_flop_per_s": peak("bf16"), "peak_int8_op_per_s": peak("int8"),
            "peak_ops_per_s": {d: s.peak_ops_per_s for d, s in profile.compute.items()},
            "rate_units": {d: rate_unit(d) for d in profile.compute},
            "fallbacks": {d: r.execute_as for d, r in profile.fallbacks.items()},
            "dram_bandwidth_bytes_per_s": main.bandwidth_bytes_per_s,
            "dram_capacity_bytes": main.capacity_bytes, "tdp_w": profile.tdp_w,
            "path": profile.path}


def _peak_cell(profile: HardwareProfile, dtypes: tuple[str, ...]) -> str:
    """Best native dense peak among `dtypes` in FLOP/s or OP/s, else where it runs."""
    native = [d for d in dtypes if d in profile.compute]
    if native:
        best = max(native, key=lambda d: profile.compute[d].peak_ops_per_s)
        return format_quantity(profile.compute[best].peak_ops_per_s, "compute_rate",
                               unit=rate_unit(best))
    rule = profile.fallbacks.get(dtypes[0])
    return f"as {rule.execute_as}" if rule else "-"


def cmd_list(args: argparse.Namespace) -> int:
    profiles = list_profiles(args.profile_dir)
    if args.json:
        print_json({"profiles": [profile_summary(p) for p in profiles]})
        return 0
    rows = []
    for p in profiles:
        row = {"name": p.name, "kind": p.kind + (" (hypothetical)" if p.hypothetical else "")}
        row.update({label: _peak_cell(p, dtypes) for label, dtypes in _LIST_COLUMNS})
        row.update({"DRAM bandwidth": format_quantity(p.main_memory.bandwidth_bytes_per_s,
                                                      "bandwidth"),
                    "DRAM": format_quantity(p.main_memory.capacity_bytes, "bytes"),
                    "TDP": format_quantity(p.tdp_w, "power")})
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))
    print("dense peaks (no 2:4 sparsity); 'as X': no native engine, runs via the fallback "
          "to X; see `precsim profiles show NAME` for sources")
    return 0


def profile_rows(node: object, path: str = "") -> list[tuple[str, object, str | None]]:
    """(field path, value, provenance or None) of every leaf of a raw profile document;
    provenance joins the cited number's source/derived/measured/assumed notes."""
    if isinstance(node, dict) and "value" in node:
        return [(path, node["value"], "; ".join(
            f"{k}: {node[k]}" for k in ("source", "derived", "measured", "assumed")
            if node.get(k)))]
    if isinstance(node, dict):
        return [row for key, val in node.items()
                for row in profile_rows(val, f"{path}.{key}" if path else str(key))]
    if isinstance(node, list):
        return [row for index, item in enumerate(node) for row in profile_rows(
            item, f"{path}[{(item.get('name') if isinstance(item, dict) else None) or index}]")]
    return [(path, node, None)]


def _walk(node: object, path: str, lines: list[str], profile: HardwareProfile) -> None:
    """Flatten the raw document into 'path: value (unit note)' + '[provenance]' lines."""
    for field, value, prov in profile_rows(node, path):
        lines.append(f"{field}: {value}" if prov is None else
                     f"{field}: {value}{_note(field, value, profile)}\n{'':4}[{prov}]")


def _note(path: str, value: object, profile: HardwareProfile) -> str:
    """Unit of a dimensionless number, and the achievable rate it implies."""
    field = path.rsplit(".", 1)[-1]
    if field not in _PLAIN_UNITS:
        return ""
    note = f" {_PLAIN_UNITS[field]}"
    head = path.rsplit(".", 1)[0]
    if field == "achievable_fraction" and head.startswith("compute."):
        dtype = head.split(".", 1)[1]
        rate = profile.compute[dtype].achievable_ops_per_s
        note += f" = {format_quantity(rate, 'compute_rate', unit=rate_unit(dtype))}"
    elif field == "achievable_fraction" and head.startswith("memory["):
        level = profile.memory_level(head[len("memory["):-1])
        note += f" = {format_quantity(level.achievable_bandwidth_bytes_per_s, 'bandwidth')}"
    return note


def cmd_show(args: argparse.Namespace) -> int:
    profile = resolve_profile(args, args.name)
    doc = profile.raw()
    if args.json:
        print_json({"profile": doc, "parsed_si": profile.model_dump(mode="json"),
                    "native": list(profile.compute), "uncovered": profile.uncovered_dtypes(),
                    "path": profile.path})
        return 0
    sources = doc.pop("sources", [])
    lines: list[str] = []
    _walk(doc, "", lines, profile)
    print(f"# {profile.name}  ({profile.path})")
    print("\n".join(lines))
    print("sources:")
    for src in sources:
        print(f"  - {src}")
    print(f"native: {', '.join(profile.compute)}")
    fallbacks = [f"{d} -> {r.execute_as}" for d, r in profile.fallbacks.items()]
    print(f"fallbacks: {', '.join(fallbacks) or 'none'}")
    if profile.uncovered_dtypes():
        print(f"warning: no engine and no fallback for {', '.join(profile.uncovered_dtypes())}")
    return 0


def _check_targets(items: list[str]) -> list[str]:
    """Files named on the command line; a folder stands for its *.yaml / *.yml files."""
    targets: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            targets += found or [item]  # an empty folder is reported as an error
        else:
            targets.append(item)
    return targets


def check_file(file: str) -> dict:
    """One entry of `profiles check --json`: is `file` a valid profile, and a warning."""
    try:
        profile = load_profile_file(file)
    except InputError as exc:
        return {"file": file, "ok": False, "name": None, "error": str(exc), "warning": None}
    uncovered = profile.uncovered_dtypes()
    warning = (f"no engine and no fallback for {', '.join(uncovered)}: formats "
               "using them cannot run on this profile") if uncovered else None
    return {"file": file, "ok": True, "name": profile.name, "error": None, "warning": warning}


def cmd_check(args: argparse.Namespace) -> int:
    results = [check_file(file) for file in _check_targets(args.files)]
    failed = sum(not r["ok"] for r in results)
    if args.json:
        # the verdict of a check: a file that fails is bad input (exit 2), not an answer
        print_json({"feasible": failed == 0, "files": results, "ok": failed == 0,
                    **({"reason": f"{failed} of {len(results)} file(s) failed validation"}
                       if failed else {})})
    else:
        for r in results:
            if r["ok"]:
                print(f"ok    {r['file']} ({r['name']})")
                if r["warning"]:
                    print(f"warning {r['file']}: {r['warning']}", file=sys.stderr)
            else:
                print(f"error {r['error']}", file=sys.stderr)
    return 2 if failed else 0
