"""Held-out kernel cases measured with PyTorch, mirroring the simulator's kernels.

A `KernelCase` names a kernel kind, a format (weight format for matmuls, element dtype
otherwise) and a shape. `build_case` returns a zero-argument callable running that
kernel once on tensors made up front, so only the kernel is timed.

Kinds: `gemm` (m > 1) and `gemv` (m = 1) in every weight format of
`validation.formats`; `attention_prefill` (causal) and `attention_decode` (one query
against a KV cache) with `scaled_dot_product_attention`; `norm` (layer_norm, rms_norm);
`elementwise` (add, mul, silu, gelu), writing into an output allocated once (PyTorch's
CPU allocator maps a fresh output above 32 MiB on every call, paying a page fault per
4 KiB page — ~8 ms per 32 MiB on the 2-core host — which an engine reusing its buffers
does not pay and the simulator does not model).

Weights (and KV caches) are cycled through copies totalling `cold_bytes`
(`rotation_bytes`: past the last-level cache), so each call streams them from main
memory as a decode step does with a model larger than the caches.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from precsim.validation.bench import BenchSettings
from precsim.validation.formats import FORMATS, Linear
from precsim.validation.rounds import Job
from precsim.validation.torchenv import load_torch

MATMUL_KINDS = ("gemm", "gemv")
OTHER_KINDS = ("attention_prefill", "attention_decode", "norm", "elementwise")


@dataclass(frozen=True)
class KernelCase:
    """One held-out kernel: kind, format/dtype, op (for norm/elementwise) and shape."""

    kind: str
    fmt: str
    shape: tuple[tuple[str, int], ...]
    op: str = ""

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    @property
    def name(self) -> str:
        dims = "x".join(str(v) for _, v in self.shape)
        return f"{self.kind}{'-' + self.op if self.op else ''}/{self.fmt}/{dims}"

    @property
    def shape_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.shape)


def matmul_case(fmt: str, m: int, n: int, k: int) -> KernelCase:
    return KernelCase("gemv" if m == 1 else "gemm", fmt, (("m", m), ("n", n), ("k", k)))


def attention_case(phase: str, dtype: str, batch: int, heads: int, q_len: int,
                   kv_len: int, head_dim: int) -> KernelCase:
    return KernelCase(f"attention_{phase}", dtype,
                      (("batch", batch), ("heads", heads), ("q_len", q_len),
                       ("kv_len", kv_len), ("head_dim", head_dim)))


def rows_cols_case(kind: str, op: str, dtype: str, rows: int, cols: int) -> KernelCase:
    return KernelCase(kind, dtype, (("rows", rows), ("cols", cols)), op)


def _cycle(items: list) -> Callable[[], object]:
    it = itertools.cycle(items)
    return lambda: next(it)


#: Bytes the weights of a cold case rotate over: 3x the last cache level the OS reports,
#: at least ROTATION_FLOOR and at most ROTATION_BOUND. A VM can report its host's whole
#: LLC (480 MiB on the 2-core VM) while its streams fall to the main-memory rate from
#: 240 MiB on (docs/validation.md), and 96-128 MiB rotations there were partly served
#: from the cache: fp32 one-token matmuls streamed at 37-49 GB/s against 23 GB/s from
#: main memory. The copies exist only while their case is timed.
ROTATION_FLOOR = 96 * 2**20
ROTATION_BOUND = 512 * 2**20
#: most copies of one case's weights (small packed weights need hundreds to fill a
#: rotation; their workspace is shared, validation.formats.Linear.copy)
MAX_COPIES = 1024


def rotation_bytes(last_cache_bytes: float | None) -> float:
    """Bytes a cold case's weights rotate over (ROTATION_FLOOR..ROTATION_BOUND)."""
    return float(min(max(3.0 * (last_cache_bytes or 0.0), ROTATION_FLOOR), ROTATION_BOUND))


