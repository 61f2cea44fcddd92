"""Serving workloads: request arrivals from a seeded Poisson process or from a trace CSV.

A workload is three aligned arrays: arrival time (s, non-decreasing), prompt tokens and
output tokens per request. Poisson arrivals use common random numbers: the arrival
times are `cumsum(Exp(1)) / rate` from one seeded stream, so the same seed at a lower
rate gives the same requests, only further apart (monotone comparisons in sizing).
Token lengths come from a second stream spawned from the same seed, so they do not
depend on the rate either.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.errors import InputError
from precsim.simulator.io import MAX_TOKENS, read_text_bounded

#: accepted header spellings of the three trace columns (first is canonical)
TRACE_COLUMNS = {
    "arrival_s": ("arrival_s", "arrival_time_s", "arrival_time", "timestamp_s"),
    "prompt_tokens": ("prompt_tokens", "input_tokens", "prompt_len"),
    "output_tokens": ("output_tokens", "completion_tokens", "output_len"),
}
MAX_TRACE_BYTES = 256 << 20
#: most requests one simulation holds: the event simulation keeps every request's record,
#: about 5 kB each (100,000 requests: 5 s and 0.5 GB measured on a 2-core host, see
#: docs/inputs.md), so a million would need gigabytes
MAX_REQUESTS = 100_000
#: latest arrival time a run may reach: float64 seconds resolve 0.1 us up to 1e9 s (31
#: years); a rate that spreads the requests further would round latencies to zero
MAX_ARRIVAL_S = 1e9


@dataclass(frozen=True)
class Workload:
    """Requests in arrival order: `arrival_s`, `prompt_tokens`, `output_tokens` arrays."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        for name, dtype in (("arrival_s", np.float64), ("prompt_tokens", np.int64),
                            ("output_tokens", np.int64)):
            array = np.array(getattr(self, name), dtype=dtype)  # own copy, then read-only
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        n = len(self.arrival_s)
        if n == 0:
            raise InputError(f"{self.source or 'workload'}: no requests")
        if not (len(self.prompt_tokens) == len(self.output_tokens) == n):
            raise InputError(f"{self.source or 'workload'}: arrival, prompt and output "
                             "arrays have different lengths")
        if n > MAX_REQUESTS:
            raise InputError(f"{self.source or 'workload'}: {n:,} requests; at most "
                             f"{MAX_REQUESTS:,} per simulation (every request's record is "
                             "kept in memory)")

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def max_context_tokens(self) -> int:
        """Longest prompt + output of any request (tokens its KV cache must hold)."""
        return int((self.prompt_tokens + self.output_tokens).max())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"request_id": np.arange(len(self)), "arrival_s": self.arrival_s,
                             "prompt_tokens": self.prompt_tokens,
                             "output_tokens": self.output_tokens})


def _length_spec(spec: int | str | tuple[int, int], what: str) -> tuple[int, int]:
    """`512` or `"512"` → (512, 512); `"256:1024"` or (256, 1024) → uniform on [256, 1024]."""
    if isinstance(spec, tuple):
        lo, hi = spec
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        lo = hi = int(spec)
    else:
        text = str(spec).strip()
        try:
            lo_text, _, hi_text = text.partition(":")
            lo = int(lo_text)
            hi = int(hi_text) if hi_text else lo
        except ValueError:
            raise InputError(f"{what}: expected a token count like 512 or a range "
                             f"like 256:1024, got {spec!r}") from None
    if lo < 1 or hi < lo or hi > MAX_TOKENS:
        raise InputError(f"{what}: token counts must be from 1 to {MAX_TOKENS:,} with low "
                         f"<= high, got {str(spec)[:40]!r}")
    return int(lo), int(hi)


def check_rate(rate_per_s: float, what: str = "rate") -> float:
    """A finite, strictly positive request rate (requests per second)."""
    try:
        rate = float(rate_per_s)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a number of requests per second, "
                         f"got {rate_per_s!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(f"{what}: must be a finite rate > 0 requests/s, got {rate_per_s!r}")
    return rate


def check_span(rate_per_s: float, n_requests: int, what: str = "qps") -> None:
    """Refuse a rate that spreads `n_requests` arrivals past MAX_ARRIVAL_S (expected
    span n / rate), where float64 time would round latencies to zero."""
    span = n_requests / rate_per_s
    if span > MAX_ARRIVAL_S:
        raise InputError(f"{what}: {rate_per_s:g} requests/s spreads {n_requests:,} "
                         f"requests over about {span:.3g} s; at most {MAX_ARRIVAL_S:g} s "
                         "(beyond it float64 time rounds latencies to zero): use a rate "
                         f">= {n_requests / MAX_ARRIVAL_S:.3g} requests/s")


