"""Co-design study files: the YAML schema (pydantic v2) and its resolution.

A study names what a plan needs: a target loss (absolute, or an allowed increase over
a 16-bit baseline model), a training profile and/or deployment profiles with their
workloads and cost weights, the objective, and the search space (N and D grids,
training formats as weight/activation/KV bits, serving formats as QuantFormat presets).
The built-in study is `codesign/default_study.yaml`; a user's study has the same fields.

Every error names the study file and the field (`deployments[1].batch: ...`); the CLI
turns it into exit code 2.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      model_validator)

from precsim.codesign.problem import CostWeights, PlanProblem, baseline_loss, post_training_bits
from precsim.codesign.variants import parse_vary
from precsim.lawcore import Law, get_law
from precsim.simulator.compute_units import phase_choice, place_units
from precsim.simulator.errors import InputError
from precsim.simulator.io import (MAX_DEGREE, MAX_SEQUENCES, MAX_TOKENS, is_file_reference,
                                  load_yaml_mapping)
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import QuantFormat, parse_quant
from precsim.simulator.runtime import RuntimeProfile, load_runtime
from precsim.simulator.schema_errors import format_validation_error
from precsim.simulator.training import get_recipe, recipe_for_bits
from precsim.simulator.slo import SLO, QuantityField

DEFAULT_STUDY = "default_study.yaml"
Objective = Literal["time", "energy", "dollars"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
TokenCount = QuantityField("count", gt=0)
DevicePrice = QuantityField("price_per_hour", ge=0)   # $ per device-hour: "2.5 $/h" or 2.5
EnergyPrice = QuantityField("energy_price", ge=0)     # $ per kWh: "0.12 $/kWh" or 0.12
Bits = Annotated[float, Field(gt=0, le=32, allow_inf_nan=False)]


class Grid(_Strict):
    """Log-spaced grid: `points` values from `min` to `max` inclusive."""

    min: Positive
    max: Positive
    points: int = Field(ge=2, le=4096)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


class Baseline(_Strict):
    """The 16-bit reference model: trained in 16 bits, served unquantised (W16A16)."""

    N: Positive
    D: Positive


class Target(_Strict):
    """Either `target_loss`, or `loss_increase` over the `baseline` model's loss."""

    target_loss: Positive | None = None
    loss_increase: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    baseline: Baseline | None = None

    @model_validator(mode="after")
    def _one_way(self):
        if (self.target_loss is None) == (self.loss_increase is None):
            raise ValueError("give exactly one of target_loss or loss_increase")
        if self.loss_increase is not None and self.baseline is None:
            raise ValueError("loss_increase needs a baseline: {N: ..., D: ...}")
        if self.target_loss is not None and self.baseline is not None:
            raise ValueError("baseline is only used with loss_increase")
        return self


class Workload(_Strict):
    """Serving workload over the model's life: generated tokens, batch, request shape."""

    tokens_served: TokenCount
    batch: int = Field(ge=1, le=MAX_SEQUENCES)
    prompt_len: int = Field(ge=1, le=MAX_TOKENS)
    output_len: int = Field(ge=1, le=MAX_TOKENS)
    slo: SLO = SLO()
    #: True: `batch` is the largest batch, and the planner searches the powers of two up
    #: to it (and `batch` itself) for the cheapest one meeting the SLO and memory;
    #: False: every request batch is exactly `batch`
    batch_search: bool = True

    def batch_candidates(self) -> list[int]:
        """The serving batches the planner tries (see `batch_search`)."""
        if not self.batch_search:
            return [self.batch]
        return sorted({*(2 ** k for k in range(self.batch.bit_length())), self.batch})


class Training(_Strict):
    """The training profile, its price, and the run's layout (simulator.training)."""

    profile: str = Field(min_length=1)
    dollars_per_device_hour: DevicePrice | None = None   # None: not stated (see device_hour_price)
    devices: int = Field(default=8, ge=1, le=MAX_DEGREE)
    seq: int = Field(default=2048, ge=1, le=MAX_TOKENS)
    global_batch: int = Field(default=4194304, ge=1,   # tokens per optimizer step
                              le=MAX_SEQUENCES * MAX_TOKENS)
    zero: int = Field(default=3, ge=0, le=3)
    recompute: Literal["none", "selective", "full"] = "selective"

    def layout(self) -> dict:
        """Keyword arguments of `simulator.training.token_costs`."""
        return {"devices": self.devices, "seq": self.seq, "global_batch": self.global_batch,
                "zero": self.zero, "recompute": self.recompute}


#: Hours in a year of 365.25 days.
HOURS_PER_YEAR = 8766.0


