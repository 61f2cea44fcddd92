"""Collective communication time: the one model that training and multi-device serving use.

The standard alpha-beta model of ring collectives (Thakur, Rabenseifner & Gropp,
"Optimization of Collective Communication Operations in MPICH", IJHPCA 2005; the
bus-bandwidth convention of NVIDIA's nccl-tests, doc/PERFORMANCE.md). For a group of
p devices, a buffer of S bytes (the full tensor, before any split), link bandwidth B
(per direction, times the profile's achievable efficiency) and per-step latency a:

- all_reduce:      2 (p-1)/p * S / B + 2 (p-1) a
- reduce_scatter:    (p-1)/p * S / B +   (p-1) a
- all_gather:        (p-1)/p * S / B +   (p-1) a
- all_to_all:        (p-1)/p * S / B +   (p-1) a   (S: the bytes one device holds)
- send (point to point): S / B + a

A group that spans nodes (p > devices_per_node) runs hierarchically, as NCCL does on
multi-rail clusters: reduce-scatter inside each node on the device link, the collective
on S / p_local across the p_nodes nodes on the network (every device has its own NIC,
so the p_local rails run in parallel), then all-gather inside the node. All-to-all
across nodes sends the (p - p_local)/p share of S over the network and the rest on the
device link, in parallel; the slower side binds. A group of one costs nothing.

Every function is a pure numpy function: sizes, group sizes and byte counts broadcast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.profiles import HardwareProfile

KINDS = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send")

#: (bandwidth term factor f(p), latency steps g(p)) of each ring collective.
_RING = {
    "all_reduce": (lambda p: 2.0 * (p - 1.0) / p, lambda p: 2.0 * (p - 1.0)),
    "reduce_scatter": (lambda p: (p - 1.0) / p, lambda p: p - 1.0),
    "all_gather": (lambda p: (p - 1.0) / p, lambda p: p - 1.0),
    "all_to_all": (lambda p: (p - 1.0) / p, lambda p: p - 1.0),
    "send": (lambda p: np.ones_like(p), lambda p: np.ones_like(p)),
}


@dataclass(frozen=True)
class Topology:
    """The links of one profile, as SI floats (None where the profile has no such link)."""

    profile: str
    link_bytes_per_s: float | None      # intra-node, per direction, times efficiency
    link_latency_s: float
    devices_per_node: int
    network_bytes_per_s: float | None   # inter-node, per device, times efficiency
    network_latency_s: float
    compute_overlap: float

    @classmethod
    def of(cls, profile: HardwareProfile) -> Topology:
        ic = profile.interconnect
        if ic is None:
            return cls(profile.name, None, 0.0, 1, None, 0.0, 0.0)

        def val(field, default=None):
            item = getattr(ic, field)
            return item.value if item is not None else default

        link = val("device_to_device")
        net = val("network")
        return cls(
            profile=profile.name,
            link_bytes_per_s=None if link is None else link * val("link_efficiency", 1.0),
            link_latency_s=val("device_link_latency", 0.0),
            devices_per_node=int(val("devices_per_node", 1 if link is None else 8)),
            network_bytes_per_s=None if net is None else net * val("network_efficiency", 1.0),
            network_latency_s=val("network_latency", 0.0),
            compute_overlap=val("compute_overlap", 0.0))

    def check_group(self, devices, what: str = "parallel group") -> None:
        """An InputError naming the profile when a group of `devices` has no links."""
        p = int(np.max(devices))
        if p <= 1:
            return
        if self.link_bytes_per_s is None:
            raise InputError(
                f"profile {self.profile}: a {what} of {p} devices needs a device link, "
                "and the profile has none (interconnect.device_to_device); valid: 1")
        if p > self.devices_per_node and self.network_bytes_per_s is None:
            raise InputError(
                f"profile {self.profile}: a {what} of {p} devices spans nodes of "
                f"{self.devices_per_node}, and the profile has no inter-node network "
                f"(interconnect.network); valid: 1 to {self.devices_per_node}")


def _ring(kind: str, nbytes, p, bandwidth, latency):
    factor, steps = _RING[kind]
    return factor(p) * nbytes / bandwidth + steps(p) * latency


def collective_time(topology: Topology, kind: str, nbytes, devices):
    """Seconds for one collective of `kind` over `devices` (see the module docstring)."""
    if kind not in _RING:
        raise InputError(f"unknown collective {kind!r} (known: {', '.join(KINDS)})")
    topology.check_group(devices)
    nbytes = np.asarray(nbytes, dtype=float)
    p = np.maximum(np.asarray(devices, dtype=float), 1.0)
    local = np.minimum(p, float(topology.devices_per_node))
    nodes = np.ceil(p / local)
    link = topology.link_bytes_per_s or np.inf
    net = topology.network_bytes_per_s or np.inf
    a_l, a_n = topology.link_latency_s, topology.network_latency_s
    inside = _ring(kind, nbytes, local, link, a_l)
    if kind == "all_to_all":
        across = (p - local) / p * nbytes / net + (nodes - 1.0) * a_n
        spanning = np.maximum(_ring(kind, nbytes * local / p, local, link, a_l), across)
    elif kind == "send":
        spanning = nbytes / net + a_n
    else:
        shard = nbytes / local
        spanning = (_ring("reduce_scatter", nbytes, local, link, a_l)
                    + _ring(kind, shard, nodes, net, a_n)
                    + _ring("all_gather", nbytes, local, link, a_l))
        if kind != "all_reduce":   # RS / AG: one intra-node pass, not two
            spanning = spanning - _ring("reduce_scatter", nbytes, local, link, a_l)
    out = np.where(p > local, spanning, inside)
    return np.where(p <= 1.0, 0.0, out)


def exposed_time(topology: Topology, comm_s, compute_s):
    """Communication left on the critical path after `compute_overlap` of it hides
    under concurrent compute (never more than the compute available to hide it)."""
    comm_s = np.asarray(comm_s, dtype=float)
    hidden = np.minimum(topology.compute_overlap * comm_s, np.asarray(compute_s, float))
    return comm_s - hidden
