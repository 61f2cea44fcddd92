"""simulator.collectives: hand-computed ring and hierarchical collective times."""
import math

import numpy as np
import pytest

from precsim.simulator.collectives import Topology, collective_time, exposed_time
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import load_profile

TOPO = Topology("t", link_bytes_per_s=100e9, link_latency_s=1e-6, devices_per_node=8,
                network_bytes_per_s=10e9, network_latency_s=5e-6, compute_overlap=0.5)


def test_ring_all_reduce_inside_a_node():
    # 2 (p-1)/p S / B + 2 (p-1) a with p=4, S=1 GB, B=100 GB/s, a=1 us
    expected = 2 * 3 / 4 * 1e9 / 100e9 + 2 * 3 * 1e-6
    assert math.isclose(float(collective_time(TOPO, "all_reduce", 1e9, 4)), expected)


def test_reduce_scatter_and_all_gather_are_half_an_all_reduce_inside_a_node():
    rs = collective_time(TOPO, "reduce_scatter", 1e9, 8)
    ag = collective_time(TOPO, "all_gather", 1e9, 8)
    ar = collective_time(TOPO, "all_reduce", 1e9, 8)
    assert math.isclose(float(rs + ag), float(ar))


def test_hierarchical_all_reduce_across_nodes():
    # 16 devices = 2 nodes of 8: RS(S, 8) + AR(S/8, 2 nodes on the network) + AG(S, 8)
    s = 8e9
    rs = 7 / 8 * s / 100e9 + 7 * 1e-6
    inter = 2 * 1 / 2 * (s / 8) / 10e9 + 2 * 1 * 5e-6
    expected = rs + inter + rs
    assert math.isclose(float(collective_time(TOPO, "all_reduce", s, 16)), expected)


def test_group_of_one_is_free_and_arrays_broadcast():
    t = collective_time(TOPO, "all_reduce", np.array([1e6, 1e9]), np.array([[1], [8]]))
    assert t.shape == (2, 2)
    assert (t[0] == 0).all() and (t[1] > 0).all()


def test_more_bytes_never_faster():
    sizes = np.geomspace(1e3, 1e11, 30)
    for kind in ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send"):
        for p in (2, 8, 16, 64):
            assert (np.diff(collective_time(TOPO, kind, sizes, p)) > 0).all()


def test_exposed_time_hides_at_most_the_compute():
    assert math.isclose(float(exposed_time(TOPO, 1.0, 10.0)), 0.5)
    assert math.isclose(float(exposed_time(TOPO, 1.0, 0.1)), 0.9)


def test_profile_topology_is_read_with_efficiencies():
    topo = Topology.of(load_profile("h100-sxm"))
    assert topo.devices_per_node == 8
    assert math.isclose(topo.link_bytes_per_s, 450e9 * 0.8)
    assert math.isclose(topo.network_bytes_per_s, 50e9 * 0.9)


def test_group_without_a_link_is_a_clear_error():
    topo = Topology.of(load_profile("rtx-4090"))   # PCIe only, no device link
    with pytest.raises(InputError, match="rtx-4090.*device link.*device_to_device"):
        collective_time(topo, "all_reduce", 1e6, 2)
    single_node = Topology("n", 1e9, 0.0, 8, None, 0.0, 0.0)
    with pytest.raises(InputError, match="spans nodes.*interconnect.network"):
        collective_time(single_node, "all_reduce", 1e6, 16)
