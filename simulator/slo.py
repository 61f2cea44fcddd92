"""The one SLO class (serving latency targets) and the quantity field types of schemas.

`QuantityField(dimension)` is a pydantic field type read by `units.parse_flag_quantity`,
the parser of command-line flags: a number with a unit ("50 ms", "2.5 $/h") or a bare
number in the dimension's base unit, so a study YAML and a flag give the same value.
`SLO` holds the time-per-output-token and time-to-first-token targets (YAML fields
`tpot`, `ttft`, in seconds) used by both `codesign` studies and `des.sizing`.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from precsim.simulator.errors import InputError
from precsim.simulator.schema_errors import format_validation_error
from precsim.simulator.units import UnitError, parse_flag_quantity

#: percentile of the served requests' TTFT and TPOT that an SLO bounds
SLO_PERCENTILE = 99


def _parser(dimension: str):
    def parse(value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse_flag_quantity(value, dimension)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    return parse


def QuantityField(dimension: str, **bounds: float) -> Any:  # noqa: N802 (a type)
    """Annotated float of `dimension` in its base unit; `bounds`: pydantic gt/ge."""
    return Annotated[float, BeforeValidator(_parser(dimension)),
                     Field(allow_inf_nan=False, **bounds)]


Seconds = QuantityField("time", gt=0)


class SLO(BaseModel):
    """Latency targets in seconds at the SLO_PERCENTILE-th percentile; None: no target.

    From code: SLO.of(tpot=0.05, ttft="1 s"), bad values raising InputError."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tpot: Seconds | None = None
    ttft: Seconds | None = None

    @classmethod
    def of(cls, **fields: Any) -> SLO:
        """SLO(**fields), bad values raising InputError (SLO(...) raises pydantic's)."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise InputError(format_validation_error(exc, "SLO")) from None

    def met(self, summary: dict) -> bool:
        """Nothing rejected, something served, and the percentile TTFT and TPOT within
        the targets (a TPOT of NaN, no decoded token, meets any TPOT target)."""
        q = SLO_PERCENTILE
        ttft, tpot = summary[f"ttft_p{q}_s"], summary[f"tpot_p{q}_s"]
        return (summary["rejected"] == 0 and summary["served"] > 0
                and (self.ttft is None or ttft <= self.ttft)
                and (self.tpot is None or math.isnan(tpot) or tpot <= self.tpot))
