"""roofline_cost's memory time over levels sharing a bytes object (`_memory_time`) and
its streaming zeros: the same doubles (signs of zero and NaN included) as the maximum
over every level, b_j / bw_j one by one."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.hardware import as_hardware
from precsim.simulator.levels import level_bytes
from precsim.simulator.roofline import roofline_cost

_VALUES = st.one_of(st.floats(-1e12, 1e12), st.sampled_from([0.0, -0.0, np.inf, -np.inf,
                                                             np.nan]))
_PLAN = {"ops_per_s": 1.0, "energy_per_op_j": 0.0, "exec_dtype": "vector"}


def _bits(x) -> list:
    return np.asarray(x, dtype=np.float64).view(np.int64).ravel().tolist()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, NaN: kept as NaN
@settings(max_examples=80, deadline=None)
@given(a=st.lists(_VALUES, min_size=1, max_size=5), share=st.sampled_from(
    [(0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 2)]),
       profile=st.sampled_from(["a100-sxm-80gb", "host"]))
def test_memory_time_over_shared_levels_is_every_levels_maximum(a, share, profile):
    """Levels given the same bytes object are priced once, at their slowest bandwidth:
    the maximum of 0 and every b_j / bw_j taken level by level, bit for bit."""
    hw = as_hardware(profile)
    arrays = [np.array(a), np.array(a[::-1]) * 0.5, np.array(a) + 1.0]
    levels = [arrays[i] for i in share][:hw.n_levels]
    levels += [arrays[2]] * (hw.n_levels - len(levels))
    got = roofline_cost(hw, _PLAN, None, np.ones(len(a)), None, None, None, levels, 1.0)
    want = np.array(0.0)
    for b, bw in zip(levels, hw.bandwidth_bytes_per_s):
        want = np.maximum(want, b / bw)
    assert _bits(got.memory_time_s) == _bits(want)
    assert type(got.flops) is np.ndarray and _bits(got.flops) == _bits(0.0 * np.ones(len(a)))


@settings(max_examples=40, deadline=None)
@given(reads=st.lists(st.floats(1.0, 1e10), min_size=1, max_size=6),
       homes=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_level_bytes_of_number_homes_is_every_levels_sum(reads, homes):
    """Int homes: each level the sum of the tensors crossing it, in order (levels crossed
    by the same tensors sharing one sum)."""
    hw = as_hardware("a100-sxm-80gb")
    r, w = np.array(reads), np.array(reads[::-1]) * 3.0
    got = level_bytes(hw, ((homes[0], r), (homes[1], w)))
    for j, level in enumerate(got):
        terms = [b for h, b in ((homes[0], r), (homes[1], w)) if h >= j]
        want = terms[0] + terms[1] if len(terms) == 2 else terms[0] if terms else 0.0
        assert _bits(level) == _bits(want) and type(level) is type(want)


@settings(max_examples=30, deadline=None)
@given(tokens=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=4),
       profile=st.sampled_from(["a100-sxm-80gb", "host", "h100-sxm"]),
       quant=st.sampled_from(["W16A16", "W8A8", "W4A16", "W8A16"]))
def test_embedding_of_an_array_is_its_element_calls(tokens, profile, quant):
    """An array of tokens (a plain gather priced as a streaming kernel) gives, element
    by element, the doubles of the scalar calls (priced with their zero matrix terms)."""
    from precsim.simulator.kernels import embedding_cost
    from precsim.simulator.roofline import EXTENSIVE_FIELDS
    grid = embedding_cost.unchecked(profile, np.array(tokens), 4096.0, quant)
    for i, t in enumerate(tokens):
        one = embedding_cost.unchecked(profile, t, 4096.0, quant)
        for f in EXTENSIVE_FIELDS:
            assert _bits(np.broadcast_to(getattr(grid, f), (len(tokens),))[i]) \
                == _bits(getattr(one, f)), f
        for k, v in one.bytes_moved.items():
            assert _bits(np.broadcast_to(grid.bytes_moved[k], (len(tokens),))[i]) == _bits(v)


@given(values=st.lists(_VALUES, max_size=70), shape2=st.booleans())
def test_any_positive_is_numpys(values, shape2):
    """`op_streams._any_positive` (a list for small arrays) is (values > 0).any()."""
    from precsim.simulator.op_streams import _any_positive
    a = np.array(values, dtype=float)
    if shape2 and a.size % 2 == 0:
        a = a.reshape(2, -1)
    assert _any_positive(a) == bool((a > 0).any())


def test_elementwise_widening_by_one_adds_the_elements():
    """A widening factor of 1 (the a100's fp32 vector unit, 1 op per 16-bit element) adds
    the 16-bit elements themselves: the doubles of v + 1.0 x half."""
    from precsim.simulator.kernels import elementwise_cost, widen_ops
    hw = as_hardware("a100-sxm-80gb")
    v, half = np.array([3.0, 1e9, 0.1]), np.array([2.0, 7e8, 1e-3])
    got = elementwise_cost(hw, v, v, v, half_elements=half)
    want = elementwise_cost(hw, v, v, v + widen_ops(hw, half))
    assert _bits(got.vector_ops) == _bits(v + 1.0 * half) == _bits(want.vector_ops)
