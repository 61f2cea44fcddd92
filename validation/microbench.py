"""Calibration microbenchmarks: memory streams, large GEMMs, tiny ops, dequantisation.

Each microbenchmark is a list of `rounds.Job`s (timed in interleaved rounds with a drift
reference, `validation.rounds`), and a `*_table` function turns their corrected timings
into a pandas DataFrame with one row per measured point, so what the calibrated profile
is derived from can be written out and inspected. Streams, GEMM peaks and tiny ops run
in the first pass only (as before the rounds: a second pass of the 1 GiB streams costs
~10 s for little), the matmul, element-wise and attention cases in every pass. Rates (bandwidths, ops/s) come from
the fastest call (`best_s`), since other processes only slow calls down; `time_s` keeps
the median for reference.

- streams: `x.sum()` (read), `y.copy_(x)` (read + write) and `torch.add(x, x, out=y)`
  (2 reads + 1 write) over buffer sizes growing from inside L1 to well past the last
  cache level;
- GEMMs: large square-ish products per data type (fp32, bf16, int8 via `torch._int_mm`);
- tiny ops: one-element add / sum / 1x1 matmul, whose time is the per-call overhead;
- the shapes of the matmul, element-wise and attention cases `validation.calibrate`
  times through `validation.kernels.build_case` and solves profile fields from
  (STREAM_SHAPES, also for the run-time ternary unpack at one token; OVERLAP_SHAPE;
  weight_only_shape with WEIGHT_ONLY_PEAK_ROWS; LAUNCH_SHAPE; ATTENTION_CASES).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import pandas as pd

from precsim.validation.bench import BenchSettings
from precsim.validation.rounds import CALIBRATION, Job
from precsim.validation.torchenv import load_torch

STREAM_OPS = ("read", "copy", "add")
#: bytes moved per byte of the buffer, per stream op (reads + writes)
STREAM_TRAFFIC = {"read": 1, "copy": 2, "add": 3}


#: Largest main-memory stream buffer (bytes) while the last cache level allows it. Some
#: VMs report their host socket's whole LLC (480 MiB on a 2-core EPYC VM seen here):
#: 8x that is a 3.8 GB buffer, and an `add` stream holds three, which exhausted a
#: 24 GiB machine. Above this bound the main-memory points shrink towards 1.5x and 2x
#: the last level, still past it, so they still measure main memory.
MAX_STREAM_BYTES = 2**30


def main_memory_sizes(last_cache_bytes: float) -> tuple[float, float]:
    """Two main-memory buffer sizes past the last cache level of `last_cache_bytes`:
    4x and 8x it, or (when 8x exceeds MAX_STREAM_BYTES) max(1.5x, bound/2) and
    max(2x, bound)."""
    if 8 * last_cache_bytes <= MAX_STREAM_BYTES:
        return 4 * last_cache_bytes, 8 * last_cache_bytes
    return (max(1.5 * last_cache_bytes, MAX_STREAM_BYTES / 2),
            max(2 * last_cache_bytes, MAX_STREAM_BYTES))


def stream_sizes(cache_bytes: Sequence[float], per_level: int = 2) -> list[int]:
    """Buffer sizes (bytes) spanning every cache level and main memory.

    For each cache level of aggregate capacity C (previous level P): `per_level`
    geometric points between max(4P, C/8) and C/2; the last level from 4P on, one point
    per doubling at least (a VM's share of its host's LLC can be far smaller than the
    C the OS reports: memory_fits.CACHE_RATE_MARGIN finds where its rate falls off); then main
    memory at `main_memory_sizes` of the last level (4x and 8x it, bounded). Sizes are
    multiples of 4 KiB.
    """
    sizes: list[float] = []
    prev = 4096.0
    for i_level, cap in enumerate(cache_bytes):
        last = i_level == len(cache_bytes) - 1
        lo, hi = (4 * prev if last else max(4 * prev, cap / 8)), cap / 2
        if lo > hi:
            lo = hi
        points = max(per_level, math.ceil(math.log2(hi / lo)) + 1) if last else per_level
        for i in range(points):
            frac = i / (points - 1) if points > 1 else 1.0
            sizes.append(lo * (hi / lo) ** frac)
        prev = cap
    sizes += list(main_memory_sizes(prev))
    return sorted({max(4096, int(s) // 4096 * 4096) for s in sizes})


def _stream_call(device: str, n: int, op: str) -> Callable[[], object]:
    torch = load_torch()
    x = torch.full((n,), 0.5, device=device)  # values do not matter; filling is fast
    y = torch.empty_like(x)
    return {"read": lambda: x.sum(), "copy": lambda: y.copy_(x),
            "add": lambda: torch.add(x, x, out=y)}[op]


def stream_jobs(device: str, sizes_bytes: Sequence[int], settings: BenchSettings
                ) -> list[Job]:
    """read / copy / add streams of fp32 buffers of each size (memory-bound jobs)."""
    jobs = []
    for size in sizes_bytes:
        n = max(1, int(size) // 4)
        for op in STREAM_OPS:
            jobs.append(Job(f"stream/{op}/{n * 4}", CALIBRATION, "memory",
                            partial(_stream_call, device, n, op), settings, passes=1,
                            meta={"op": op, "buffer_bytes": n * 4,
                                  "bytes_moved": STREAM_TRAFFIC[op] * n * 4}))
    return jobs


def _repeated_read_call(device: str, n: int, repeat: int) -> Callable[[], object]:
    view = load_torch().rand(n, device=device).expand(repeat, n)
    return lambda: view.sum(dim=0)


def repeated_read_jobs(device: str, sizes_bytes: Sequence[int], settings: BenchSettings,
                       bytes_per_call: int = 2**21) -> list[Job]:
    """Read a small buffer many times in one call: `x.expand(R, n).sum(dim=0)`.

    Buffers that fit the first cache level are read in well under the per-call
    overhead, so one pass cannot resolve their bandwidth; R passes (R*n*4 close to
    `bytes_per_call`) make the call long enough. Op name: "read_repeat"; in-core, so
    corrected by the compute reference.
    """
    jobs = []
    for size in sizes_bytes:
        n = max(1, int(size) // 4)
        repeat = max(1, bytes_per_call // (n * 4))
        jobs.append(Job(f"read_repeat/{n * 4}", CALIBRATION, "compute",
                        partial(_repeated_read_call, device, n, repeat), settings, passes=1,
                        meta={"op": "read_repeat", "buffer_bytes": n * 4,
                              "bytes_moved": repeat * n * 4}))
    return jobs


def stream_table(jobs: Sequence[Job], results) -> pd.DataFrame:
    """One row per stream job with its bandwidth (bytes moved / fastest call)."""
    table = job_table(jobs, results)
    table["bandwidth_bytes_per_s"] = table["bytes_moved"] / table["best_s"]
    return table


def _tiny_call(device: str, name: str) -> Callable[[], object]:
    torch = load_torch()
    x = torch.ones(1, device=device)
    a = torch.ones(1, 1, device=device)
    return {"add_": lambda: x.add_(1.0), "sum": lambda: x.sum(),
            "mm_1x1": lambda: torch.mm(a, a),
            "linear_1x1": lambda: torch.nn.functional.linear(a, a)}[name]


TINY_OPS = ("add_", "sum", "mm_1x1", "linear_1x1")


def tiny_op_jobs(device: str, settings: BenchSettings) -> list[Job]:
    """Per-call overhead: ops on one element (add, sum, 1x1 matmul, 1x1 linear)."""
    return [Job(f"tiny/{name}", CALIBRATION, "overhead", partial(_tiny_call, device, name),
                settings, meta={"op": name}, passes=1)
            for name in TINY_OPS]


#: GEMM calibration shapes (m, n, k) per data type; held-out shapes are elsewhere.
GEMM_SHAPES_QUICK = {"fp32": [(1024, 1024, 1024), (2048, 1024, 2048)],
                     "bf16": [(1024, 1024, 1024), (2048, 1024, 2048)],
                     "int8": [(1024, 1024, 1024), (2048, 1024, 2048)]}
GEMM_SHAPES_FULL = {"fp32": [(1024, 1024, 1024), (2048, 2048, 2048), (1536, 1536, 4096)],
                    "bf16": [(1024, 1024, 1024), (2048, 2048, 2048), (1536, 1536, 4096)],
                    "int8": [(1024, 1024, 1024), (2048, 2048, 2048), (1536, 1536, 4096)]}


def _gemm_call(device: str, dtype: str, m: int, n: int, k: int) -> Callable[[], object]:
    torch = load_torch()
    torch.manual_seed(0)
    if dtype == "int8":
        a = torch.randint(-127, 128, (m, k), dtype=torch.int8, device=device)
        b = torch.randint(-127, 128, (k, n), dtype=torch.int8, device=device)
        return lambda: torch._int_mm(a, b)
    tdt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(m, k, device=device, dtype=tdt)
    b = torch.randn(k, n, device=device, dtype=tdt)
    return lambda: torch.mm(a, b)


def gemm_peak_jobs(device: str, shapes: dict[str, list[tuple[int, int, int]]],
                   settings: BenchSettings) -> list[Job]:
    """Large GEMMs per data type (compute-bound jobs)."""
    return [Job(f"gemm_peak/{dtype}/{m}x{n}x{k}", CALIBRATION, "compute",
                partial(_gemm_call, device, dtype, m, n, k), settings, passes=1,
                meta={"dtype": dtype, "m": m, "n": n, "k": k})
            for dtype, shape_list in shapes.items() for m, n, k in shape_list]


def gemm_peak_table(jobs: Sequence[Job], results) -> pd.DataFrame:
    """Ops/s of each GEMM (2*m*n*k ops per product, fastest call); NaN where it failed."""
    table = job_table(jobs, results)
    table["ops_per_s"] = 2.0 * table["m"] * table["n"] * table["k"] / table["best_s"]
    return table


def job_table(jobs: Sequence[Job], results) -> pd.DataFrame:
    """One row per job: its meta and its corrected timing (rounds.RoundsResult.result)."""
    return pd.DataFrame([{**job.meta, **results.result(job.key)} for job in jobs])


#: one-token matmuls (n, k) whose weight-streaming rate gives each type's
#: stream_fraction, pooled (kernel rates vary +-20% with the shape; a spread of layer-like
#: shapes, none among the held-out ones); formats: fp32, bf16, and w8a8 for int8
STREAM_SHAPES = ((4096, 1024), (1536, 4096), (8192, 2048))
STREAM_FORMATS = {"fp32": "fp32", "bf16": "bf16", "int8": "w8a8"}
#: activation rows of the few-row GEMMs on STREAM_SHAPES that give gemm_stream_fraction
#: (a batch-4 decode step's projections)
GEMM_STREAM_ROWS = 4
#: and the larger row count on the same shapes that gives gemm_stream_wide (a 64-token
#: prefill chunk; the simulator interpolates in log(rows) between the two)
GEMM_STREAM_WIDE_ROWS = 64


#: packed weight formats whose run-time dequantisation is calibrated, and the profile
#: fallback each one informs (int4 / int8 weights run PyTorch's weight-only kernels,
#: calibrated as `weight_only` entries instead: WEIGHT_ONLY_FORMATS)
DEQUANT_FORMATS = {"ternary": "ternary"}
#: plain-PyTorch dequantise-then-matmul chains (validation.formats) timed one-token on
#: STREAM_SHAPES for the passes' overlap of memory and math (`vector.dequant_overlap`)
CHAIN_FORMATS = ("w8a16-deq", "w4a16-deq")
#: weight-only kernels calibrated: format -> weight dtype (profile `weight_only` key)
WEIGHT_ONLY_FORMATS = {"w8a16": "int8", "w4a16": "int4"}
#: rows of the weight-only peak microbenchmark (a compute-bound matmul)
WEIGHT_ONLY_PEAK_ROWS = 128
#: the bf16 matmul whose streaming / math overlap is calibrated (m, n, k): 256 rows, where
#: its math and its weight stream take comparable times (at 64 rows the stream dominates
#: and the overlap traded against the 64-row share, docs/validation.md)
OVERLAP_SHAPE = (256, 4096, 1024)
#: the one-token matmul whose time is each matrix kernel's per-call overhead (n, k),
#: per format, and the profile entry it sets; and the attention case for the rule's
LAUNCH_SHAPE = (128, 128)
LAUNCH_FORMATS = {"fp32": ("compute", "fp32"), "bf16": ("compute", "bf16"),
                  "w8a8": ("compute", "int8"), "w8a16": ("weight_only", "int8"),
                  "w4a16": ("weight_only", "int4")}
LAUNCH_ATTENTION = ("decode", "fp32", 1, 4, 1, 16, 64)
#: attention calibration cases (phase, dtype, batch, heads, q_len, kv_len, head_dim):
#: the fp32 prefills (two lengths) give the rule's peak and output ops, the fp32 decode
#: (K/V streamed from main memory) its stream fraction, the bf16 decode its conversion
#: ops, the bf16 prefills the peak and output ops of the bf16 matrix tiles where the
#: CPU has them (AMX: `attention.tiles`)
ATTENTION_CASES = (("prefill", "fp32", 1, 8, 384, 384, 64),
                   ("prefill", "fp32", 1, 8, 128, 128, 64),
                   ("decode", "fp32", 2, 8, 1, 4096, 64),
                   ("decode", "bf16", 2, 8, 1, 2048, 64),
                   ("prefill", "bf16", 1, 8, 384, 384, 64),
                   ("prefill", "bf16", 1, 8, 128, 128, 64))


def weight_only_shape(quick: bool) -> tuple[int, int]:
    """(n, k) of the weight-only kernels' one-token and WEIGHT_ONLY_PEAK_ROWS-row
    calibration matmuls: an 8-12 M-weight layer."""
    return (2048, 4096) if quick else (3072, 4096)
