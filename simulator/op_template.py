"""Request-free op graphs: a pass's ops built once per (model, format, phase, ...) with the
request's values (batch, lengths) as `Expr` placeholders (simulator.ops `build_ops`).

An `Expr` records the arithmetic the graph does on a request value (`m * (q + 2 kv) * sb
/ 8`: the same operations, operands and order, as a tree); `compile_values` turns a
structure of such values and constants into one Python function of the request's values
that redoes exactly that arithmetic. A request then gets its op parameters (or a stacked
call's input table, simulator.op_eval) from one call instead of building the graph again,
with the same doubles and types as building it (the same operations on the same values).
Nothing here is keyed on request values: the templates hold placeholders only.
"""
from __future__ import annotations

import math

import numpy as np

from precsim.simulator.kernels import norm_terms
from precsim.simulator.quant import group_format, stream_bits

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/"}


class Expr:
    """A request value (`Expr(None, i)`: the i-th of a pass's request values) or `a op b`
    with op one of + - * / and a, b an Expr or a constant. Anything else on it
    (comparison, truth value, a numpy function) is refused, so a graph that does more
    than arithmetic on the request cannot be templated silently."""

    __slots__ = ("op", "a", "b")
    __array_ufunc__ = None  # numpy operands defer to the reflected methods below
    __hash__ = None

    def __init__(self, op, a, b=None):
        self.op, self.a, self.b = op, a, b

    def _refuse(self, *_):
        raise TypeError("a request placeholder supports + - * / only (op_template)")

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __float__ = _refuse
    __int__ = __index__ = __array__ = _refuse


def _binary(op: str):
    def forward(self, other):
        return Expr(op, self, other)

    def reflected(self, other):
        return Expr(op, other, self)
    return forward, reflected


for _name in _SYMBOLS:
    _f, _r = _binary(_name)
    setattr(Expr, f"__{_name}__", _f)
    setattr(Expr, f"__r{_name}__", _r)


def placeholders(n: int) -> tuple:
    """The `n` request values of a pass as placeholders."""
    return tuple(Expr(None, i) for i in range(n))


class _Source:
    """Python source of a fill function (`compile_values`): request values read from `v`
    once (`v<pass>_<i>`), constants as literals or `c[j]`, and with `floats` each
    arithmetic node computed once (`t<j>`, the same operations on the same values)."""

    def __init__(self, floats: bool):
        self.floats, self.consts, self.used, self.temps = floats, [], set(), {}

    def of(self, value, owner: int) -> str:
        """Source computing `value` (a placeholder, parenthesised as recorded: the same
        order; a dict or tuple of values; else a constant) from the request values of
        pass `owner` and the constants: a finite Python float or int as its literal
        (`repr` reads back as the same number and type), else `c[j]`. `floats`: the
        results are converted to doubles, so a nonzero numpy float64 or int64 constant
        (0-d) enters as the Python number of its value: + - * / on the same doubles (and
        on integers below 2**53) give the same doubles, without numpy's per-operation
        cost."""
        if isinstance(value, Expr):
            if value.op is None:
                self.used.add((owner, value.a))
                return f"v{owner}_{value.a}"
            expr = f"({self.of(value.a, owner)} {_SYMBOLS[value.op]} {self.of(value.b, owner)})"
            if not self.floats:
                return expr
            return self.temps.setdefault(expr, f"t{len(self.temps)}")
        if type(value) is dict:
            return "{" + ", ".join(f"{k!r}: {self.of(x, owner)}"
                                   for k, x in value.items()) + "}"
        if type(value) is tuple:
            return "(" + "".join(self.of(x, owner) + ", " for x in value) + ")"
        if (self.floats and isinstance(value, (np.generic, np.ndarray)) and value.ndim == 0
                and value.dtype in _AS_NUMBER and value != 0):
            value = value.item()  # exact below 2**53; nonzero: a divisor cannot raise
        if type(value) in (float, int) and math.isfinite(value) and abs(value) < 2.0 ** 53:
            return f"({value!r})"
        self.consts.append(value)
        return f"c[{len(self.consts) - 1}]"


#: numpy constants `_Source` reads as Python numbers where the results become doubles.
_AS_NUMBER = (np.dtype(float), np.dtype(np.int64))


def compile_values(groups: list, floats: bool = False):
    """A function of `v` (one tuple of request values per pass) returning `groups` (lists
    of (pass, value) pairs; a value holds that pass's placeholders) as lists of the values
    with every placeholder computed: one call per request. `floats`: the caller converts
    every result to a double (`_Source`)."""
    src = _Source(floats)
    body = ", ".join("[" + ", ".join(src.of(x, o) for o, x in group) + "]"
                     for group in groups)
    lines = [f"v{o}_{i} = v[{o}][{i}]" for o, i in sorted(src.used)]
    lines += [f"{name} = {expr}" for expr, name in src.temps.items()]  # operands first
    scope = {"c": src.consts}
    exec("def fill(v, c=c):\n" + "".join(f"    {line}\n" for line in lines)  # noqa: S102
         + f"    return [{body}]\n", scope)  # our own source
    return scope["fill"]


def call_inputs(kind: str, group: list, quant) -> list:
    """The numeric inputs of a stacked call of `kind` over the OpSpecs `group` (made, or
    templates), one tuple per op: the columns its adapter in simulator.op_eval takes
    ("stream": norms, as `kernels.norm_terms` gives them, and element-wise ops in one
    call, their 16-bit elements and 1.0 for a norm's row)."""
    if kind == "gemm":
        default_bits = stream_bits(group_format(quant, group[0].group))
        return [(p["m"], p["n"], p["k"], default_bits if p.get("out_bits") is None
                 else p["out_bits"], s.count) for s in group for p in (s.params,)]
    if kind == "stream":  # norms and element-wise ops: bytes, ops, 16-bit elements
        return [(*norm_terms(p["rows"], p["width"], p["in_bits"], p["out_bits"],
                             p["kind_norm"], p.get("fused_residual", True),
                             p["quantize_out"]), 0.0, s.count, 1.0) if s.kind == "norm"
                else (p["read_bytes"], p["write_bytes"], p["vector_ops"], 0.0,
                      s.kv_write_bytes, s.count, 0.0) for s in group for p in (s.params,)]
    return [(s.params["tokens"], s.params["d_model"], s.count) for s in group]


class Inputs:
    """The input columns of a stacked formula call from its ops' templates (`rows`: one
    tuple per op, from pass `owners[i]`): a column without placeholders is stacked once
    (`stack`, read-only), the others per request (`columns`: one compiled call, each
    column converted as `stack` converts it; where the inputs are scalars, `nd` 0, all
    of them by one `np.array`)."""

    def __init__(self, rows: list, owners: list, stack, nd: int):
        self._stack, self._nd = stack, nd
        columns = list(zip(*rows))
        self._constant = [None if any(isinstance(x, Expr) for x in column)
                          else _read_only(stack(column)) for column in columns]
        self._slots = [j for j, kept in enumerate(self._constant) if kept is None]
        self._fill = compile_values([list(zip(owners, column)) for column, kept
                                     in zip(columns, self._constant) if kept is None],
                                    floats=nd == 0)

    def columns(self, values: tuple) -> list:
        """The call's columns for the passes' request `values`."""
        filled = self._fill(values)
        out = self._constant.copy()  # the filled columns into their slots
        for j, column in zip(self._slots, np.array(filled, dtype=float) if self._nd == 0
                             else map(self._stack, filled)):
            out[j] = column
        return out


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # kept for every request: never edited in place
    return array
