"""The eighth round's shortcuts in the streaming kernels and the pass sums (issue 19)
give the values and types of the plain arithmetic: `level_bytes` masking only the levels
an array of homes does not cross everywhere, against `bytes_through` at every level; a
stacked elementwise / embedding call (0-d operands against arrays) against its element
calls; a call's block of several costs against the costs' blocks added."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import elementwise_cost, embedding_cost
from precsim.simulator.levels import level_bytes
from precsim.simulator.pass_sums import SUM_GROUPS, field_block
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.roofline import bytes_through

_FLOATS = st.floats(0.0, 1e12)


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(("a100-sxm-80gb", "host")), data=st.data(),
       shape=st.sampled_from([(4,), (2, 3)]), ints=st.booleans())
def test_level_bytes_of_array_homes_equal_bytes_through_every_level(profile, data, shape,
                                                                     ints):
    hw = as_hardware(profile)
    size = int(np.prod(shape))
    nearest = data.draw(st.integers(0, hw.main))  # every element crosses the levels up to it
    home = np.array(data.draw(st.lists(st.integers(nearest, hw.main), min_size=size,
                                       max_size=size))).reshape(shape)
    values = st.integers(0, 10**9) if ints else _FLOATS
    nbytes = np.array(data.draw(st.lists(values, min_size=size, max_size=size))).reshape(shape)
    other = data.draw(st.sampled_from([1e6, nbytes[..., :1] * 2.0]))  # broadcast bytes too
    tensors = [(home, nbytes), (data.draw(st.integers(0, hw.main)), 5e5), (home, other)]
    got = level_bytes(hw, tensors)
    for j, level in enumerate(got):
        want = bytes_through(hw, home, j, nbytes) + bytes_through(hw, tensors[1][0], j, 5e5) \
            + bytes_through(hw, home, j, other)
        assert type(level) is type(want) and level.dtype == want.dtype
        assert np.array_equal(level, want)


def _fields(cost, i=None) -> list:
    """Every extensive field and level of `cost` (element `i` of each where given)."""
    d = cost.__dict__
    values = [d[f] for f in ("flops", "vector_ops", "convert_ops", "time_s", "energy_j",
                             "compute_time_s", "memory_time_s", "overhead_time_s",
                             "n_kernels")] + list(cost.bytes_moved.values())
    return [v if i is None or np.ndim(v) == 0 else v[i] for v in values]


def _same_elements(stacked, singles):
    for i, single in enumerate(singles):
        for a, b in zip(_fields(stacked, i), _fields(single)):
            assert float(a) == float(b), (i, a, b)


@settings(max_examples=60, deadline=None)
@given(reads=st.lists(st.floats(1.0, 1e10), min_size=3, max_size=3),
       rows=st.lists(st.sampled_from([0.0, 1.0]), min_size=3, max_size=3),
       kernel=st.sampled_from(["silu", "gelu", None]))
def test_elementwise_array_call_equals_its_element_calls(reads, rows, kernel):
    own = load_profile("host").with_overrides({"vector.rate_by_kernel": {
        "silu": {"value": "12 GOP/s", "assumed": "test"}}})
    read = np.array(reads)
    write, ops, half = read / 2.0, read * 3.0, read / 4.0
    stacked = elementwise_cost(own, read, write, ops, half_elements=half, kernel=kernel,
                               kernel_rows=np.array(rows))
    singles = [elementwise_cost(own, read[i], write[i], ops[i], half_elements=half[i],
                                kernel=kernel if rows[i] else None) for i in range(3)]
    _same_elements(stacked, singles)


@settings(max_examples=40, deadline=None)
@given(tokens=st.lists(st.integers(1, 10**5), min_size=2, max_size=2),
       quant=st.sampled_from(["W16A16", "W4A16", "W8A8"]),
       profile=st.sampled_from(["a100-sxm-80gb", "host"]))
def test_embedding_array_call_equals_its_element_calls(tokens, quant, profile):
    width = np.array([4096.0, 4096.0])
    stacked = embedding_cost(profile, np.array(tokens, dtype=float), width, quant)
    singles = [embedding_cost(profile, float(t), 4096.0, quant) for t in tokens]
    _same_elements(stacked, singles)
    one = embedding_cost(profile, tokens[0], 4096, quant)  # numbers stay Python floats
    assert type(one.time_s) is type(singles[0].time_s)


def test_block_of_two_costs_is_their_blocks_added():
    read = np.array([1e6, 3e6, 5e7])
    a = elementwise_cost("a100-sxm-80gb", read, read, read)
    b = elementwise_cost("a100-sxm-80gb", 0.0 * read, read / 2.0, 0.0 * read, write_home=2,
                         n_kernels=0.0)
    levels = tuple(a.bytes_moved)
    for nd, n in ((0, 3), (None, 3)):
        want = field_block((a,), SUM_GROUPS[0], levels, nd, n) \
            + field_block((b,), SUM_GROUPS[0], levels, nd, n)
        assert np.array_equal(field_block((a, b), SUM_GROUPS[0], levels, nd, n), want)
