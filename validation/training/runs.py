"""The runs CSV: its columns, the durable append-only log a sweep writes, and the checked
reader of any runs CSV (torch-free).

Log format: one header line, then for each finished training run its rows (one without
post-training quantization, one per P_post), written with a single `write` followed by
flush + fsync. A crash can therefore only leave a torn tail: on reopening, a trailing
line without newline and any run with fewer rows than its `n_rows` are dropped (the file
is rewritten atomically), so at most the run in flight is lost.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_write_text, read_text_bounded

COLUMNS = (
    "run_id", "data", "data_fingerprint", "known_E",
    "N", "params_total", "d_model", "n_layers", "n_heads", "seq_len", "batch_size", "lr",
    "D", "steps", "data_epochs",
    "w_format", "a_format", "kv_format", "P_w", "P_a", "P_kv",
    "P_post", "ptq_method", "group_size",
    "loss", "loss_se", "delta_se", "train_loss", "diverged",
    "eval_tokens", "tokens", "wall_time_s", "cpu_time_s", "seed", "n_rows",
)
REQUIRED = ("N", "D", "P_w", "P_a", "loss")          # P_kv, P_post optional (16 / none)
NUMERIC = ("known_E", "N", "params_total", "D", "P_w", "P_a", "P_kv", "P_post", "loss",
           "loss_se", "delta_se", "train_loss", "diverged", "wall_time_s", "cpu_time_s", "seed")
MAX_RUNS_CSV_BYTES = 64 << 20


def _cell(value: object) -> str:
    """Text of one CSV cell: '' for None/NaN, shortest round-trip repr for floats."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def format_rows(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return buf.getvalue()


HEADER = ",".join(COLUMNS) + "\n"


class RunLog:
    """Append-only, crash-tolerant runs CSV of one sweep (see module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> pd.DataFrame:
        """Complete runs already logged (creating the file with its header if absent)."""
        if not self.path.exists():
            atomic_write_text(self.path, HEADER)
            return pd.DataFrame(columns=list(COLUMNS))
        text = read_text_bounded(self.path, "runs log", MAX_RUNS_CSV_BYTES)
        header, _, body = text.partition("\n")
        if header + "\n" != HEADER:
            raise InputError(f"{self.path}: exists but is not a runs log of this harness "
                             f"(header {header[:80]!r}...); pass it with --runs to analyse it, "
                             "or choose another --out to run a sweep")
        lines = body.split("\n")
        torn = lines.pop()  # '' when the file ends with a newline
        frame = _parse(HEADER + "\n".join(lines) + ("\n" if lines else ""), self.path)
        counts = frame.groupby("run_id")["run_id"].transform("size")
        complete = frame[counts == frame["n_rows"]]
        if torn or len(complete) < len(frame):
            atomic_write_text(self.path, HEADER + format_rows(complete.to_dict("records")))
        return complete.reset_index(drop=True)

    def append(self, rows: list[dict]) -> None:
        """Append one run's rows in a single write, then flush and fsync."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(format_rows(rows))
            handle.flush()
            os.fsync(handle.fileno())

    def sort(self, order: dict[str, int]) -> None:
        """Rewrite the log atomically with the runs in `order` (run_id -> position) first,
        in that order, then any other runs as they were; a no-op if already so."""
        text = read_text_bounded(self.path, "runs log", MAX_RUNS_CSV_BYTES)
        header, _, body = text.partition("\n")
        lines = body.splitlines(keepends=True)
        ids = [line.split(",", 1)[0] for line in lines]
        rank = [order.get(i, len(order)) for i in ids]
        permutation = sorted(range(len(lines)), key=rank.__getitem__)   # stable
        if permutation != list(range(len(lines))):
            atomic_write_text(self.path, header + "\n" + "".join(lines[i] for i in permutation))

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunLog]:
        """Exclusive lock for the sweep's lifetime (a second sweep on the same log fails)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"{self.path}: another sweep is writing this runs log") from None
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _parse(text: str, path: Path) -> pd.DataFrame:
    """The CSV `text` (read from `path`) as a frame indexed by CSV line number."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype={"run_id": str, "data_fingerprint": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: malformed CSV: {str(exc).strip()}") from None
    frame.index = frame.index + 2   # CSV line numbers (the header is line 1)
    return frame


def read_runs_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a runs CSV (ours or a user's): REQUIRED columns present, numbers
    where numbers belong; the index is the CSV line number. Errors name file, line, column."""
    path = Path(path)
    frame = _parse(read_text_bounded(path, "runs CSV", MAX_RUNS_CSV_BYTES), path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; a runs CSV needs "
                         f"{', '.join(REQUIRED)} (optional P_kv, P_post, known_E, seed, ...)")
    if frame.empty:
        raise InputError(f"{path}: has a header but no runs")
    for column in NUMERIC:
        if column not in frame.columns:
            continue
        raw = frame[column]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna()
        if bad.any():
            line = bad.idxmax()
            raise InputError(f"{path}: line {line}, column {column!r}: {raw[line]!r} is not "
                             "a number")
        frame[column] = num
    if "P_kv" not in frame.columns:
        frame["P_kv"] = 16.0
    diverged = frame["diverged"].fillna(0).astype(bool) if "diverged" in frame.columns \
        else pd.Series(False, index=frame.index)
    checks = (("N", "a positive parameter count"), ("D", "a positive token count"),
              ("P_w", "a positive number of bits"), ("P_a", "a positive number of bits"),
              ("P_kv", "a positive number of bits"))
    for column, expect in checks:
        bad = ~(frame[column] > 0) | ~np.isfinite(frame[column])
        if bad.any():
            line = bad.idxmax()
            raise InputError(f"{path}: line {line}, column {column!r}: "
                             f"{frame.at[line, column]!r}; expected {expect}")
    if "P_post" in frame.columns:
        bad = frame["P_post"].notna() & ~(frame["P_post"] > 0)
        if bad.any():
            line = bad.idxmax()
            raise InputError(f"{path}: line {line}, column 'P_post': "
                             f"{frame.at[line, 'P_post']!r}; expected a positive number of "
                             "bits, or empty for no post-training quantization")
    else:
        frame["P_post"] = np.nan
    bad = ~diverged & (~(frame["loss"] > 0) | ~np.isfinite(frame["loss"]))
    if bad.any():
        line = bad.idxmax()
        raise InputError(f"{path}: line {line}, column 'loss': {frame.at[line, 'loss']!r}; "
                         "expected a positive finite loss (empty only with diverged=1)")
    frame["diverged"] = diverged.astype(int)
    return frame
