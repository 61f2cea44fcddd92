"""Fake quantization with a straight-through estimator (Kumar et al. 2024, §3 set-up).

q(x) = s · round_F(x / s), s = absmax(x) / max_value(F), absmax taken per output channel
for weights (rows of a [out, in] matrix) and per tensor for activations and the KV cache.
round_F rounds to nearest-even on the grid of format F (see `numformat`). The forward pass
sees q(x); the backward pass sees the identity (STE): x + (q(x) − x).detach().
"""
from __future__ import annotations

import torch

from precsim.validation.training.numformat import NumberFormat

_TINY = 1e-12


def _absmax(x: torch.Tensor, channel_dim: int | None) -> torch.Tensor:
    if channel_dim is None:
        return x.abs().amax()
    dims = [d for d in range(x.dim()) if d != channel_dim % x.dim()]
    return x.abs().amax(dim=dims, keepdim=True)


def round_to_format(y: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """Nearest value of `fmt`'s (unscaled) grid, ties to even; saturates at ±max_value."""
    if fmt.kind == "int":
        lo = -(2 ** (fmt.bits - 1))
        return torch.clamp(torch.round(y), lo, 2 ** (fmt.bits - 1) - 1)
    if fmt.kind == "fp":
        # |y| = m · 2^e with m in [0.5, 1): the binade exponent is e − 1 (exact, no log2).
        _, e = torch.frexp(y)
        binade = torch.clamp(e - 1, min=fmt.min_normal_exponent)
        step = torch.pow(2.0, (binade - fmt.man_bits).to(y.dtype))
        q = torch.round(y / step) * step
        return torch.clamp(q, -fmt.max_value, fmt.max_value)
    return y


def quantize(x: torch.Tensor, fmt: NumberFormat, channel_dim: int | None = None) -> torch.Tensor:
    """q(x) with absmax scaling (per channel along `channel_dim`, else per tensor); no STE."""
    if fmt.kind == "none":
        return x
    scale = _absmax(x, channel_dim).clamp_min(_TINY) / fmt.max_value
    return round_to_format(x / scale, fmt) * scale


def fake_quant(x: torch.Tensor, fmt: NumberFormat, channel_dim: int | None = None) -> torch.Tensor:
    """Forward q(x), backward identity (straight-through estimator)."""
    if fmt.kind == "none":
        return x
    with torch.no_grad():
        q = quantize(x.detach(), fmt, channel_dim)
    return x + (q - x).detach()
