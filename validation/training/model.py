"""Decoder-only transformer (pre-LN, GELU MLP, learned positions, tied embeddings) with
fake-quantized training as in Kumar et al. 2024: every linear layer of the blocks sees
weights at P_w (absmax per output channel) and its input activations at P_a (absmax per
tensor); keys and values are quantized at P_kv (per tensor) before attention. Embeddings,
the tied output head and LayerNorms stay in full precision.

N counts the non-embedding parameters, as the laws do:
    N = L · (4·d² + 2·d·d_ff + 4·d) + 2·d     (qkv 3d², out d², MLP 2·d·d_ff, two LayerNorms)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from precsim.validation.training.numformat import FULL, NumberFormat
from precsim.validation.training.quant import fake_quant


@dataclass(frozen=True)
class ModelShape:
    """Transformer dimensions; `d_ff` defaults to 4·d_model."""

    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    seq_len: int
    d_ff: int = 0

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model

    @property
    def non_embedding_params(self) -> int:
        d = self.d_model
        return self.n_layers * (4 * d * d + 2 * d * self.ff + 4 * d) + 2 * d

    @property
    def embedding_params(self) -> int:
        return (self.vocab_size + self.seq_len) * self.d_model


@dataclass(frozen=True)
class TrainPrecision:
    """Training formats of weights, activations (linear-layer inputs) and keys/values."""

    w: NumberFormat = FULL
    a: NumberFormat = FULL
    kv: NumberFormat = FULL


class QuantLinear(nn.Linear):
    """y = q_a(x) · q_w(W)ᵀ; the formats are attributes so PTQ can swap them."""

    def __init__(self, d_in: int, d_out: int, precision: TrainPrecision):
        super().__init__(d_in, d_out, bias=False)
        self.w_fmt = precision.w
        self.a_fmt = precision.a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quant(x, self.a_fmt), fake_quant(self.weight, self.w_fmt, 0))


class Block(nn.Module):
    def __init__(self, shape: ModelShape, precision: TrainPrecision):
        super().__init__()
        d = shape.d_model
        self.n_heads = shape.n_heads
        self.kv_fmt = precision.kv
        self.ln1 = nn.LayerNorm(d)
        self.qkv = QuantLinear(d, 3 * d, precision)
        self.proj = QuantLinear(d, d, precision)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = QuantLinear(d, shape.ff, precision)
        self.fc2 = QuantLinear(shape.ff, d, precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads)
                   .permute(2, 0, 3, 1, 4))
        k, v = fake_quant(k, self.kv_fmt), fake_quant(v, self.kv_fmt)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    """Token + position embedding, `n_layers` blocks, final LayerNorm, tied output head."""

    def __init__(self, shape: ModelShape, precision: TrainPrecision = TrainPrecision()):
        super().__init__()
        if shape.d_model % shape.n_heads:
            raise ValueError(f"d_model {shape.d_model} not divisible by n_heads {shape.n_heads}")
        self.shape = shape
        self.tok = nn.Embedding(shape.vocab_size, shape.d_model)
        self.pos = nn.Parameter(torch.zeros(shape.seq_len, shape.d_model))
        self.blocks = nn.ModuleList(Block(shape, precision) for _ in range(shape.n_layers))
        self.ln_f = nn.LayerNorm(shape.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():   # GPT-2 scaled init of residual outputs
            if name.endswith(("proj.weight", "fc2.weight")):
                nn.init.normal_(p, std=0.02 / (2 * shape.n_layers) ** 0.5)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        return F.linear(self.ln_f(h), self.tok.weight)

    def quant_linears(self) -> list[QuantLinear]:
        return [m for m in self.modules() if isinstance(m, QuantLinear)]

    def non_embedding_params(self) -> int:
        return sum(p.numel() for n, p in self.named_parameters()
                   if not n.startswith(("tok.", "pos")))
