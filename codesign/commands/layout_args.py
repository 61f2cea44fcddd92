"""--tp / --pp / --ep / --dp / --devices-per-node / --moe-imbalance, shared by simulate,
serve and size (`simulator.parallel` does the work)."""
from __future__ import annotations

import argparse
import dataclasses

from precsim.codesign.commands.common import MAX_DEGREE, int_arg
from precsim.simulator.errors import InputError
from precsim.simulator.parallel import ParallelLayout


def _degrees(text: str) -> tuple[int, ...]:
    """A comma list of parallel degrees, each a whole number in [1, MAX_DEGREE]."""
    return tuple(int_arg(MAX_DEGREE)(v) for v in text.split(","))


def add_layout_args(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """The layout flags; `lists`: each degree may be a comma list (size searches them)."""
    kind = _degrees if lists else int_arg(MAX_DEGREE)
    many = " (a comma list to search)" if lists else ""
    parser.add_argument("--tp", type=kind, default=(1,) if lists else 1,
                        help=f"tensor-parallel degree: heads, KV heads, MLP split{many}")
    parser.add_argument("--pp", type=kind, default=(1,) if lists else 1,
                        help=f"pipeline-parallel stages{many}")
    parser.add_argument("--ep", type=kind, default=(1,) if lists else 1,
                        help=f"expert-parallel degree (divides --tp and the experts){many}")
    if not lists:
        parser.add_argument("--dp", type=int_arg(MAX_DEGREE), default=1,
                            help="data-parallel replicas")
    parser.add_argument("--devices-per-node", type=int_arg(MAX_DEGREE), default=None, metavar="N",
                        help="devices joined by the device link (default: the profile's)")
    parser.add_argument("--moe-imbalance", type=float, default=1.0, metavar="F",
                        help="MoE: busiest device's routed tokens over the uniform mean "
                             "(default 1: uniform routing)")


def layout_from_args(args: argparse.Namespace) -> ParallelLayout:
    return ParallelLayout(tp=args.tp, pp=args.pp, ep=args.ep, dp=getattr(args, "dp", 1),
                          devices_per_node=args.devices_per_node)


def with_imbalance(model, imbalance: float):
    """The model with --moe-imbalance `imbalance` applied (an error for a dense model)."""
    if imbalance == 1.0:
        return model
    if not model.is_moe:
        raise InputError(f"--moe-imbalance {imbalance}: {model.name} has no experts")
    return dataclasses.replace(model, moe_imbalance=imbalance)
