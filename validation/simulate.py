"""Simulated time of each measured case, from the simulator's own kernel and phase models.

No cost formula lives here: each case is mapped to the simulator functions that price
the kernels PyTorch launches for it (checked with torch.profiler), with the same shapes
and formats:
- gemm / gemv: `gemm_cost` (weights in main memory, as the harness streams them); the
  bare `torch._int_mm` case with 32-bit output; the plain-PyTorch dequantise-then-matmul
  formats as their element-wise passes (`PASSES`) followed by the bf16 `gemm_cost` on
  the materialised weight (`simulator.dequant.dequant_chain_cost`: the packed weight
  read from main memory, temporaries where they fit); ternary with
  `fused_dequant=False` (the profile's calibrated ternary rule prices its unpack);
- attention: `attention_cost` (prefill causal, K/V fresh; decode: K/V from the cache);
- norm: layer_norm is one kernel (`norm_cost` without the fused residual add);
  PyTorch's CPU rms_norm is a composite of pow, sum, div, add, rsqrt and two muls
  (plus casts to fp32 and back for bf16): its full-size passes and per-row launches;
- elementwise: `elementwise_cost` with the vector-op counts of
  `simulator.models.ACTIVATION_OPS` (minus the gating multiply) for activations, one op
  per element for add / mul; 16-bit data is widened / narrowed (`half_elements`);
- the small transformer: `decode_step_cost` / `prefill_cost`, with PyTorch's composite
  rms_norm for the fused norms and, in w8a8, the eager activation quantisation and
  rescale kernels around each torch._int_mm (`W8A8_EAGER`).
"""
from __future__ import annotations

from precsim.simulator import kernels as sk
from precsim.simulator.cost import decode_step_cost, prefill_cost
from precsim.simulator.dtypes import DTYPE_BITS
from precsim.simulator.hardware import Hardware, as_hardware
from precsim.simulator.models import ACTIVATION_OPS, TransformerConfig
from precsim.simulator.dequant import dequant_chain_cost
from precsim.simulator.roofline import KernelCost
from precsim.validation.formats import FORMATS
from precsim.validation.kernels import KernelCase
from precsim.validation.measure import ModelCase

#: formats whose PyTorch kernel dequantises into a materialised weight before the matmul
UNFUSED = {"w8a16-deq", "w4a16-deq", "ternary"}

#: The element-wise passes of the plain-PyTorch dequantisations (validation.formats),
#: per weight: (bytes read, bytes written, vector ops, 16-bit elements widened or
#: narrowed, elements per weight). Integer ops on uint8 lanes count 8/32 of an op (four
#: per 32-bit lane); a conversion into a float type is 1 op, narrowing to bf16 another.
#: The first pass reads the packed weight from main memory.
PASSES = {
    # workspace.copy_(q): int8 -> fp32 -> bf16; * scale (per row, broadcast), in place
    "w8a16-deq": ((1.0, 2.0, 1.0, 1.0, 1.0), (2.0, 2.0, 1.0, 2.0, 1.0)),
    # packed & 15, packed >> 4 (on N x K/2 bytes), cat, to(bf16), * scale, + zero
    "w4a16-deq": ((1.0, 1.0, 0.25, 0.0, 0.5), (1.0, 1.0, 0.25, 0.0, 0.5),
                  (1.0, 1.0, 0.0, 0.0, 1.0), (1.0, 2.0, 1.0, 1.0, 1.0),
                  (2.0, 2.0, 1.0, 2.0, 1.0), (2.0, 2.0, 1.0, 2.0, 1.0)),
}
#: Bytes per weight of distinct data each call of the chain touches: the packed weight
#: and every workspace tensor (w8a16-deq: int8 q + bf16 workspace; w4a16-deq: packed
#: nibbles 0.5 + lo, hi 0.5 each + codes 1 + bf16 wq, wd 2 each).
FOOTPRINT = {"w8a16-deq": 3.0, "w4a16-deq": 6.5}


