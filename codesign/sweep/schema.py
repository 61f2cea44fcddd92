"""The sweep study file: its schema (`SweepStudy`, pydantic v2) and loading.

A sweep study lists axes (profiles, profile overrides, models, quant formats, batch,
prompt_len, gen_len and optionally serving qps); every combination is one
configuration. Errors name the study file and the field; the CLI exits 2.
(Not to be confused with `codesign.study.Study`, the co-design study of a plan.)
"""
from __future__ import annotations

import json
import math
import os
from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt,
                      PrivateAttr, ValidationError, field_validator)

from precsim.simulator.des.workload import MAX_REQUESTS, check_span
from precsim.simulator.errors import InputError
from precsim.simulator.io import MAX_SEED, MAX_SEQUENCES, MAX_TOKENS, load_yaml_mapping
from precsim.simulator.schema_errors import format_validation_error
from precsim.simulator.slo import QuantityField

#: default configurations per task: a chunk takes about 0.1 s (cost model) or 1 s (DES)
COST_CHUNK = 4096
SERVING_CHUNK = 16
#: most configurations one sweep may expand to: each row is about 0.3 kB in memory and a
#: chunk of 4096 takes about 0.1 s, so 1e6 rows are about 0.3 GB and 30 s per core
MAX_SWEEP_CONFIGS = 1_000_000
#: most serving configurations (each a discrete-event run of `requests` requests, ~1 s)
MAX_SERVING_CONFIGS = 10_000
#: override values are written as in a profile YAML: a quantity string, a number, a flag;
#: null keeps the profile's own value (the baseline of a what-if)
OverrideValue = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: list, field: str) -> list:
    seen = [json.dumps(v, sort_keys=True) for v in values]
    dupes = sorted({s for s in seen if seen.count(s) > 1})
    if dupes:
        raise ValueError(f"duplicate {field} values {', '.join(dupes)} would repeat "
                         "configurations")
    return values


class ServingAxis(_Strict):
    """Serving points: a seeded Poisson workload of `requests` requests at each qps.

    Every request has the point's prompt_len and gen_len; the point's batch is the
    scheduler's max batch (continuous batching, `simulator.des.serving.serve`).
    """

    qps: list[QuantityField("rate", gt=0)] = Field(min_length=1)   # "20/s", "1200/min" or 20
    requests: int = Field(default=200, ge=1, le=MAX_REQUESTS)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    chunked_prefill_tokens: PositiveInt | None = None
    on_full: Literal["wait", "reject"] = "wait"

    @field_validator("qps")
    @classmethod
    def _qps_unique(cls, v: list) -> list:
        return _unique(v, "qps")


class SweepStudy(_Strict):
    """A sweep: every combination of the listed axes is one configuration (one row)."""

    name: str = Field(default="sweep", min_length=1)
    profiles: list[str] = Field(min_length=1)
    models: list[str | PositiveFloat] = Field(min_length=1)
    quant: list[str] = Field(min_length=1)
    batch: list[Annotated[int, Field(ge=1, le=MAX_SEQUENCES)]] = Field(min_length=1)
    prompt_len: list[Annotated[int, Field(ge=1, le=MAX_TOKENS)]] = Field(min_length=1)
    gen_len: list[Annotated[int, Field(ge=1, le=MAX_TOKENS)]] = Field(min_length=1)
    overrides: dict[str, list[OverrideValue]] = Field(default_factory=dict)
    serving: ServingAxis | None = None
    chunk_size: PositiveInt | None = None

    _source: str = PrivateAttr(default="study")

    @field_validator("profiles", "models", "quant", "batch", "prompt_len", "gen_len")
    @classmethod
    def _axis_unique(cls, v: list, info) -> list:
        return _unique(v, info.field_name)

    @field_validator("overrides")
    @classmethod
    def _overrides_valid(cls, v: dict) -> dict:
        for path, values in v.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{path!r}: expected a dotted field path like "
                                 "memory.hbm.bandwidth.value")
            if not values:
                raise ValueError(f"{path}: expected a non-empty list of values")
            _unique(values, path)
        return v

    @property
    def configs_per_chunk(self) -> int:
        """`chunk_size`, else 4096 cost-model rows (~0.1 s) or 16 serving points (~1 s)."""
        if self.chunk_size is not None:
            return self.chunk_size
        return SERVING_CHUNK if self.serving else COST_CHUNK

    def axes(self) -> list[tuple[str, list]]:
        """(name, values) of every axis the configurations combine."""
        axes = [(name, getattr(self, name)) for name in
                ("profiles", "models", "quant", "batch", "prompt_len", "gen_len")]
        axes += [(f"overrides.{path}", values) for path, values in self.overrides.items()]
        return axes + ([("serving.qps", self.serving.qps)] if self.serving else [])

    @property
    def n_configs(self) -> int:
        """The product of the axis lengths (exact Python integer: never overflows)."""
        return math.prod(len(values) for _, values in self.axes())


def _known_fields(loc: tuple) -> list[str]:
    """Field names an unknown field at `loc` is matched against."""
    return list(ServingAxis.model_fields if loc[:1] == ("serving",) else SweepStudy.model_fields)


def sweep_study_from_mapping(doc: dict, source: str = "study") -> SweepStudy:
    """Validate a study mapping; errors name `source` and the field path."""
    try:
        study = SweepStudy.model_validate(doc)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source, doc, _known_fields,
                                                 list_expected=True)) from None
    study._source = source
    if study.serving:  # a rate too low for float time is refused here, not in a worker
        check_span(min(study.serving.qps), study.serving.requests, f"{source}: serving.qps")
    limit, why = ((MAX_SERVING_CONFIGS, "each is a serving simulation") if study.serving
                  else (MAX_SWEEP_CONFIGS, "the rows are held in memory"))
    if study.n_configs > limit:
        axes = " x ".join(f"{len(values)} {name}" for name, values in study.axes())
        raise InputError(f"{source}: the study expands to {study.n_configs:,} configurations "
                         f"({axes}); at most {limit:,} per sweep ({why}): split it into "
                         "several studies")
    return study


def load_sweep_study(path: str | os.PathLike) -> SweepStudy:
    """Read and validate a study YAML file (profile paths in it are relative to it)."""
    return sweep_study_from_mapping(load_yaml_mapping(path, what="study"), source=str(path))


def study_source(study: SweepStudy) -> str:
    """The file a study was read from (for error messages and relative paths)."""
    return study._source
