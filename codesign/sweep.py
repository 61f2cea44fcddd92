"""What-if sweeps: one API that runs a study on a local process pool or a Dask cluster.

A study (YAML, validated by `Study`) is the Cartesian product of its axes:
profiles × profile overrides × models × quant formats × batch × prompt_len × gen_len
(× serving qps). Configurations sharing (profile variant, model, quant format) form a
*group*; a group's batch × prompt_len × gen_len grid is evaluated with one broadcast
call of the cost model (`simulator.cost`). Groups are packed, and large groups split,
into *chunks* of at most `chunk_size` configurations; a chunk is one task.

Execution (`run_sweep`): chunks go to an executor (`LocalExecutor`, a process pool, by
default; `DaskExecutor` for a `dask.distributed` scheduler or a LocalCluster). A task
that raises is submitted once more (`retries`); if it fails again it is reported with
its configurations (`ChunkFailure`) while the other chunks complete. With an output
path, every finished chunk is written at once to `<out>.parts/<chunk key>.parquet`
(atomically, by the driver, so workers need no shared file system). A chunk key is a
SHA-256 of everything that determines its rows (precsim version, the profile document
after overrides, model, format, axis values, serving settings), so a rerun of an
interrupted or partly failed sweep skips finished chunks, and a changed study or
profile recomputes exactly what changed. When every chunk has finished, the rows,
sorted by `config_id` (the position in the Cartesian product), are written to
`<out>` atomically and the parts folder is removed.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import queue
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import (BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt,
                      PrivateAttr, ValidationError, field_validator)
from tqdm import tqdm

from precsim.simulator.cost import simulate
from precsim.simulator.des.serving import serve
from precsim.simulator.des.workload import poisson_workload
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_bytes, is_file_reference, load_yaml_mapping
from precsim.simulator.models import TransformerConfig, get_model, model_for_params
from precsim.simulator.profiles import HardwareProfile, load_profile, profile_from_mapping
from precsim.simulator.quant import QuantFormat, parse_quant
from precsim.simulator.schema_errors import format_validation_error

PARTS_SUFFIX = ".parts"
#: default configurations per task: a chunk takes about 0.1 s (cost model) or 1 s (DES)
COST_CHUNK = 4096
SERVING_CHUNK = 16
#: serving aggregates kept per row (`serving_` + name), from the DES summary
SERVING_METRICS = ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
                   "e2e_p99_s", "queue_p99_s", "throughput_tokens_per_s",
                   "throughput_requests_per_s", "energy_per_token_j", "utilization",
                   "mean_decode_batch", "served", "rejected", "kv_capacity_tokens")
#: override values are written as in a profile YAML: a quantity string, a number, a flag;
#: null keeps the profile's own value (the baseline of a what-if)
OverrideValue = str | int | float | bool | None


# ---- study schema ------------------------------------------------------------------------

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

    qps: list[PositiveFloat] = Field(min_length=1)
    requests: PositiveInt = 200
    seed: int = Field(default=0, ge=0)
    chunked_prefill_tokens: PositiveInt | None = None
    on_full: Literal["wait", "reject"] = "wait"

    @field_validator("qps")
    @classmethod
    def _qps_unique(cls, v: list) -> list:
        return _unique(v, "qps")


class Study(_Strict):
    """A sweep: every combination of the listed axes is one configuration (one row)."""

    name: str = Field(default="sweep", min_length=1)
    profiles: list[str] = Field(min_length=1)
    models: list[str | PositiveFloat] = Field(min_length=1)
    quant: list[str] = Field(min_length=1)
    batch: list[PositiveInt] = Field(min_length=1)
    prompt_len: list[PositiveInt] = Field(min_length=1)
    gen_len: list[PositiveInt] = Field(min_length=1)
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

    @property
    def n_configs(self) -> int:
        axes = [self.profiles, self.models, self.quant, self.batch, self.prompt_len,
                self.gen_len, *self.overrides.values()]
        if self.serving:
            axes.append(self.serving.qps)
        return int(np.prod([len(a) for a in axes]))


def _known_fields(loc: tuple) -> list[str]:
    """Field names an unknown field at `loc` is matched against."""
    return list(ServingAxis.model_fields if loc[:1] == ("serving",) else Study.model_fields)


def study_from_mapping(doc: dict, source: str = "study") -> Study:
    """Validate a study mapping; errors name `source` and the field path."""
    try:
        study = Study.model_validate(doc)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source, doc, _known_fields,
                                              list_expected=True)) from None
    study._source = source
    return study


def load_study(path: str | os.PathLike) -> Study:
    """Read and validate a study YAML file (profile paths in it are relative to it)."""
    return study_from_mapping(load_yaml_mapping(path, what="study"), source=str(path))


def study_source(study: Study) -> str:
    """The file a study was read from (for error messages and relative paths)."""
    return study._source


# ---- planning: groups, pieces, chunks ------------------------------------------------------

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


def _precsim_version() -> str:
    try:
        return metadata.version("precsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _relative_to_study(entry: str, study: Study) -> str:
    """A file path in the study is relative to the study file; a name stays a name."""
    source = study_source(study)
    if is_file_reference(entry):
        path = Path(entry).expanduser()
        if not path.is_absolute() and source != "study":
            return str(Path(source).parent / path)
        return str(path)
    return entry


def _resolve_profile(entry: str, study: Study, index: int,
                     profile_dirs: Sequence[str | os.PathLike]) -> HardwareProfile:
    try:
        return load_profile(_relative_to_study(entry, study), extra_paths=profile_dirs)
    except InputError as exc:
        raise InputError(f"{study_source(study)}: profiles[{index}]: {exc}") from None


def _profile_variants(study: Study, profile_dirs: Sequence[str | os.PathLike]
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


def _resolve_model(entry: str | float, study: Study, index: int) -> TransformerConfig:
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


def _resolve_quant(spec: str, study: Study, index: int) -> QuantFormat:
    try:
        return parse_quant(spec)
    except InputError as exc:
        raise InputError(f"{study_source(study)}: quant[{index}]: {exc}") from None


def _fingerprint(obj: Any) -> str:
    """Stable text of a config dataclass (every field, including repr=False ones)."""
    fields = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    return json.dumps(fields, sort_keys=True, default=repr)


def plan_chunks(study: Study, profile_dirs: Sequence[str | os.PathLike] = ()) -> list[Chunk]:
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
    header = {"precsim": _precsim_version(), "serving": serving}

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


# ---- evaluation (runs on the workers) -------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _profile(doc_json: str) -> HardwareProfile:
    """The profile a task ships as JSON (profiles are data; workers re-validate once)."""
    doc = json.loads(doc_json)
    return profile_from_mapping(doc, source=f"sweep profile {doc.get('name')}")


def evaluate_chunk(chunk: Chunk) -> pd.DataFrame:
    """Rows of one chunk: config_id, labels, axes, then cost (and serving) metrics.

    One broadcast cost call per piece; serving points run one DES each.
    """
    frames = []
    for piece in chunk.pieces:
        n = len(piece)
        columns: dict[str, Any] = {"config_id": np.arange(piece.first_config_id,
                                                          piece.first_config_id + n)}
        for name, value in piece.group.labels:
            columns[name] = pd.array([value] * n, dtype="str")
        columns |= {"batch": piece.batch, "prompt_len": piece.prompt_len,
                    "gen_len": piece.gen_len}
        if piece.qps is not None:
            columns["qps"] = piece.qps.astype(np.float64)
        profile = _profile(piece.group.profile_doc)
        columns |= _cost_columns(profile, piece)
        if chunk.serving is not None:
            columns |= _serving_columns(profile, piece, chunk.serving)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _cost_columns(profile: HardwareProfile, piece: Piece) -> dict[str, np.ndarray]:
    """Every scalar total of `simulator.cost.simulate` (ttft_s, tpot_s, …, fits), per row,
    from one broadcast call over the piece's batch × prompt_len × gen_len rows (each row
    equals the scalar call: `simulate` sums every request's decode on its own nodes)."""
    totals = simulate(profile, piece.group.model, piece.group.quant, piece.batch,
                      piece.prompt_len, piece.gen_len).totals
    return {name: np.broadcast_to(value, piece.batch.shape).copy()
            for name, value in totals.items() if not isinstance(value, dict)}


