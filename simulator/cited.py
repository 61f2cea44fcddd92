"""Cited quantities: a number with a unit and its provenance (source, derived, measured
or assumed), the building blocks of the profile schema (simulator.profiles)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from precsim.simulator.units import UnitError, check_physical, parse_quantity


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _quantity(dimension: str):
    """A quantity of `dimension` inside PHYSICAL_RANGE (a non-positive one: the field's bound)."""
    def parse(value: Any) -> float:
        try:
            number = parse_quantity(value, dimension)
            return check_physical(number, dimension, value) if number > 0 else number
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    return BeforeValidator(parse)


def _strict_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < 1e308:
        raise ValueError(f"expected a finite plain number, got {type(value).__name__} {value!r}")
    return value


class _Cited(_Strict):
    """A number with its provenance; subclasses fix the dimension of `value`."""

    source: str | None = None
    derived: str | None = None
    measured: str | None = None
    assumed: str | None = None

    @model_validator(mode="after")
    def _has_provenance(self):
        if not any(text and text.strip() for text in
                   (self.source, self.derived, self.measured, self.assumed)):
            raise ValueError("every number needs provenance: add `source:` (datasheet, "
                             "paper), `derived:` (the arithmetic), `measured:` (how) "
                             "or `assumed:` (why)")
        return self

    @property
    def provenance(self) -> str:
        parts = [f"{key}: {val}" for key, val in (("source", self.source),
                 ("derived", self.derived), ("measured", self.measured),
                 ("assumed", self.assumed)) if val]
        return "; ".join(parts)


def _positive(dimension: str):
    """A positive float parsed from a quantity string of `dimension`."""
    return Annotated[float, _quantity(dimension), Field(gt=0)]


# Ordinary module-level classes (not built with type()), so that profiles pickle.
class CitedBytes(_Cited):
    value: _positive("bytes")


class CitedBandwidth(_Cited):
    value: _positive("bandwidth")


class CitedComputeRate(_Cited):
    value: _positive("compute_rate")


class CitedEnergy(_Cited):
    value: _positive("energy")


class CitedEnergyPerByte(_Cited):
    value: _positive("energy_per_byte")


class CitedPower(_Cited):
    value: _positive("power")


class CitedTime(_Cited):
    value: _positive("time")


class CitedFrequency(_Cited):
    value: _positive("frequency")


Bytes, Bandwidth, ComputeRate, Energy = (CitedBytes, CitedBandwidth, CitedComputeRate,
                                         CitedEnergy)
EnergyPerByte, Power, Time, Frequency = (CitedEnergyPerByte, CitedPower, CitedTime,
                                         CitedFrequency)


class Fraction(_Cited):
    """A dimensionless fraction in (0, 1], e.g. achievable share of a peak."""

    value: Annotated[float, BeforeValidator(_strict_number), Field(gt=0, le=1)]


class Share(_Cited):
    """A dimensionless share in [0, 1] (zero allowed), e.g. overlap of two phases."""

    value: Annotated[float, BeforeValidator(_strict_number), Field(ge=0, le=1)]


class Count(_Cited):
    """A positive dimensionless count, e.g. vector ops to dequantise one weight."""

    value: Annotated[float, BeforeValidator(_strict_number), Field(gt=0)]