#: The eager kernels around torch._int_mm in the w8a8 Linear (validation.formats):
#: per-token activation quantisation and the rescale of the int32 result, which an
#: engine fuses and the simulator's W8A8 GEMM therefore omits. Per element of the
#: input ("in", m x k), the per-token scale ("row", m) or the output ("out", m x n):
#: (axis, bytes read, bytes written, vector ops, 16-bit elements widened / narrowed).
W8A8_EAGER = (
    ("in", 2.0, 2.0, 1.0, 2.0),  # abs
    ("in", 2.0, 0.0, 1.0, 1.0),  # amax over the row
    ("row", 2.0, 4.0, 1.0, 1.0), ("row", 4.0, 4.0, 1.0, 0.0),  # .float(), .clamp(min)
    ("row", 4.0, 4.0, 1.0, 0.0),  # / 127
    ("in", 2.0, 4.0, 1.0, 1.0),  # x / a_scale (bf16 / fp32 -> fp32)
    ("in", 4.0, 4.0, 1.0, 0.0), ("in", 4.0, 4.0, 2.0, 0.0),  # round, clamp
    ("in", 4.0, 1.0, 1.0, 0.0),  # .to(int8)
    ("out", 4.0, 4.0, 1.0, 0.0), ("out", 4.0, 4.0, 1.0, 0.0),  # acc.float(), * a_scale
    ("out", 4.0, 2.0, 1.0, 1.0), ("out", 2.0, 2.0, 1.0, 2.0),  # .to(bf16), * w_scale
)


def _w8a8_eager(hw: Hardware, m: int, k: int, n: int) -> KernelCost:
    """The W8A8_EAGER kernels of one m x k @ k x n w8a8 Linear."""
    size = {"in": float(m * k), "row": float(m), "out": float(m * n)}
    cost = None
    for axis, read, write, ops, half in W8A8_EAGER:
        e = size[axis]
        step = sk.elementwise_cost(hw, e * read, e * write, e * ops, half_elements=e * half)
        cost = step if cost is None else cost + step
    return cost


def model_quant(fmt: str) -> str:
    """The simulator format of the PyTorch transformer in `fmt`: projections and LM head
    in the format, embeddings in the activation type (as validation.transformer)."""
    quant = FORMATS[fmt].quant
    if FORMATS[fmt].act_dtype == "fp32" or quant in ("BF16",):
        return quant
    return f"{quant}@embedding=W16A16"


def simulate_kernel(case: KernelCase, hw: Hardware, hot: bool = False) -> float:
    """Simulated seconds of one kernel case (`hot`: see `kernel_cost`)."""
    return float(kernel_cost(case, hw, hot).time_s)


def kernel_cost(case: KernelCase, hw: Hardware, hot: bool = False) -> KernelCost:
    """The simulator's KernelCost of one kernel case. `hot`: the weights / KV cache sit
    in the nearest level (a tiny case called over and over), else in main memory (the
    harness rotates copies larger than the caches)."""
    d = case.dims
    home = 0 if hot else None
    if case.kind in ("gemm", "gemv"):
        quant = FORMATS[case.fmt].quant
        if case.fmt == "w8a8":
            return sk.gemm_cost(hw, d["m"], d["n"], d["k"], quant, out_bits=32.0,
                                weight_home=home)
        if case.fmt in PASSES:
            return _dequant_then_matmul(hw, case.fmt, d["m"], d["n"], d["k"])
        return sk.gemm_cost(hw, d["m"], d["n"], d["k"], quant, weight_home=home,
                            fused_dequant=case.fmt not in UNFUSED)
    quant = "FP32" if case.fmt == "fp32" else "BF16"
    bits = float(DTYPE_BITS[case.fmt])
    if case.kind.startswith("attention_"):
        decode = case.kind == "attention_decode"
        return sk.attention_cost(hw, d["batch"], d["q_len"], d["kv_len"], d["heads"],
                                 d["heads"], d["head_dim"], quant, kv_from_cache=decode,
                                 causal=not decode, kv_home=home)
    rows, cols = d["rows"], d["cols"]
    elems = rows * cols
    half = elems if bits == 16 else 0.0
    if case.op == "layer_norm":
        return sk.norm_cost(hw, rows, cols, in_bits=bits, out_bits=bits, kind="layernorm",
                            fused_residual=False)
    if case.op == "rms_norm":
        return _composite_rms_norm(hw, rows, cols, bits)
    if case.op in ("add", "mul"):
        return sk.elementwise_cost(hw, 2 * elems * bits / 8.0, elems * bits / 8.0,
                                   1.0 * elems, half_elements=3 * half, kernel=case.op)
    # activations alone: the gated form's count minus the gating multiply
    return sk.elementwise_cost(hw, elems * bits / 8.0, elems * bits / 8.0,
                               (ACTIVATION_OPS[case.op] - 1.0) * elems,
                               half_elements=2 * half, kernel=case.op)


