"""Running a sweep: submit chunks, retry failures, checkpoint parts, gather the rows."""
from __future__ import annotations

import io
import os
import queue
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precsim.codesign.progress import Reporter
from precsim.codesign.sweep.chunks import Chunk, plan_chunks, precsim_version
from precsim.codesign.sweep.executors import error_text, make_executor
from precsim.codesign.sweep.schema import SweepStudy, load_sweep_study
from precsim.codesign.sweep.workers import evaluate_chunk
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_bytes, output_target

PARTS_SUFFIX = ".parts"


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


def run_sweep(study: SweepStudy | str | os.PathLike, executor: Any = None, *,
              out: str | os.PathLike | None = None, retries: int = 1,
              progress: bool = True, profile_dirs: Sequence[str | os.PathLike] = (),
              evaluate: Callable[[Chunk], pd.DataFrame] = evaluate_chunk) -> SweepResult:
    """Run every chunk of `study` on `executor`; gather one DataFrame sorted by config_id.

    `executor`: None (local process pool), a scheduler address, a dask Client, or a
    `LocalExecutor` / `DaskExecutor`. With `out`, finished chunks are checkpointed in
    `<out>.parts/` and a complete result is written to `out` as Parquet (an incomplete
    one leaves `out` as it was); a rerun resumes.
    A chunk is tried `1 + retries` times; failures are returned, not raised.
    `progress`: configurations done on stderr (`codesign.progress`: a bar with an ETA on a
    terminal, a line at most every 5 s otherwise); False: silent.
    """
    if not isinstance(study, SweepStudy):
        study = load_sweep_study(study)
    if retries < 0:
        raise InputError(f"retries: expected >= 0, got {retries}")
    chunks = plan_chunks(study, profile_dirs)
    parts = parts_dir_for(out) if out is not None else None
    if parts is not None:
        output_target(out)  # a directory, device or FIFO is refused before any work
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
    bar = Reporter(f"sweep {study.name}", enabled=None if progress else False, unit="config",
                   every_s=5.0)
    bar("resumed" if resumed else "", sum(c.n_configs for c in chunks if c.key in frames),
        study.n_configs)
    runner, owned = make_executor(executor) if todo else (None, False)
    described = repr(runner) if runner is not None else "none (all chunks resumed)"
    try:
        if todo:
            _drive(runner, todo, evaluate, retries, parts, frames, failures, bar)
    except KeyboardInterrupt:
        if parts is not None:
            bar.write(f"sweep interrupted: {len(frames)} of {len(chunks)} chunks kept in "
                      f"{parts}; run it again to resume")
        raise
    finally:
        bar.close()
        if owned:
            runner.close()

    ordered = [frames[c.key] for c in chunks if c.key in frames]
    frame = (pd.concat(ordered, ignore_index=True) if ordered
             else pd.DataFrame({"config_id": np.array([], dtype=np.int64)}))
    frame.attrs["precsim_sweep"] = {"precsim": precsim_version(),
                                    "study": study.model_dump(mode="json"),
                                    "failed_chunks": len(failures)}
    written = out is not None and not failures  # only a complete result replaces `out`
    if written:
        atomic_write_bytes(out, _frame_bytes(frame))
        if parts.is_dir():
            shutil.rmtree(parts, ignore_errors=True)
    return SweepResult(frame=frame, chunks=len(chunks), resumed=resumed,
                       computed=len(frames) - resumed, failures=failures,
                       out=Path(out) if written else None, executor=described)


def _drive(runner: Any, todo: Iterable[Chunk], evaluate: Callable, retries: int,
           parts: Path | None, frames: dict[str, pd.DataFrame],
           failures: list[ChunkFailure], bar: Reporter) -> None:
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
                                                 error_text(exc), attempts[chunk.key]))
                    bar.advance(0, f"{len(failures)} chunks failed")
                continue
            if parts is not None:
                _write_part(parts, chunk, frame)
            frames[chunk.key] = frame
            bar.advance(chunk.n_configs, f"{len(failures)} chunks failed" if failures else "")
    finally:
        for future in pending:
            future.cancel()