def _serving_columns(profile: HardwareProfile, piece: Piece,
                     serving: ServingAxis) -> dict[str, np.ndarray]:
    """One DES run per row: Poisson(qps) arrivals, max batch = the row's batch.

    A point the DES refuses as input (the model does not fit the device) gets NaN
    metrics and the reason in `serving_error`; the chunk goes on.
    """
    out = {f"serving_{name}": np.full(len(piece), np.nan) for name in SERVING_METRICS}
    errors = [""] * len(piece)
    for row in range(len(piece)):
        workload = poisson_workload(float(piece.qps[row]), serving.requests, serving.seed,
                                    int(piece.prompt_len[row]), int(piece.gen_len[row]))
        try:
            summary = serve(profile, piece.group.model, piece.group.quant, workload,
                            max_batch=int(piece.batch[row]),
                            chunked_prefill_tokens=serving.chunked_prefill_tokens,
                            on_full=serving.on_full).summary
        except InputError as exc:
            errors[row] = str(exc)
            continue
        for name in SERVING_METRICS:
            out[f"serving_{name}"][row] = summary[name]
    out["serving_error"] = pd.array(errors, dtype="str")
    return out


# ---- executors -----------------------------------------------------------------------------

def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the driver, which cancels and keeps finished chunks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class LocalExecutor(_Closing):
    """A process pool on this machine, one task per chunk.

    Workers are forked from a forkserver that has imported this module once (fast
    start, no fork of a threaded driver); `spawn` where there is no forkserver.
    """

    def __init__(self, max_workers: int | None = None):
        if max_workers is not None and max_workers < 1:
            raise InputError(f"workers: expected a whole number >= 1, got {max_workers}")
        self.max_workers = max_workers or _available_cpus()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __name__])
        else:
            context = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(self.max_workers, mp_context=context,
                                                      initializer=_ignore_sigint)

    def submit(self, fn: Callable, arg: Any) -> concurrent.futures.Future:
        try:
            return self._pool.submit(fn, arg)
        except concurrent.futures.process.BrokenProcessPool:
            # a worker died (e.g. killed for memory): start a fresh pool for the retries
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, arg)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"local process pool ({self.max_workers} workers)"


