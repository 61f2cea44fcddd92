"""Request-free op graphs (simulator.op_template, `ops.build_ops`' templates): replaying
the recorded arithmetic on a request's values gives the values and types building the
graph gives; the stacked calls' input columns from templates equal the made ops'."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import precsim
from precsim.simulator import ops
from precsim.simulator.op_eval import _columns, _stack
from precsim.simulator.op_template import (Expr, Inputs, call_inputs, compile_values,
                                           placeholders)

#: Arithmetic of the kinds the op graph does on a request value (operands on either side,
#: Python and numpy numbers, chains left to right, two request values combined).
FORMULAS = [
    lambda b, q: b * q * 4096 * 16 / 8.0,
    lambda b, q: b * q * np.float64(8.25) / 8.0,
    lambda b, q: 2.0 * (b * q) - q / 7.0,
    lambda b, q: np.float64(1.1) * b + np.array(3.0) * q,
    lambda b, q: (b + 0.1) / q * np.float64(0.3),
]

numbers = st.one_of(st.integers(1, 10**6), st.floats(1e-3, 1e9),
                    st.floats(1e-3, 1e9).map(np.float64))


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


@settings(max_examples=60, deadline=None)
@given(b=numbers, q=numbers, formula=st.sampled_from(FORMULAS))
def test_replayed_arithmetic_is_the_direct_arithmetic(b, q, formula):
    """The same operations in the same order: the same double and type, numbers or
    arrays."""
    fill = compile_values([[(0, formula(*placeholders(2)))]])
    assert _same(fill(((b, q),))[0][0], formula(b, q))
    arr = np.array([b, 2.0 * b])
    assert _same(fill(((arr, q),))[0][0], formula(arr, q))


FLOAT_FORMULAS = FORMULAS + [
    lambda b, q: b * q * np.int64(4) / np.array(3.0),
    lambda b, q: (b * q + np.int64(7)) * np.array(5.0) / np.float64(-0.25),
    lambda b, q: b * np.float64(0.0) + q * np.float64(np.inf),
]


@settings(max_examples=80, deadline=None)
@given(b=numbers, q=numbers, formula=st.sampled_from(FLOAT_FORMULAS))
def test_replayed_arithmetic_as_doubles_is_the_direct_arithmetic(b, q, formula):
    """`floats=True` (numpy constants read as Python numbers where every result becomes
    a double): the same double as the direct arithmetic, converted."""
    fill = compile_values([[(0, formula(*placeholders(2)))]], floats=True)
    got = fill(((b, q),))[0][0]
    want = np.array(formula(b, q), dtype=float)
    assert np.array_equal(np.array(got, dtype=float), want, equal_nan=True)
    assert type(compile_values([[(0, formula(*placeholders(2)))]])(((b, q),))[0][0]) \
        is type(formula(b, q))  # without it, the types too


def test_a_placeholder_refuses_all_but_arithmetic():
    """A graph that compared or rounded a request value could not be replayed: refused,
    not silently taken as constant."""
    x, = placeholders(1)
    for use in (lambda: x > 0, lambda: bool(x), lambda: x == 1, lambda: float(x),
                lambda: np.maximum(x, 1.0), lambda: np.asarray(x, dtype=float)):
        with pytest.raises(TypeError):
            use()
    assert isinstance(np.float64(2.0) * x, Expr)  # numpy defers to the placeholder


MODELS = ["llama-2-7b", "qwen2.5-0.5b", "bitnet-b1.58-2b4t", "mistral-7b", "qwen3-30b-a3b"]
REQUESTS = [(1, 512, 512, "prefill", {}), (3, 17, 17, "prefill", {"cache_len": 0.0}),
            (2, 256, 556.0, "prefill", {"cache_len": 300.0}),
            (4.0, 1.0, np.arange(1.0, 65.0), "decode", {}),
            (np.array([[1], [4]]), 1.0, np.array([[5.0, 9.0]]), "decode", {})]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", ["BF16", "W4A16-g128", "W8A8", "BITNET"])
def test_templated_ops_are_the_built_ops(name, fmt):
    """Every op of a templated pass, made when read, equals the op built for the request
    (every field, values and types), for scalar and array requests, flash or not."""
    model, quant = precsim.get_model(name), precsim.parse_quant(fmt)
    for batch, q_len, kv_len, phase, kw in REQUESTS:
        for flash in (True, False):
            made = ops.build_ops(model, quant, batch, q_len, kv_len, phase, flash, **kw)
            cache = kw.get("cache_len", kv_len if phase == "decode" else kv_len - q_len)
            built = ops._graph(model, quant, batch, q_len, kv_len, cache, phase, flash, None)
            assert (made.template is None) == model.is_moe  # MoE rows: not arithmetic
            assert len(made) == len(built)
            assert all(_same(a.__dict__, b.__dict__) for a, b in zip(made, built))


def test_a_template_is_kept_per_object_key_and_holds_no_request():
    """Requests of other sizes share the template of their (model, format, phase,
    flash); its ops hold placeholders where the request enters; ops are made only when
    read."""
    model, quant = precsim.get_model("llama-2-7b"), precsim.parse_quant("W4A16-g128")
    first = ops.build_ops(model, quant, 1, 512, 512, "prefill")
    again = ops.build_ops(model, quant, 8, 100, 100, "prefill")
    assert first.template is again.template
    assert first._specs == [None] * len(first)  # nothing made yet
    gemm = next(s for s in first.template.specs if s.kind == "gemm")
    assert isinstance(gemm.params["m"], Expr) and not isinstance(gemm.params["n"], Expr)
    assert again[2].params["m"] == 800 and first[2].params["m"] == 512
    assert first._specs.count(None) == len(first) - 1
    assert [s.name for s in first[-3:]] == ["final_norm", "lm_head", "sampling"]


@pytest.mark.parametrize("kind", ["gemm", "stream", "embedding"])
def test_template_columns_are_the_made_ops_columns(kind):
    """A stacked call's columns from the templates (constant ones kept, read-only) equal
    the columns of the made ops, scalar and array requests."""
    model, quant = precsim.get_model("bitnet-b1.58-2b4t"), precsim.parse_quant("BITNET")
    for batch, q_len, kv_len, phase, kw in REQUESTS:
        made = ops.build_ops(model, quant, batch, q_len, kv_len, phase, **kw)
        kinds = ("norm", "elementwise") if kind == "stream" else (kind,)
        idx = [i for i, s in enumerate(made.template.specs) if s.kind in kinds]
        nd = max(np.ndim(batch), np.ndim(kv_len)) if kind != "embedding" else np.ndim(batch)
        nd = max(nd, *(np.ndim(v) for i in idx for v in made[i].params.values()
                       if not isinstance(v, str)))
        inputs = Inputs(call_inputs(kind, [made.template.specs[i] for i in idx], quant),
                        [0] * len(idx), lambda c, nd=nd: _stack(c, nd), nd)
        got = inputs.columns((made.values,))
        want = _columns(call_inputs(kind, [made[i] for i in idx], quant), nd)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w)
        kept = [c for c in inputs._constant if c is not None]
        assert kept and not any(c.flags.writeable for c in kept)
