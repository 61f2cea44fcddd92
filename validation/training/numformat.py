"""Number formats for quantized training: integers `intB` and minifloats `eXmY` (torch-free).

Integer B bits: symmetric, values k·s for k in [−2^(B−1), 2^(B−1)−1] (the paper's clamp);
absmax scaling maps the largest magnitude to 2^(B−1)−1.
Float eXmY (1 sign, X exponent, Y mantissa bits, bias 2^(X−1)−1, subnormals): all
exponent codes are finite (as the OCP MX FP6/FP4 element types), except the two FP8
types which follow the OCP FP8 spec: E4M3 tops out at 448 (S.1111.111 is NaN) and
E5M2 at 57344 (exponent 11111 is inf/NaN).
`none` is full precision (fp32 on the CPU), recorded as 16 bits like the paper's baseline.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from precsim.simulator.errors import InputError

FULL_PRECISION_BITS = 16
MIN_INT_BITS, MAX_INT_BITS = 2, 16
_ALIASES = {"fp8": "e4m3", "fp6": "e3m2", "fp4": "e2m1"}
_FP8_MAX = {(4, 3): 448.0, (5, 2): 57344.0}


@dataclass(frozen=True)
class NumberFormat:
    """A training number format: kind 'int' | 'fp' | 'none', total bits, float fields."""

    kind: str
    bits: int
    exp_bits: int = 0
    man_bits: int = 0

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "int":
            return f"int{self.bits}"
        return f"e{self.exp_bits}m{self.man_bits}"

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def min_normal_exponent(self) -> int:
        return 1 - self.bias

    @cached_property
    def max_value(self) -> float:
        """Largest finite magnitude: 2^(B−1)−1 for intB, the top float code for eXmY."""
        if self.kind == "int":
            return float(2 ** (self.bits - 1) - 1)
        if self.kind == "fp":
            if (self.exp_bits, self.man_bits) in _FP8_MAX:
                return _FP8_MAX[(self.exp_bits, self.man_bits)]
            top_exponent = 2 ** self.exp_bits - 1 - self.bias
            return (2.0 - 2.0 ** -self.man_bits) * 2.0 ** top_exponent
        return float("inf")

    def grid(self) -> np.ndarray:
        """Every representable value (sorted, both signs) of the unscaled format."""
        if self.kind == "int":
            return np.arange(-(2 ** (self.bits - 1)), 2 ** (self.bits - 1), dtype=np.float64)
        if self.kind != "fp":
            raise ValueError("full precision has no finite grid")
        step = 2.0 ** (self.min_normal_exponent - self.man_bits)
        sub = np.arange(2 ** self.man_bits) * step
        exps = np.arange(self.min_normal_exponent, 2 ** self.exp_bits - self.bias)
        normal = ((1.0 + np.arange(2 ** self.man_bits) / 2 ** self.man_bits)[None, :]
                  * 2.0 ** exps[:, None]).ravel()
        pos = np.concatenate([sub, normal])
        pos = pos[pos <= self.max_value]
        return np.unique(np.concatenate([-pos, pos]))


FULL = NumberFormat("none", FULL_PRECISION_BITS)


def parse_format(text: str | int, what: str = "format") -> NumberFormat:
    """'none'/'16' → full precision; 'B' or 'intB' → integer; 'eXmY', 'fp8'/'fp6'/'fp4' → float."""
    raw = str(text).strip().lower()
    raw = _ALIASES.get(raw, raw)
    if raw in ("none", "full", "fp32", str(FULL_PRECISION_BITS)):
        return FULL
    m = re.fullmatch(r"(?:int)?(\d+)", raw)
    if m:
        bits = int(m.group(1))
        if not MIN_INT_BITS <= bits < FULL_PRECISION_BITS:
            raise InputError(f"{what} {text!r}: integer bits must be {MIN_INT_BITS}.."
                             f"{FULL_PRECISION_BITS - 1} (16 means full precision)")
        return NumberFormat("int", bits)
    m = re.fullmatch(r"(?:fp\d+-)?e(\d+)m(\d+)", raw)
    if m:
        e, mant = int(m.group(1)), int(m.group(2))
        if e < 1 or 1 + e + mant > 12:
            raise InputError(f"{what} {text!r}: float eXmY needs X >= 1 and 1+X+Y <= 12 bits")
        return NumberFormat("fp", 1 + e + mant, e, mant)
    raise InputError(f"{what} {text!r}: expected 'none' (or 16), an integer width like "
                     "'4' / 'int4', or a float 'eXmY' (e.g. e4m3, e2m1; aliases fp8, fp6, fp4)")