def reference_stream_bytes(last_cache_bytes: float | None) -> int:
    """Bytes of the rounds' main-memory drift reference (rounds.reference_kernels): half
    the cold rotation, at least 64 MiB. A fixed 64 MiB sat at the edge of the Xeon VM's
    cache share (33 MB streamed at the cache rate, 65 MB at the main-memory rate): with a
    busy loop on the other core its time flipped between the two, 15 of 16 rounds lay
    beyond 20% of the median, and the correction doubled or halved memory-bound cases."""
    return int(max(64 * 2**20, rotation_bytes(last_cache_bytes) / 2)) // 4096 * 4096


def _copies(bytes_each: float, cold_bytes: float | None) -> int:
    if not cold_bytes:
        return 1
    return int(min(MAX_COPIES, max(1, math.ceil(cold_bytes / max(bytes_each, 1.0)))))


def build_case(case: KernelCase, device: str, cold_bytes: float | None = None,
               seed: int = 0) -> Callable[[], object]:
    """A callable running `case` once; weights rotate over copies totalling >= cold_bytes."""
    torch = load_torch()
    torch.manual_seed(seed)
    d = case.dims
    if case.kind in MATMUL_KINDS:
        if case.fmt not in FORMATS:
            raise KeyError(f"unknown weight format {case.fmt!r}")
        m, n, k = d["m"], d["n"], d["k"]
        first = Linear(case.fmt, torch.randn(n, k) * 0.05, device)
        lins = [first] + [first.copy()
                          for _ in range(_copies(first.weight_bytes, cold_bytes) - 1)]
        if case.fmt == "w8a8":  # the int8 x int8 kernel alone: activations already int8
            x = torch.randint(-127, 128, (m, k), dtype=torch.int8, device=device)
            weights = _cycle([lin.int8_weight_t for lin in lins])
            return lambda: torch._int_mm(x, weights())
        x = torch.randn(m, k, device=device).to(first.act_dtype)
        nxt = _cycle(lins)
        return lambda: nxt()(x)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[case.fmt]
    if case.kind.startswith("attention_"):
        b, h, q, kv, hd = d["batch"], d["heads"], d["q_len"], d["kv_len"], d["head_dim"]
        sdpa = torch.nn.functional.scaled_dot_product_attention
        query = torch.randn(b, h, q, hd, device=device, dtype=dtype)
        cache_bytes = 2 * b * h * kv * hd * query.element_size()
        caches = [(torch.randn(b, h, kv, hd, device=device, dtype=dtype),
                   torch.randn(b, h, kv, hd, device=device, dtype=dtype))
                  for _ in range(_copies(cache_bytes, cold_bytes))]
        nxt = _cycle(caches)
        causal = case.kind == "attention_prefill"

        def attend():
            key, value = nxt()
            return sdpa(query, key, value, is_causal=causal)
        return attend
    rows, cols = d["rows"], d["cols"]
    x = torch.randn(rows, cols, device=device, dtype=dtype)
    y = torch.randn(rows, cols, device=device, dtype=dtype)
    out = torch.empty_like(x)  # outputs go to a buffer allocated once, as engines do
    w = torch.ones(cols, device=device, dtype=dtype)
    fn, aten = torch.nn.functional, torch.ops.aten
    ops: dict[str, Callable[[], object]] = {
        "layer_norm": lambda: fn.layer_norm(x, (cols,), w),
        "rms_norm": lambda: fn.rms_norm(x, (cols,), w),
        "add": lambda: torch.add(x, y, out=out), "mul": lambda: torch.mul(x, y, out=out),
        "silu": lambda: aten.silu.out(x, out=out), "gelu": lambda: aten.gelu.out(x, out=out)}
    if case.op not in ops:
        raise KeyError(f"unknown {case.kind} op {case.op!r} (known: {', '.join(ops)})")
    return ops[case.op]


def case_job(case: KernelCase, group: str, bound: str, device: str,
             settings: BenchSettings, cold_bytes: float | None = None,
             key: str | None = None, meta: Mapping | None = None) -> Job:
    """The case as a `rounds.Job`: fresh tensors (build_case) each time it is timed."""
    return Job(key or case.name, group, bound,
               partial(build_case, case, device, cold_bytes=cold_bytes), settings,
               meta={"case": case.name, **(meta or {})})
