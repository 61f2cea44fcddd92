"""Cutting a sweep study into tasks: groups, pieces and content-keyed chunks.

Configurations sharing (profile variant, model, quant format) form a `Group`, whose
batch x prompt_len x gen_len (x qps) grid is one broadcast cost call. `plan_chunks`
packs groups, and splits large ones, into `Chunk`s of at most `configs_per_chunk`
configurations; a chunk's key is a SHA-256 of everything that determines its rows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from precsim.codesign.sweep.schema import ServingAxis, SweepStudy, study_source
from precsim.simulator.errors import InputError
from precsim.simulator.io import is_file_reference
from precsim.simulator.models import TransformerConfig, get_model, model_for_params
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import QuantFormat, parse_quant


@dataclass(frozen=True)
class Group:
    """One (profile variant, model, quant format): the unit of a broadcast cost call."""

    labels: tuple[tuple[str, Any], ...]  # (column, value): profile, overrides, model, quant
    profile_doc: str                     # JSON of the profile document after overrides
    model: TransformerConfig
    quant: QuantFormat


@dataclass(frozen=True)
class Piece:
    """A slice of a group's flattened grid: aligned 1-D axis arrays, first config_id."""

    group: Group
    first_config_id: int
    batch: np.ndarray
    prompt_len: np.ndarray
    gen_len: np.ndarray
    qps: np.ndarray | None

    def __len__(self) -> int:
        return len(self.batch)

    def describe(self) -> dict:
        out = dict(self.group.labels)
        out["config_id"] = [self.first_config_id, self.first_config_id + len(self) - 1]
        for axis in ("batch", "prompt_len", "gen_len", "qps"):
            values = getattr(self, axis)
            if values is not None:
                out[axis] = np.unique(values).tolist()
        return out


@dataclass(frozen=True)
class Chunk:
    """One task: pieces evaluated together, identified by a content hash `key`."""

    key: str
    pieces: tuple[Piece, ...]
    serving: ServingAxis | None

    @property
    def n_configs(self) -> int:
        return sum(len(p) for p in self.pieces)

    def describe(self) -> list[dict]:
        return [p.describe() for p in self.pieces]


def precsim_version() -> str:
    """The installed precsim version (part of every chunk key; workers must match it)."""
    try:
        return metadata.version("precsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _relative_to_study(entry: str, study: SweepStudy) -> str:
    """A file path in the study is relative to the study file; a name stays a name."""
    source = study_source(study)
    if is_file_reference(entry):
        path = Path(entry).expanduser()
        if not path.is_absolute() and source != "study":
            return str(Path(source).parent / path)
        return str(path)
    return entry


def _resolve_profile(entry: str, study: SweepStudy, index: int,
                     profile_dirs: Sequence[str | os.PathLike]) -> HardwareProfile:
    try:
        return load_profile(_relative_to_study(entry, study), extra_paths=profile_dirs)
    except InputError as exc:
        raise InputError(f"{study_source(study)}: profiles[{index}]: {exc}") from None


def _profile_variants(study: SweepStudy, profile_dirs: Sequence[str | os.PathLike]
                      ) -> list[tuple[tuple[tuple[str, Any], ...], str]]:
    """(labels, profile document JSON) per profile × override combination."""
    source = study_source(study)
    paths = list(study.overrides)
    variants = []
    for i, entry in enumerate(study.profiles):
        base = _resolve_profile(entry, study, i, profile_dirs)
        for values in itertools.product(*study.overrides.values()):
            chosen = {p: v for p, v in zip(paths, values, strict=True) if v is not None}
            try:
                profile = base.with_overrides(chosen) if chosen else base
            except InputError as exc:
                where = ", ".join(f"{p}={v!r}" for p, v in chosen.items())
                raise InputError(f"{source}: overrides ({where}) on profile "
                                 f"{base.name}: {exc}") from None
            labels = (("profile", base.name),) + tuple(
                (f"override:{p}", None if v is None else str(v))
                for p, v in zip(paths, values, strict=True))
            variants.append((labels, json.dumps(profile.raw(), sort_keys=True, default=str)))
    return variants


def _resolve_model(entry: str | float, study: SweepStudy, index: int) -> TransformerConfig:
    """A built-in name, a config.json path (relative to the study file) or a parameter
    count N (`7e9`: `model_for_params(N)`, the laws' parametric Llama shape)."""
    where = f"{study_source(study)}: models[{index}]"
    try:
        if isinstance(entry, str):
            try:
                entry = float(entry)
            except ValueError:
                return get_model(_relative_to_study(entry, study))
        return model_for_params(entry)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _resolve_quant(spec: str, study: SweepStudy, index: int) -> QuantFormat:
    try:
        return parse_quant(spec)
    except InputError as exc:
        raise InputError(f"{study_source(study)}: quant[{index}]: {exc}") from None


def _fingerprint(obj: Any) -> str:
    """Stable text of a config dataclass (every field, including repr=False ones)."""
    fields = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    return json.dumps(fields, sort_keys=True, default=repr)


def plan_chunks(study: SweepStudy, profile_dirs: Sequence[str | os.PathLike] = ()) -> list[Chunk]:
    """Resolve the study's names (errors name the study file and field) and cut it into chunks.

    config_id enumerates the product in axis order: profile, overrides, model, quant,
    batch, prompt_len, gen_len, qps. Pieces are taken greedily in that order until a
    chunk holds `chunk_size` configurations.
    """
    models = [_resolve_model(entry, study, i) for i, entry in enumerate(study.models)]
    for i, model in enumerate(models):
        if study.serving and not model.is_discrete:
            raise InputError(f"{study_source(study)}: models[{i}]: serving points need a "
                             f"real model with integer shapes; {model.name} is parametric")
    quants = [_resolve_quant(spec, study, i) for i, spec in enumerate(study.quant)]
    qps = study.serving.qps if study.serving else None
    grid_axes = [study.batch, study.prompt_len, study.gen_len] + ([qps] if qps else [])
    grid = [g.ravel() for g in np.meshgrid(*[np.asarray(a) for a in grid_axes], indexing="ij")]
    grid_size = len(grid[0])
    serving = study.serving.model_dump(mode="json") if study.serving else None
    header = {"precsim": precsim_version(), "serving": serving}

    chunks: list[Chunk] = []
    pending: list[Piece] = []

    def close() -> None:
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for piece in pending:
            digest.update(piece.group.profile_doc.encode())
            digest.update(json.dumps({"labels": piece.group.labels,
                                      "model": _fingerprint(piece.group.model),
                                      "quant": _fingerprint(piece.group.quant),
                                      **piece.describe()}, default=str).encode())
            for axis in (piece.batch, piece.prompt_len, piece.gen_len, piece.qps):
                if axis is not None:
                    digest.update(np.ascontiguousarray(axis).tobytes())
        chunks.append(Chunk(digest.hexdigest(), tuple(pending), study.serving))
        pending.clear()

    config_id = 0
    room = study.configs_per_chunk
    for (labels, doc), model, (spec, quant) in itertools.product(
            _profile_variants(study, profile_dirs), models, zip(study.quant, quants, strict=True)):
        group = Group(labels + (("model", model.name), ("quant", spec)), doc, model, quant)
        start = 0
        while start < grid_size:
            take = min(room, grid_size - start)
            sl = slice(start, start + take)
            pending.append(Piece(group, config_id, grid[0][sl], grid[1][sl], grid[2][sl],
                                 grid[3][sl] if qps else None))
            config_id += take
            start += take
            room -= take
            if room == 0:
                close()
                room = study.configs_per_chunk
    if pending:
        close()
    return chunks
