"""What `precsim validate` measures: held-out kernels, the small transformer, timings.

Held-out means never used for calibration: `assert_held_out` checks that no matmul case
has a calibration GEMM's or the dequantisation microbenchmark's shape, and the
calibration streams are separate ops (sum/copy/add on flat buffers).
"""
from __future__ import annotations

from dataclasses import dataclass

from precsim.simulator.models import TransformerConfig
from precsim.validation import microbench
from precsim.validation.bench import FULL, QUICK, TINY, BenchSettings
from precsim.validation.formats import FORMATS
from precsim.validation.kernels import KernelCase, attention_case, matmul_case, rows_cols_case
from precsim.validation.measure import ModelCase
from precsim.validation.transformer import TorchModelShape

#: The small transformer (Llama-style, GQA 4:1, SwiGLU, untied LM head): 78M
#: parameters, 312 MB in fp32 and 20 MB as 2-bit ternary, so in every format its
#: weights exceed half of a 32 MiB last-level cache and stream from main memory.
SMALL_MODEL = TransformerConfig(name="validation-small", n_layers=4, d_model=1024,
                                n_heads=16, n_kv_heads=4, d_ff=2816, vocab_size=32000,
                                source="precsim.validation.plan: small model measured in PyTorch")
#: A tiny one for smoke tests (numbers meaningless, path exercised).
TINY_MODEL = TransformerConfig(name="validation-tiny", n_layers=2, d_model=256, n_heads=4,
                               n_kv_heads=2, d_ff=512, vocab_size=1024,
                               source="precsim.validation.plan: smoke-test model")

MODEL_FORMATS = ("fp32", "bf16", "w8a8", "w8a16", "w4a16", "ternary")


def torch_shape(model: TransformerConfig) -> TorchModelShape:
    """The PyTorch model's shape from the simulator's config (same numbers)."""
    return TorchModelShape(d_model=int(model.d_model), n_layers=int(model.n_layers),
                           n_heads=int(model.n_heads), n_kv_heads=int(model.n_kv_heads),
                           d_ff=int(model.d_ff), vocab_size=int(model.vocab_size))


@dataclass(frozen=True)
class ValidationPlan:
    name: str
    settings: BenchSettings
    calibration_quick: bool
    kernels: tuple[KernelCase, ...]
    model: TransformerConfig
    model_cases: tuple[ModelCase, ...]
    #: weights and KV caches rotate over copies totalling at least this many bytes (more
    #: where the OS reports a larger last-level cache: kernels.rotation_bytes)
    cold_bytes: float
    #: passes over the calibration and held-out cases (validation.rounds)
    rounds: int = 2
    #: rounds per pass, each with its drift reference: about 10 s each in the quick plan
    slices: int = 8


def _matmuls(shapes, formats=tuple(FORMATS)) -> tuple[KernelCase, ...]:
    return tuple(matmul_case(f, m, n, k) for f in formats for (m, n, k) in shapes)


def _others(attn_shapes, rc_shapes, dtypes=("fp32", "bf16")) -> tuple[KernelCase, ...]:
    cases = []
    for dt in dtypes:
        for phase, b, h, q, kv, hd in attn_shapes:
            cases.append(attention_case(phase, dt, b, h, q, kv, hd))
        for kind, op, rows, cols in rc_shapes:
            cases.append(rows_cols_case(kind, op, dt, rows, cols))
    return tuple(cases)


_RC_QUICK = [("norm", "layer_norm", 256, 2048), ("norm", "rms_norm", 64, 4096),
             ("elementwise", "add", 512, 2048), ("elementwise", "mul", 2048, 4096),
             ("elementwise", "silu", 1024, 2816), ("elementwise", "gelu", 256, 4096)]
_ATTN_QUICK = [("prefill", 1, 8, 256, 256, 64), ("decode", 4, 16, 1, 1024, 64)]


