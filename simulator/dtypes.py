"""Element types, defined once: their names, bits per element and family. Profiles
(simulator.profiles), formats (simulator.quant) and the kernels all read these tables."""
from __future__ import annotations

from typing import Literal

#: Data types a profile can list an engine for (element formats of weights/activations).
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1",
          "int8", "int4", "ternary", "binary")
DType = Literal[DTYPES]  # type: ignore[valid-type] - the tuple above, as a Literal
#: Floating-point types: their rates are FLOP/s; the others (integer, ternary, binary) OP/s.
FLOAT_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1")
#: Bits per element: the profile types plus integer widths that no chip runs natively.
DTYPE_BITS: dict[str, float] = {
    "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8_e4m3": 8, "fp8_e5m2": 8,
    "fp4_e2m1": 4, "int8": 8, "int7": 7, "int6": 6, "int5": 5, "int4": 4, "int3": 3,
    "int2": 2, "ternary": 1.58, "binary": 1,
}


def rate_unit(dtype: str) -> str:
    """Display unit of a compute rate: "FLOP/s" for floating-point types, else "OP/s"."""
    return "FLOP/s" if dtype in FLOAT_DTYPES else "OP/s"