class CapitalCost(_Strict):
    """A bought device: $/device-hour = price / (lifetime hours x utilisation).

    No price ships with PrecSim (reference/ cites none): each value is the user's, and
    `source` says where the price comes from (a list price, a quote).
    """

    device_price_dollars: Positive
    lifetime_years: Positive
    utilisation: float = Field(gt=0, le=1)
    source: str = Field(min_length=1)

    @property
    def dollars_per_device_hour(self) -> float:
        """Amortised price of one busy device-hour (straight-line, no interest)."""
        return self.device_price_dollars / (self.lifetime_years * HOURS_PER_YEAR
                                            * self.utilisation)


class Deployment(_Strict):
    """A deployment profile; workload fields given here override the study's `workload`."""

    profile: str = Field(min_length=1)
    dollars_per_device_hour: DevicePrice | None = None   # None: not stated (see device_hour_price)
    capital: CapitalCost | None = None     # or price, lifetime and utilisation of a bought device
    tokens_served: TokenCount | None = None
    batch: int | None = Field(default=None, ge=1, le=MAX_SEQUENCES)
    prompt_len: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    output_len: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    slo: SLO | None = None
    #: >1: a model that does not fit one device is served on the smallest tensor-parallel
    #: replica (tp = 2, 4, ... up to this, within a node) that holds it
    max_devices_per_replica: int = Field(default=1, ge=1, le=64)
    #: a SoC's compute unit running both phases, prefill, decode (as simulate's --unit,
    #: --prefill-unit, --decode-unit; None: the profile's default for each format)
    unit: str | None = Field(default=None, min_length=1)
    prefill_unit: str | None = Field(default=None, min_length=1)
    decode_unit: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_price(self):
        if self.capital is not None and self.dollars_per_device_hour is not None:
            raise ValueError("give dollars_per_device_hour or capital, not both")
        return self

    def placed(self, profile: HardwareProfile) -> HardwareProfile:
        """`profile` with this deployment's units (simulator.compute_units.place_units)."""
        return place_units(profile, self.unit, self.prefill_unit, self.decode_unit)

    @property
    def stated_price(self) -> float | None:
        """$/device-hour stated directly or through the capital-cost model (None: neither)."""
        if self.capital is not None:
            return self.capital.dollars_per_device_hour
        return self.dollars_per_device_hour

    def workload(self, base: Workload) -> Workload:
        fields = {k: getattr(self, k) for k in Workload.model_fields
                  if getattr(self, k, None) is not None}
        return base.model_copy(update=fields)


class TrainFormat(_Strict):
    """Training precision: bits of weights, activations and KV cache during training."""

    name: str = Field(min_length=1)
    weight_bits: Bits
    act_bits: Bits
    kv_bits: Bits
    recipe: str | None = None   # simulator.training recipe; None: the law's runs' recipe

    @model_validator(mode="after")
    def _known_recipe(self):
        if self.recipe is not None:
            get_recipe(self.recipe)   # InputError (a ValueError) names the recipe
        return self

    @property
    def recipe_name(self) -> str:
        """The stated recipe, else `recipe_for_bits` (bf16 at 16 bits, else forward-only
        quantised training at these bits, as the precision law's runs trained)."""
        return self.recipe or recipe_for_bits(self.weight_bits, self.act_bits, self.kv_bits)

    @property
    def tied(self) -> bool:
        return self.weight_bits == self.act_bits == self.kv_bits

    @property
    def exec_bits(self) -> float:
        """Operand width of the training GEMMs: the wider of weights and activations."""
        return max(self.weight_bits, self.act_bits)