def quick_plan() -> ValidationPlan:
    mm = [(1, 3072, 1024), (1, 2816, 2048), (8, 2048, 2048), (256, 1536, 1024)]
    ctx = 256
    return ValidationPlan(
        "quick", QUICK, True, _matmuls(mm) + _others(_ATTN_QUICK, _RC_QUICK), SMALL_MODEL,
        tuple(ModelCase("decode", f, 1, ctx) for f in MODEL_FORMATS)
        + tuple(ModelCase("prefill", f, 1, 64) for f in ("fp32", "bf16")),
        cold_bytes=96 * 2**20)


def full_plan() -> ValidationPlan:
    mm = [(1, 3072, 1024), (1, 2816, 2048), (1, 4096, 3072), (1, 11008, 4096),
          (4, 4096, 4096), (8, 2048, 2048), (32, 4096, 1024), (256, 1536, 1024),
          (512, 2048, 2048), (768, 768, 3072)]
    attn = _ATTN_QUICK + [("prefill", 2, 16, 512, 512, 64), ("prefill", 1, 32, 128, 128, 128),
                          ("decode", 1, 32, 1, 4096, 128), ("decode", 8, 8, 1, 512, 64)]
    rc = _RC_QUICK + [("norm", "layer_norm", 4096, 4096), ("norm", "rms_norm", 1, 4096),
                      ("elementwise", "add", 8192, 4096), ("elementwise", "silu", 64, 11008)]
    return ValidationPlan(
        "full", FULL, False, _matmuls(mm) + _others(attn, rc), SMALL_MODEL,
        tuple(ModelCase("decode", f, b, ctx) for f in MODEL_FORMATS
              for b, ctx in ((1, 256), (4, 1024)))
        + tuple(ModelCase("prefill", f, 1, 128) for f in MODEL_FORMATS),
        cold_bytes=128 * 2**20)


def smoke_plan() -> ValidationPlan:
    """Tiny shapes, tiny model, shortest timings: exercises every path for tests."""
    return ValidationPlan(
        "smoke", TINY, True,
        _matmuls([(1, 256, 256), (8, 256, 512)])
        + _others([("prefill", 1, 2, 32, 32, 32), ("decode", 1, 2, 1, 64, 32)],
                  [("norm", "layer_norm", 8, 256), ("elementwise", "silu", 8, 256)],
                  dtypes=("fp32",)),
        TINY_MODEL,
        (ModelCase("decode", "fp32", 1, 16), ModelCase("decode", "w4a16", 1, 16),
         ModelCase("prefill", "bf16", 1, 16)),
        cold_bytes=0.0, rounds=1, slices=2)


PLANS = {"quick": quick_plan, "full": full_plan, "smoke": smoke_plan}


def calibration_shapes(quick: bool) -> set[tuple[int, int, int]]:
    """Every (m, n, k) timed by calibration (GEMM peaks and dequantisation)."""
    gemms = microbench.GEMM_SHAPES_QUICK if quick else microbench.GEMM_SHAPES_FULL
    shapes = {s for shapes in gemms.values() for s in shapes}
    n, k = microbench.weight_only_shape(quick)
    rows = microbench.WEIGHT_ONLY_PEAK_ROWS
    others = {(m, nn, kk) for nn, kk in microbench.STREAM_SHAPES
              for m in (1, microbench.GEMM_STREAM_ROWS, microbench.GEMM_STREAM_WIDE_ROWS)} | {
        microbench.OVERLAP_SHAPE, (rows, n, k)}
    return shapes | {(1, n, k)} | others


def assert_held_out(plan: ValidationPlan) -> None:
    """Raise if a held-out matmul reuses a calibration shape."""
    used = calibration_shapes(True) | calibration_shapes(False)
    clash = [c.name for c in plan.kernels if c.kind in ("gemm", "gemv")
             and (c.dims["m"], c.dims["n"], c.dims["k"]) in used]
    if clash:
        raise AssertionError(f"plan {plan.name}: held-out cases reuse calibration shapes: "
                             f"{', '.join(clash)}")