def poisson_workload(rate_per_s: float, n_requests: int, seed: int = 0,
                     prompt_tokens: int | str | tuple[int, int] = 512,
                     output_tokens: int | str | tuple[int, int] = 128) -> Workload:
    """`n_requests` Poisson arrivals at `rate_per_s`: t_i = (E_1 + ... + E_i) / rate, E ~ Exp(1).

    Lengths are fixed or uniform integers on [low, high] (`"256:1024"`).
    """
    rate = check_rate(rate_per_s, "qps")
    if (isinstance(n_requests, bool) or not isinstance(n_requests, (int, np.integer))
            or not 1 <= n_requests <= MAX_REQUESTS):
        raise InputError(f"requests: expected a whole number from 1 to {MAX_REQUESTS:,} "
                         f"(every request's record is kept in memory), got {n_requests!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a whole number >= 0, got {seed!r}")
    n = int(n_requests)
    check_span(rate, n)
    p_lo, p_hi = _length_spec(prompt_tokens, "prompt tokens")
    o_lo, o_hi = _length_spec(output_tokens, "output tokens")
    arrival_stream, length_stream = np.random.SeedSequence(seed).spawn(2)
    arrival_s = np.cumsum(np.random.default_rng(arrival_stream).standard_exponential(n)) / rate
    lengths = np.random.default_rng(length_stream)
    prompts = lengths.integers(p_lo, p_hi, size=n, endpoint=True, dtype=np.int64)
    outputs = lengths.integers(o_lo, o_hi, size=n, endpoint=True, dtype=np.int64)
    return Workload(arrival_s, prompts, outputs,
                    source=f"poisson(qps={rate:g}, n={n}, seed={seed})")


def _find_columns(header: list[str], path: Path) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for canonical, aliases in TRACE_COLUMNS.items():
        hit = next((names.index(a) for a in aliases if a in names), None)
        if hit is None:
            raise InputError(f"{path}: missing column {canonical!r} (also accepted: "
                             f"{', '.join(aliases[1:])}); header is {', '.join(header)}")
        index[canonical] = hit
    return index


def _cell(row: list[str], col: int, name: str, where: str) -> str:
    if col >= len(row) or not row[col].strip():
        raise InputError(f"{where}: missing value in column {name!r}")
    return row[col].strip()


def _token_count(text: str, name: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: column {name!r} is {text!r}, expected a whole "
                         "number of tokens") from None
    if not math.isfinite(value) or value != int(value):
        raise InputError(f"{where}: column {name!r} is {text!r}, expected a whole "
                         "number of tokens")
    if not 1 <= value <= MAX_TOKENS:
        raise InputError(f"{where}: column {name!r} is {text}, expected >= 1 and <= "
                         f"{MAX_TOKENS:,} tokens")
    return int(value)


def read_trace(path: str | os.PathLike) -> Workload:
    """Read a trace CSV with a header naming arrival_s, prompt_tokens, output_tokens.

    Arrival times are seconds (finite, >= 0, non-decreasing); token counts are whole
    numbers >= 1. Every error names the file, the data row (1-based), its line and column.
    """
    path = Path(path)
    content = read_text_bounded(path, "trace CSV file", MAX_TRACE_BYTES)
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    try:
        with io.StringIO(content, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty trace; expected a header row "
                                 "arrival_s,prompt_tokens,output_tokens")
            cols = _find_columns(header, path)
            previous = 0.0
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                where = f"{path}: row {len(arrivals) + 1} (line {reader.line_num})"
                text = _cell(row, cols["arrival_s"], "arrival_s", where)
                try:
                    arrival = float(text)
                except ValueError:
                    raise InputError(f"{where}: column 'arrival_s' is {text!r}, "
                                     "expected seconds") from None
                if not math.isfinite(arrival) or not 0 <= arrival <= MAX_ARRIVAL_S:
                    raise InputError(f"{where}: column 'arrival_s' is {text}, "
                                     f"expected finite seconds >= 0 and <= {MAX_ARRIVAL_S:g}")
                if len(arrivals) >= MAX_REQUESTS:
                    raise InputError(f"{where}: more than {MAX_REQUESTS:,} requests; at most "
                                     f"{MAX_REQUESTS:,} per simulation (every request's "
                                     "record is kept in memory)")
                if arrival < previous:
                    raise InputError(f"{where}: arrival_s {arrival:g} goes backwards "
                                     f"(previous row arrives at {previous:g}); the "
                                     "trace must be sorted by arrival time")
                prompts.append(_token_count(_cell(row, cols["prompt_tokens"],
                                                  "prompt_tokens", where),
                                            "prompt_tokens", where))
                outputs.append(_token_count(_cell(row, cols["output_tokens"],
                                                  "output_tokens", where),
                                            "output_tokens", where))
                arrivals.append(arrival)
                previous = arrival
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None
    if not arrivals:
        raise InputError(f"{path}: trace has a header but no request rows")
    return Workload(np.asarray(arrivals, dtype=np.float64),
                    np.asarray(prompts, dtype=np.int64), np.asarray(outputs, dtype=np.int64),
                    source=str(path))