def _train_format(value: Any) -> Any:
    """A bare number means tied bits (`8` -> weights, activations and KV at 8 bits)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"name": f"{value:g}-bit", "weight_bits": value, "act_bits": value,
                "kv_bits": value}
    return value


class ModelFamily(_Strict):
    """Shape of the parametric model family (simulator.models.model_for_params)."""

    aspect_ratio: Positive | None = None
    ffn_ratio: Positive | None = None
    gqa_ratio: Positive | None = None
    vocab_size: int | None = Field(default=None, ge=1)

    def options(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class WhatIf(_Strict):
    """A what-if of the report: vary a profile the study uses (grammar: whatif.VARY_HELP)."""

    profile: str = Field(min_length=1)
    vary: list[str] = Field(min_length=1)


class Search(_Strict):
    N: Grid
    D: Grid
    bisection_steps: int = Field(default=30, ge=1, le=60)
    train_formats: list[Annotated[TrainFormat, BeforeValidator(_train_format)]] = Field(
        min_length=1)
    serve_formats: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        for field, names in (("train_formats", [t.name for t in self.train_formats]),
                             ("serve_formats", self.serve_formats)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{field}: duplicate names {dupes}")
        return self


class Study(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    law: str = "kumar2024"
    objective: Objective = "dollars"
    dollars_per_kwh: EnergyPrice = 0.0
    target: Target
    training: Training | None = None
    deployments: list[Deployment] = Field(default_factory=list)
    workload: Workload | None = None
    search: Search
    model: ModelFamily = ModelFamily()
    whatif: list[WhatIf] = Field(default_factory=list)
    validation_summary: str | None = None
    #: runtimes (names or YAML paths) the report compares on each deployment's chip
    runtimes: list[str] = Field(default_factory=lambda: ["reference"], min_length=1)

    @model_validator(mode="after")
    def _roles(self):
        if self.training is None and not self.deployments:
            raise ValueError("give a training profile, deployments, or both")
        if self.deployments and self.workload is None:
            raise ValueError("deployments need a workload (the study-wide defaults)")
        names = [d.profile for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"deployments: profile listed twice: {dupes}")
        roles = set(names) | ({self.training.profile} if self.training else set())
        for i, w in enumerate(self.whatif):
            if w.profile not in roles:
                raise ValueError(f"whatif[{i}].profile: {w.profile} is neither the training "
                                 f"profile nor a deployment ({', '.join(sorted(roles))})")
        return self


# ---- loading -------------------------------------------------------------------------------

def _field_names() -> list[str]:
    names: set[str] = set()
    for model in (Study, Search, ModelFamily, WhatIf, Grid, Target, Baseline, Workload, SLO,
                  Training, Deployment, TrainFormat):
        names.update(model.model_fields)
    return sorted(names)


def study_from_mapping(doc: dict, source: str) -> Study:
    try:
        return Study.model_validate(doc)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source, doc, _field_names())) from None


def updated(study: Study, source: str, **fields: Any) -> Study:
    """A copy of `study` with top-level fields replaced, validated again."""
    doc = study.model_copy(update=fields).model_dump(mode="python")
    return study_from_mapping(doc, source)


def default_study_path() -> Path:
    return Path(str(resources.files("precsim.codesign").joinpath(DEFAULT_STUDY)))


def load_study(path: str | os.PathLike | None = None) -> tuple[Study, str]:
    """The study in `path` (default: the built-in study) and the source it came from."""
    path = Path(path) if path is not None else default_study_path()
    doc = load_yaml_mapping(path, what="study file")
    return study_from_mapping(doc, str(path)), str(path)


@dataclass(frozen=True)
class ResolvedStudy:
    """A study with its law, profiles and serving formats loaded and checked."""

    study: Study
    source: str
    law: Law
    train_profile: HardwareProfile | None
    deploy_profiles: tuple[HardwareProfile, ...]
    serve_formats: tuple[QuantFormat, ...]
    target_loss: float
    baseline_loss: float | None
    runtimes: tuple[RuntimeProfile, ...] = ()   # the study's `runtimes`, loaded


def _profile_ref(ref: str, source: str) -> str:
    """Profile names stay names; relative YAML paths are taken from the study's folder."""
    if is_file_reference(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and Path(source).exists():
            path = Path(source).resolve().parent / path
        return str(path)
    return ref


def _check_units(dep: Deployment, profile: HardwareProfile, formats, field) -> None:
    """Each unit a deployment names exists on its profile (a SoC) and runs every serving
    format of the study in its phase; `field(name, load)` names the field in errors."""
    for name, phases in (("unit", ("prefill", "decode")), ("prefill_unit", ("prefill",)),
                         ("decode_unit", ("decode",))):
        if getattr(dep, name) is None:
            continue
        placed = field(name, lambda: place_units(profile, **{name: getattr(dep, name)}))
        for fmt in formats:
            for phase in phases:
                field(name, lambda f=fmt, ph=phase: phase_choice(placed, f, ph))


def resolve_study(study: Study, source: str, profile_dirs=()) -> ResolvedStudy:
    """Load the law, profiles and formats a study names; errors name file and field."""
    def field(name: str, load):
        try:
            return load()
        except (InputError, ValueError) as exc:
            raise InputError(f"{source}: {name}: {exc}") from None

    law = field("law", lambda: get_law(study.law))
    train = None
    if study.training is not None:
        train = field("training.profile", lambda: load_profile(
            _profile_ref(study.training.profile, source), profile_dirs))
    deploys = tuple(
        field(f"deployments[{i}].profile",
              lambda d=d: load_profile(_profile_ref(d.profile, source), profile_dirs))
        for i, d in enumerate(study.deployments))
    formats = tuple(field(f"search.serve_formats[{i}]", lambda s=s: parse_quant(s))
                    for i, s in enumerate(study.search.serve_formats))
    for i, (d, profile) in enumerate(zip(study.deployments, deploys)):
        _check_units(d, profile, formats, lambda name, load, i=i: field(
            f"deployments[{i}].{name}", load))
    for i, w in enumerate(study.whatif):
        profile = train if study.training and w.profile == study.training.profile else \
            deploys[[d.profile for d in study.deployments].index(w.profile)]
        for j, spec in enumerate(w.vary):
            field(f"whatif[{i}].vary[{j}]", lambda spec=spec, p=profile: parse_vary(spec, p))
    if study.deployments:
        for i, fmt in enumerate(formats):   # the law must accept its post-training bits
            field(f"search.serve_formats[{i}]", lambda f=fmt: law.predict(
                study.search.N.min, study.search.D.min, P_post=post_training_bits(f)))
    runtimes = tuple(field(f"runtimes[{i}]", lambda n=n: load_runtime(_profile_ref(n, source)))
                     for i, n in enumerate(study.runtimes))
    for i, t in enumerate(study.search.train_formats):
        field(f"search.train_formats[{i}]",
              lambda t=t: law.predict(study.search.N.min, study.search.D.min,
                                      t.weight_bits, t.act_bits, t.kv_bits))
    target = study.target
    base = None
    if target.loss_increase is not None:
        base = field("target.baseline", lambda: baseline_loss(law, target.baseline.N,
                                                              target.baseline.D))
        loss = base + target.loss_increase
    else:
        loss = target.target_loss
    return ResolvedStudy(study, source, law, train, deploys, formats, float(loss), base,
                         runtimes)


USER_OWNED_KINDS = frozenset({"mobile_soc"})  # the owner pays the energy, not device-hours


def device_hour_price(rate: float | None, profile: HardwareProfile, objective: str,
                      what: str) -> float:
    """$/device-hour of a phase: the stated rate; 0 for a user-owned device (kind in
    USER_OWNED_KINDS: only energy is charged); otherwise no silent zero — an InputError
    when the objective is dollars, NaN (dollars undefined, JSON null) for time / energy."""
    if rate is not None:
        return float(rate)
    if profile.kind in USER_OWNED_KINDS:
        return 0.0
    if objective == "dollars":
        raise InputError(
            f"{what}: dollars_per_device_hour is not set for profile {profile.name!r} (kind "
            f"{profile.kind}); a datacenter device-hour is not free: give it in the study "
            "or with --dollars-per-device-hour / --train-dollars-per-device-hour (user-owned "
            f"devices, kind {', '.join(sorted(USER_OWNED_KINDS))}, are charged energy only)")
    return float("nan")


def problem_from_study(resolved: ResolvedStudy, deployment: int | None,
                       with_training: bool = True,
                       train_profile: HardwareProfile | None = None,
                       deploy_profile: HardwareProfile | None = None) -> PlanProblem:
    """The plan of one deployment of a resolved study (None: training only).

    `train_profile` / `deploy_profile` replace the study's profiles (what-if variants).
    """
    study = resolved.study
    search = study.search
    train = (train_profile or resolved.train_profile) if with_training else None
    dep = study.deployments[deployment] if deployment is not None else None
    deploy = dep.placed(deploy_profile or resolved.deploy_profiles[deployment]) \
        if dep else None
    weights = CostWeights(
        objective=study.objective,
        train_dollars_per_device_hour=device_hour_price(
            study.training.dollars_per_device_hour, train, study.objective, "training")
        if study.training and train is not None else 0.0,
        deploy_dollars_per_device_hour=device_hour_price(
            dep.stated_price, deploy, study.objective,
            f"deployments[{deployment}]") if dep else 0.0,
        dollars_per_kwh=study.dollars_per_kwh)
    return PlanProblem(
        law=resolved.law, target_loss=resolved.target_loss,
        train_formats=tuple(search.train_formats),
        serve_formats=resolved.serve_formats if dep else (),
        N_grid=np.geomspace(search.N.min, search.N.max, search.N.points),
        D_grid=np.geomspace(search.D.min, search.D.max, search.D.points),
        weights=weights, train_profile=train,
        train_layout=study.training.layout() if study.training and train is not None else {},
        deploy_profile=deploy,
        workload=dep.workload(study.workload) if dep else None,
        bisection_steps=search.bisection_steps, model_options=study.model.options(),
        max_devices_per_replica=dep.max_devices_per_replica if dep else 1)