class DaskExecutor(_Closing):
    """A `dask.distributed` cluster: an existing scheduler, a Client, or a new LocalCluster.

    Give exactly one of `address` ("tcp://host:8786"), `client`, or `local_workers`
    (start `LocalCluster(n_workers=local_workers, threads_per_worker=1)`). A client or
    cluster this object created is closed by `close()`; a client passed in is left open.
    """

    def __init__(self, address: str | None = None, *, client: Any = None,
                 local_workers: int | None = None):
        from dask.distributed import Client, LocalCluster

        if sum(x is not None for x in (address, client, local_workers)) != 1:
            raise ValueError("DaskExecutor: give exactly one of address, client, local_workers")
        self._cluster = None
        self._owns_client = client is None
        if local_workers is not None:
            if local_workers < 1:
                raise InputError(f"local cluster: expected >= 1 workers, got {local_workers}")
            self._cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1,
                                         dashboard_address=None)
            client = Client(self._cluster)
        elif address is not None:
            try:
                client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"scheduler {address}: cannot connect ({exc}); start one "
                                 "with `dask scheduler` and workers with "
                                 f"`dask worker {address}`") from None
        self.client = client
        if local_workers is None:
            self._check_workers()

    def _check_workers(self) -> None:
        """Every worker must run this precsim version (results must not mix versions)."""
        mine = _precsim_version()
        found = self.client.run(_precsim_version, on_error="return")
        wrong = {worker: version if isinstance(version, str) else _error_text(version)
                 for worker, version in found.items() if version != mine}
        if wrong:
            self.close()
            listed = "; ".join(f"{w}: {v}" for w, v in sorted(wrong.items()))
            raise InputError(f"dask workers must run precsim {mine} (pip install "
                             f"precsim=={mine} on each worker); found {listed}")

    def submit(self, fn: Callable, arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __repr__(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"dask cluster {self.client.scheduler.address} ({workers} workers)"


def make_executor(spec: Any) -> tuple[Any, bool]:
    """(executor, owned): None → LocalExecutor, "tcp://…" → DaskExecutor, a dask Client →
    DaskExecutor on it, anything with `submit` is used as is (and not closed here)."""
    if spec is None:
        return LocalExecutor(), True
    if isinstance(spec, str):
        return DaskExecutor(spec), True
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(spec, distributed.Client):
        return DaskExecutor(client=spec), True
    return spec, False


# ---- driver --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkFailure:
    """A chunk that failed on every attempt: its configurations and the last error."""

    chunk: str
    configs: list[dict]
    error: str
    attempts: int

    def __str__(self) -> str:
        groups = "; ".join(", ".join(f"{k}={v}" for k, v in c.items()) for c in self.configs)
        return f"chunk {self.chunk[:12]} failed {self.attempts}x: {self.error} [{groups}]"


@dataclass(frozen=True)
class SweepResult:
    """The gathered rows (sorted by config_id) and what happened to each chunk."""

    frame: pd.DataFrame
    chunks: int
    resumed: int
    computed: int
    failures: list[ChunkFailure]
    out: Path | None
    executor: str

    @property
    def complete(self) -> bool:
        return not self.failures


def parts_dir_for(out: str | os.PathLike) -> Path:
    """Where finished chunks are checkpointed: `<out>.parts/` beside the output."""
    out = Path(out)
    return out.with_name(out.name + PARTS_SUFFIX)


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _write_part(parts: Path, chunk: Chunk, frame: pd.DataFrame) -> None:
    atomic_write_bytes(parts / f"{chunk.key}.parquet", _frame_bytes(frame))


def _read_part(parts: Path, chunk: Chunk) -> pd.DataFrame | None:
    path = parts / f"{chunk.key}.parquet"
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError):  # unreadable checkpoint: compute the chunk again
        return None
    return frame if _rows_match(chunk, frame) else None


def _rows_match(chunk: Chunk, frame: Any) -> bool:
    if not isinstance(frame, pd.DataFrame) or len(frame) != chunk.n_configs:
        return False
    expected = np.concatenate([np.arange(p.first_config_id, p.first_config_id + len(p))
                               for p in chunk.pieces])
    return bool(np.array_equal(frame["config_id"].to_numpy(), expected))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_sweep(study: Study | str | os.PathLike, executor: Any = None, *,
              out: str | os.PathLike | None = None, retries: int = 1,
              progress: bool = True, profile_dirs: Sequence[str | os.PathLike] = (),
              evaluate: Callable[[Chunk], pd.DataFrame] = evaluate_chunk) -> SweepResult:
    """Run every chunk of `study` on `executor`; gather one DataFrame sorted by config_id.

    `executor`: None (local process pool), a scheduler address, a dask Client, or a
    `LocalExecutor` / `DaskExecutor`. With `out`, finished chunks are checkpointed in
    `<out>.parts/` and the result is written to `out` as Parquet; a rerun resumes.
    A chunk is tried `1 + retries` times; failures are returned, not raised.
    """
    if not isinstance(study, Study):
        study = load_study(study)
    if retries < 0:
        raise InputError(f"retries: expected >= 0, got {retries}")
    chunks = plan_chunks(study, profile_dirs)
    parts = parts_dir_for(out) if out is not None else None
    if parts is not None:
        if Path(out).is_dir():
            raise InputError(f"{out}: output is a directory; expected a .parquet file path")
        try:
            parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{parts}: cannot create the checkpoint folder: "
                             f"{exc.strerror}") from None
    frames: dict[str, pd.DataFrame] = {}
    if parts is not None:
        for chunk in chunks:
            frame = _read_part(parts, chunk)
            if frame is not None:
                frames[chunk.key] = frame
    resumed = len(frames)
    todo = [c for c in chunks if c.key not in frames]
    failures: list[ChunkFailure] = []
    bar = tqdm(total=study.n_configs, initial=sum(c.n_configs for c in chunks
                                                  if c.key in frames),
               unit="cfg", unit_scale=True, desc=study.name, file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    runner, owned = make_executor(executor) if todo else (None, False)
    described = repr(runner) if runner is not None else "none (all chunks resumed)"
    try:
        if todo:
            _drive(runner, todo, evaluate, retries, parts, frames, failures, bar)
    except KeyboardInterrupt:
        if parts is not None:
            bar.write(f"sweep interrupted: {len(frames)} of {len(chunks)} chunks kept in "
                      f"{parts}; run it again to resume", file=sys.stderr)
        raise
    finally:
        bar.close()
        if owned:
            runner.close()

    ordered = [frames[c.key] for c in chunks if c.key in frames]
    frame = (pd.concat(ordered, ignore_index=True) if ordered
             else pd.DataFrame({"config_id": np.array([], dtype=np.int64)}))
    frame.attrs["precsim_sweep"] = {"precsim": _precsim_version(),
                                    "study": study.model_dump(mode="json"),
                                    "failed_chunks": len(failures)}
    if out is not None:
        atomic_write_bytes(out, _frame_bytes(frame))
        if not failures and parts.is_dir():
            shutil.rmtree(parts, ignore_errors=True)
    return SweepResult(frame=frame, chunks=len(chunks), resumed=resumed,
                       computed=len(frames) - resumed, failures=failures,
                       out=Path(out) if out is not None else None, executor=described)


def _drive(runner: Any, todo: Iterable[Chunk], evaluate: Callable, retries: int,
           parts: Path | None, frames: dict[str, pd.DataFrame],
           failures: list[ChunkFailure], bar: tqdm) -> None:
    """Submit every chunk, collect results as they finish, resubmit failures once more."""
    finished: queue.SimpleQueue = queue.SimpleQueue()
    pending: dict[Any, Chunk] = {}
    attempts: dict[str, int] = {}

    def submit(chunk: Chunk) -> None:
        attempts[chunk.key] = attempts.get(chunk.key, 0) + 1
        future = runner.submit(evaluate, chunk)
        pending[future] = chunk
        future.add_done_callback(finished.put)

    for chunk in todo:
        submit(chunk)
    try:
        while pending:
            future = finished.get()
            chunk = pending.pop(future)
            try:
                frame = future.result()
                if not _rows_match(chunk, frame):
                    raise ValueError(f"{getattr(evaluate, '__name__', 'evaluate')} returned "
                                     "no DataFrame with this chunk's config_ids "
                                     f"({chunk.n_configs} rows)")
            except Exception as exc:  # noqa: BLE001 - any task error is retried, then reported
                if attempts[chunk.key] <= retries:
                    submit(chunk)
                else:
                    failures.append(ChunkFailure(chunk.key, chunk.describe(),
                                                 _error_text(exc), attempts[chunk.key]))
                    bar.set_postfix(failed=len(failures))
                continue
            if parts is not None:
                _write_part(parts, chunk, frame)
            frames[chunk.key] = frame
            bar.update(chunk.n_configs)
    finally:
        for future in pending:
            future.cancel()