def _composite_rms_norm(hw: Hardware, rows: int, cols: int, bits: float) -> KernelCost:
    """PyTorch CPU rms_norm: [bf16: x.to(fp32)], pow(2), sum (mean), then per row div,
    add eps, rsqrt, then x * rstd, * weight, [bf16: .to(bf16)]; fp32 in between."""
    elems = rows * cols
    full = sk.elementwise_cost(hw, 4.0 * elems, 4.0 * elems, 1.0 * elems).scaled(3.0)
    full = full + sk.elementwise_cost(hw, 4.0 * elems, 4.0 * rows, 1.0 * elems)  # sum
    per_row = sk.elementwise_cost(hw, 4.0 * rows, 4.0 * rows, 1.0 * rows).scaled(3.0)
    cost = full + per_row
    if bits == 16:  # cast in, cast out, and the weight cast
        cost = cost + sk.elementwise_cost(hw, 2.0 * elems, 4.0 * elems, 0.0 * elems,
                                          half_elements=elems)
        cost = cost + sk.elementwise_cost(hw, 4.0 * elems, 2.0 * elems, 0.0 * elems,
                                          half_elements=elems)
        cost = cost + sk.elementwise_cost(hw, 2.0 * cols, 4.0 * cols, 0.0 * cols,
                                          half_elements=cols)
    return cost


def _dequant_then_matmul(hw: Hardware, fmt: str, m: int, n: int, k: int
                         ) -> KernelCost:
    """The element-wise passes of `PASSES[fmt]` over the n x k weight, then the bf16
    GEMM on the materialised weight (`simulator.dequant.dequant_chain_cost`, with the
    chain's footprint FOOTPRINT[fmt] bytes per weight)."""
    return dequant_chain_cost(hw, m, n, k, PASSES[fmt], FOOTPRINT[fmt])


def simulate_model(case: ModelCase, hw: Hardware, model: TransformerConfig) -> float:
    """Seconds of the PyTorch transformer's pass: `decode_step_cost` / `prefill_cost`,
    with the simulator's fused RMSNorms replaced by PyTorch's composite rms_norm (as the
    rms_norm kernel case: 2 per layer over the new tokens, 1 over the last token) and,
    in w8a8, the eager quantisation kernels of every projection and the LM head
    (`W8A8_EAGER`)."""
    quant = model_quant(case.fmt)
    fused = case.fmt not in UNFUSED
    if case.phase == "decode":
        cost = decode_step_cost(hw, model, quant, case.batch, case.length,
                                fused_dequant=fused)
        rows = case.batch
    else:
        cost = prefill_cost(hw, model, quant, case.batch, case.length, fused_dequant=fused)
        rows = case.batch * case.length
    ops = cost.ops
    fused_norms = float(ops.loc[ops["op"].str.endswith("_norm"), "time_s"].sum())
    bits = 32.0 if FORMATS[case.fmt].act_dtype == "fp32" else 16.0
    width = int(model.d_model)
    composite = (2 * int(model.n_layers) * _composite_rms_norm(hw, rows, width, bits).time_s
                 + _composite_rms_norm(hw, case.batch, width, bits).time_s)
    eager = 0.0
    if case.fmt == "w8a8":  # every projection and the LM head (last token only)
        d, hd = int(model.d_model), int(model.d_model) // int(model.n_heads)
        qkv = (int(model.n_heads) + 2 * int(model.n_kv_heads)) * hd
        layer = sum(float(_w8a8_eager(hw, rows, k, n).time_s) for n, k in (
            (qkv, d), (d, int(model.n_heads) * hd), (2 * int(model.d_ff), d),
            (d, int(model.d_ff))))
        eager = int(model.n_layers) * layer + float(
            _w8a8_eager(hw, case.batch, d, int(model.vocab_size)).time_s)
    return float(cost.time_s) - fused_norms + float(composite) + eager


def simulate_cases(cases, profile, model: TransformerConfig) -> dict[str, tuple[float, str]]:
    """{case name: (simulated seconds, bound)} for kernel and model cases on `profile`;
    bound is compute / memory / overhead for kernels, "model" for whole passes."""
    hw = as_hardware(profile)
    out = {}
    for case in cases:
        if isinstance(case, ModelCase):
            out[case.name] = (simulate_model(case, hw, model), "model")
        else:
            cost = kernel_cost(case, hw)
            out[case.name] = (float(cost.time_s), str(cost.bound))
    return out


def case_bounds(cases, profile) -> dict[str, str]:
    """{case name: "memory" / "compute" / "overhead"}: what bounds each kernel on
    `profile` in the simulator; a decode step is memory-bound, a prefill compute-bound.
    It picks the drift reference that corrects the case (validation.rounds)."""
    hw = as_hardware(profile)
    return {c.name: (("memory" if c.phase == "decode" else "compute")
                     if isinstance(c, ModelCase) else str(kernel_cost(c, hw).bound))
            for c in cases}
