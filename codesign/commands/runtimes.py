"""`precsim runtimes list|show`: the runtime profiles (software stacks, runtimes/*.yaml)."""
from __future__ import annotations

import argparse

from precsim.codesign.commands.common import add_json_arg, print_json
from precsim.simulator.profiles import Time
from precsim.simulator.runtime import (BLOCK_KERNELS, RuntimeProfile, list_runtimes,
                                       load_runtime, runtime_summary)
from precsim.simulator.units import format_quantity


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runtimes", help="list and show runtime profiles (software stacks)")
    sub = parser.add_subparsers(dest="runtimes_command", metavar="ACTION")
    sub.required = True
    p_list = sub.add_parser("list", help="one line per shipped runtime")
    add_json_arg(p_list)
    p_list.set_defaults(func=cmd_list)
    p_show = sub.add_parser("show", help="every field of a runtime, with its sources")
    p_show.add_argument("name", help="runtime name or YAML path")
    add_json_arg(p_show)
    p_show.set_defaults(func=cmd_show)


def _line(rt: RuntimeProfile) -> dict:
    launch = ("graphs" if rt.launch and rt.launch.graphs else "per-kernel") + (
        f" {rt.launch.per_kernel.value * 1e6:g} us" if rt.launch and rt.launch.per_kernel
        else " (profile's)")
    kpl = rt.fusion.kernels_per_layer if rt.fusion else None
    return {"name": rt.name, "applies_to": ",".join(rt.applies_to), "launch": launch,
            "kernels/layer": f"{kpl.value:g}" if kpl else f"{BLOCK_KERNELS:g} (PrecSim's)",
            "refuses": ",".join(d for d, k in rt.kernels.items() if k.kernel == "unsupported")
            or "-"}


def _value(item) -> str:
    """A cited number as written: times with their unit, counts plain."""
    return (format_quantity(item.value, "time") if isinstance(item, Time)
            else f"{item.value:g}")


def _preference(rt: RuntimeProfile) -> str:
    """' (prefers the gpu)' or ' (prefers the gpu; the cpu on snapdragon-8-gen3)'."""
    pref = rt.preferred_unit
    if not isinstance(pref, dict):
        return f" (prefers the {pref})" if pref else ""
    parts = ([f"the {pref['default']}"] if "default" in pref else []) + [
        f"the {unit} on {name}" for name, unit in pref.items() if name != "default"]
    return f" (prefers {'; '.join(parts)})"


def cmd_list(args: argparse.Namespace) -> int:
    runtimes = list_runtimes()
    if args.json:
        print_json([runtime_summary(r) for r in runtimes])
        return 0
    rows = [_line(r) for r in runtimes]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    print("  ".join(f"{k:<{w}}" for k, w in widths.items()))
    for row in rows:
        print("  ".join(f"{row[k]:<{w}}" for k, w in widths.items()))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    rt = load_runtime(args.name)
    summary = runtime_summary(rt)
    if args.json:
        print_json(summary)
        return 0
    print(f"{rt.name}: {rt.description}")
    print(f"  runs on: {', '.join(rt.applies_to)}" + _preference(rt))
    for dtype, k in rt.kernels.items():
        print(f"  kernels.{dtype}: {k.kernel}  [{k.provenance}]")
        if k.stream_efficiency:
            print(f"  kernels.{dtype}.stream_efficiency: {k.stream_efficiency.value:g}  "
                  f"[{k.stream_efficiency.provenance}]")
    for block in ("fusion", "launch", "efficiency"):
        for key, val in (summary.get(block) or {}).items():
            item = getattr(getattr(rt, block), key)
            # a cited number, or a mapping of them per type (efficiency.expert_stream)
            for sub, it in (item.items() if isinstance(item, dict) else [("", item)]):
                shown = (f"{_value(it)}  [{it.provenance}]" if isinstance(val, dict)
                         else val)
                print(f"  {block}.{key}{'.' + sub if sub else ''}: {shown}")
    if rt.memory_reserve:
        print(f"  memory_reserve: {rt.memory_reserve.value:g}  "
              f"[{rt.memory_reserve.provenance}]")
    for note in rt.notes:
        print(f"  note: {note}")
    if rt.sources:
        print("sources:\n" + "\n".join(f"  {s}" for s in rt.sources))
    return 0
