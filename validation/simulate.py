"""Simulated time of each measured case, from the simulator's own kernel and phase models.

No cost formula lives here: each case is mapped to the simulator function that prices
the same kernel, with the same shapes and format:
- gemm / gemv: `gemm_cost` (weights in main memory, as the harness streams them); the
  plain-PyTorch dequantise-then-matmul formats with `fused_dequant=False` (a separate
  dequantisation kernel writes the bf16 weight first); the bare `torch._int_mm` case with
  32-bit output;
- attention: `attention_cost` (prefill causal, K/V fresh; decode: K/V from the cache);
- norm: `norm_cost` without the fused residual add; elementwise: `elementwise_cost`
  with the vector-op counts of `simulator.models.ACTIVATION_OPS` (minus the gating
  multiply) for activations, one op per element for add / mul;
- the small transformer: `decode_step_cost` / `prefill_cost`.
"""
from __future__ import annotations

from simulator import kernels as sk
from simulator.cost import decode_step_cost, prefill_cost
from simulator.models import ACTIVATION_OPS, TransformerConfig
from validation.formats import FORMATS
from validation.kernels import KernelCase
from validation.measure import ModelCase

#: formats whose PyTorch kernel dequantises into a materialised weight before the matmul
UNFUSED = {"w8a16-deq", "w4a16-deq", "ternary"}
_BITS = {"fp32": 32.0, "bf16": 16.0}


def model_quant(fmt: str) -> str:
    """The simulator format of the PyTorch transformer in `fmt`: projections and LM head
    in the format, embeddings in the activation type (as validation.transformer)."""
    quant = FORMATS[fmt].quant
    if FORMATS[fmt].act_dtype == "fp32" or quant in ("BF16",):
        return quant
    return f"{quant}@embedding=W16A16"


def simulate_kernel(case: KernelCase, hw: sk.Hardware) -> float:
    """Simulated seconds of one kernel case."""
    return float(kernel_cost(case, hw).time_s)


def kernel_cost(case: KernelCase, hw: sk.Hardware) -> sk.KernelCost:
    """The simulator's KernelCost of one kernel case."""
    d = case.dims
    if case.kind in ("gemm", "gemv"):
        quant = FORMATS[case.fmt].quant
        if case.fmt == "w8a8":
            cost = sk.gemm_cost(hw, d["m"], d["n"], d["k"], quant, out_bits=32.0)
        else:
            cost = sk.gemm_cost(hw, d["m"], d["n"], d["k"], quant,
                                fused_dequant=case.fmt not in UNFUSED)
        return cost
    quant = "FP32" if case.fmt == "fp32" else "BF16"
    bits = _BITS[case.fmt]
    if case.kind.startswith("attention_"):
        decode = case.kind == "attention_decode"
        return sk.attention_cost(hw, d["batch"], d["q_len"], d["kv_len"], d["heads"],
                                 d["heads"], d["head_dim"], quant, kv_from_cache=decode,
                                 causal=not decode)
    rows, cols = d["rows"], d["cols"]
    elems = rows * cols
    if case.kind == "norm":
        kind = "layernorm" if case.op == "layer_norm" else "rmsnorm"
        return sk.norm_cost(hw, rows, cols, in_bits=bits, out_bits=bits, kind=kind,
                            fused_residual=False)
    if case.op in ("add", "mul"):
        read, ops = 2 * elems * bits / 8.0, 1.0 * elems
    else:  # activations alone: the gated form's count minus the gating multiply
        read, ops = elems * bits / 8.0, (ACTIVATION_OPS[case.op] - 1.0) * elems
    return sk.elementwise_cost(hw, read, elems * bits / 8.0, ops)


def simulate_model(case: ModelCase, hw: sk.Hardware, model: TransformerConfig):
    quant = model_quant(case.fmt)
    fused = case.fmt not in UNFUSED
    if case.phase == "decode":
        cost = decode_step_cost(hw, model, quant, case.batch, case.length,
                                fused_dequant=fused)
    else:
        cost = prefill_cost(hw, model, quant, case.batch, case.length, fused_dequant=fused)
    return cost


def simulate_cases(cases, profile, model: TransformerConfig) -> dict[str, tuple[float, str]]:
    """{case name: (simulated seconds, bound)} for kernel and model cases on `profile`;
    bound is compute / memory / overhead for kernels, "model" for whole passes."""
    hw = sk.as_hardware(profile)
    out = {}
    for case in cases:
        if isinstance(case, ModelCase):
            out[case.name] = (float(simulate_model(case, hw, model).time_s), "model")
        else:
            cost = kernel_cost(case, hw)
            out[case.name] = (float(cost.time_s), str(cost.bound))
    return out
