"""The operator graph of one phase of a decoder-only transformer (shapes only, no hardware).

Per block, in execution order (9 kernels; BitNet's two sub-norms make 11):
    attn_norm (fused residual add + norm)  qkv_proj  rope_kv (RoPE + KV-cache append)
    attention  [attn_sub_norm]  o_proj  mlp_norm (fused add + norm)  gate_up_proj  act
    [ffn_sub_norm]  down_proj
and once per forward pass: embedding, final_norm, lm_head (last position of each
sequence only, as serving engines do), sampling.

Activations that feed a GEMM are written by their producer at the GEMM's effective
activation bits (a quantising producer spends QUANTIZE_OPS per element); other tensors
travel at the stream width (16 bits; 32 for fp32 formats). Counts are executions per
forward pass: blocks run n_layers * block_repeat times.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.errors import InputError
from simulator.kernels import QUANTIZE_OPS, SOFTMAX_OPS, quant_attr, stream_bits
from simulator.models import ACTIVATION_OPS, TransformerConfig
from simulator.quant import QuantFormat

PHASES = ("prefill", "decode")
#: Vector ops per rotated element of RoPE (two multiplies and an add).
ROPE_OPS = 3.0


@dataclass(frozen=True, eq=False)
class OpSpec:
    """One operator of the graph: which kernel model prices it and with what shapes.

    kind: gemm | attention | norm | elementwise | embedding. `per_layer` ops run once per
    executed block (`count` = n_layers * block_repeat), the rest once per pass.
    `params` are the keyword arguments of the kernel function (simulator.kernels).
    `kv_write_bytes` (rope_kv only) is the KV-cache append, placed where the cache lives.
    """

    name: str
    phase: str
    group: str
    kind: str
    count: object
    per_layer: bool
    params: dict = field(default_factory=dict)
    kv_write_bytes: object = 0.0

    def shape(self) -> str:
        """Readable shape; a swept dimension shows as min..max."""
        p = {k: _fmt(v) for k, v in self.params.items()}
        if self.kind == "gemm":
            return f"m={p['m']} n={p['n']} k={p['k']}"
        if self.kind == "attention":
            return (f"b={p['batch']} q={p['q_len']} kv={p['kv_len']} "
                    f"heads={p['n_heads']}/{p['n_kv_heads']} d={p['head_dim']}")
        if self.kind == "norm":
            return f"{p['rows']}x{p['width']}"
        if self.kind == "embedding":
            return f"{p['tokens']} rows x {p['d_model']}"
        return f"read {p['read_bytes']} B, write {p['write_bytes']} B"


def _fmt(value) -> str:
    if isinstance(value, (str, bool)):
        return str(value)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0 or arr.min() == arr.max():
        return f"{arr.reshape(-1)[0]:.4g}"
    return f"{arr.min():.4g}..{arr.max():.4g}"


def _bits(quant, group: str, attr: str):
    return quant_attr(quant, lambda q: getattr(q.for_group(group), attr))


def build_ops(model: TransformerConfig, quant, batch, q_len, kv_len, phase: str,
              flash: bool = True) -> list[OpSpec]:
    """The ops of one forward pass: `phase` prefill (q_len = kv_len = prompt length) or
    decode (q_len = 1 new token per sequence attending to kv_len cached ones)."""
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if not isinstance(quant, (QuantFormat, np.ndarray)):
        raise TypeError("build_ops needs a parsed QuantFormat (or an object array of them)")
    m = batch * q_len
    d, q, kv, ff = model.d_model, model.q_dim, model.kv_dim, model.d_ff
    sb = stream_bits(quant)
    a_attn = _bits(quant, "attn", "effective_act_bits")
    a_mlp = _bits(quant, "mlp", "effective_act_bits")
    a_head = _bits(quant, "lm_head", "effective_act_bits")
    q_attn = _bits(quant, "attn", "act_bits") < 16
    q_mlp = _bits(quant, "mlp", "act_bits") < 16
    kv_bits = quant_attr(quant, lambda f: f.effective_kv_bits)
    kv_quant = quant_attr(quant, lambda f: f.kv_bits) < 16
    layers = model.executed_layers
    sub = model.sub_norms
    ops: list[OpSpec] = []

    def add(name, group, kind, per_layer=True, kv_write_bytes=0.0, **params):
        ops.append(OpSpec(name=name, phase=phase, group=group, kind=kind,
                          count=layers if per_layer else 1.0, per_layer=per_layer,
                          params=params, kv_write_bytes=kv_write_bytes))

    add("embedding", "embedding", "embedding", per_layer=False, tokens=m, d_model=d)
    add("attn_norm", "attn", "norm", rows=m, width=d, in_bits=sb, out_bits=a_attn,
        kind_norm=model.norm, quantize_out=q_attn)
    add("qkv_proj", "attn", "gemm", m=m, n=q + 2 * kv, k=d)
    add("rope_kv", "attn", "elementwise",
        kv_write_bytes=m * 2 * kv * kv_bits / 8.0,
        read_bytes=m * (q + 2 * kv) * sb / 8.0, write_bytes=m * (q + kv) * sb / 8.0,
        vector_ops=m * (ROPE_OPS * (q + kv) + np.where(kv_quant, QUANTIZE_OPS, 0.0) * 2 * kv))
    add("attention", "attn", "attention", batch=batch, q_len=q_len, kv_len=kv_len,
        n_heads=model.n_heads, n_kv_heads=model.n_kv_heads, head_dim=model.hd,
        window=model.sliding_window, out_bits=sb if sub else a_attn, flash=flash,
        epilogue_ops=0.0 if sub else m * q * np.where(q_attn, QUANTIZE_OPS, 0.0))
    if sub:
        add("attn_sub_norm", "attn", "norm", rows=m, width=q, in_bits=sb, out_bits=a_attn,
            kind_norm=model.norm, quantize_out=q_attn, fused_residual=False)
    add("o_proj", "attn", "gemm", m=m, n=d, k=q)
    add("mlp_norm", "mlp", "norm", rows=m, width=d, in_bits=sb, out_bits=a_mlp,
        kind_norm=model.norm, quantize_out=q_mlp)
    add("gate_up_proj", "mlp", "gemm", m=m, n=model.ffn_in_width, k=d)
    act_ops = ACTIVATION_OPS[model.activation] + (0.0 if sub else
                                                  np.where(q_mlp, QUANTIZE_OPS, 0.0))
    add("act", "mlp", "elementwise", read_bytes=m * model.ffn_in_width * sb / 8.0,
        write_bytes=m * ff * (sb if sub else a_mlp) / 8.0, vector_ops=m * ff * act_ops)
    if sub:
        add("ffn_sub_norm", "mlp", "norm", rows=m, width=ff, in_bits=sb, out_bits=a_mlp,
            kind_norm=model.norm, quantize_out=q_mlp, fused_residual=False)
    add("down_proj", "mlp", "gemm", m=m, n=d, k=ff)
    add("final_norm", "lm_head", "norm", per_layer=False, rows=m, width=d, in_bits=sb,
        out_bits=a_head, kind_norm=model.norm,
        quantize_out=_bits(quant, "lm_head", "act_bits") < 16)
    add("lm_head", "lm_head", "gemm", per_layer=False, m=batch, n=model.vocab_size, k=d,
        out_bits=32.0)
    add("sampling", "lm_head", "elementwise", per_layer=False,
        read_bytes=batch * model.vocab_size * 4.0, write_bytes=batch * 4.0,
        vector_ops=batch * model.vocab_size * SOFTMAX_OPS)
    return ops

