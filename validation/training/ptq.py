"""Post-training quantization of the final weights: round-to-nearest (RTN) per group.

Method (the RTN baseline of the GPTQ code base, which Kumar et al. report replicates
their GPTQ results): each row of a linear weight W[out, in] is cut into groups of
`group_size` consecutive input channels; per group, asymmetric min–max scaling
    s = (max − min) / (2^b − 1),  z = round(−min / s),
    q = clamp(round(w / s) + z, 0, 2^b − 1),  ŵ = (q − z) · s
with s and z kept in full precision. It is applied to the weights the trained model
actually uses (its training-format weights q_w(W)); embeddings and LayerNorms are kept.
"""
from __future__ import annotations

import copy

import torch

from precsim.validation.training.model import TinyLM
from precsim.validation.training.numformat import FULL
from precsim.validation.training.quant import quantize

DEFAULT_GROUP_SIZE = 32
PTQ_METHOD = "rtn-asym-minmax"


def rtn_group(weight: torch.Tensor, bits: int,
              group_size: int = DEFAULT_GROUP_SIZE) -> torch.Tensor:
    """Dequantized RTN weight at `bits` with per-group min–max scale and zero point."""
    out_f, in_f = weight.shape
    if in_f % group_size:
        raise ValueError(f"input width {in_f} is not a multiple of group size {group_size}")
    w = weight.reshape(out_f, in_f // group_size, group_size)
    lo = w.amin(dim=-1, keepdim=True).clamp(max=0.0)
    hi = w.amax(dim=-1, keepdim=True).clamp(min=0.0)
    levels = 2 ** bits - 1
    scale = ((hi - lo) / levels).clamp_min(1e-12)
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(w / scale) + zero, 0, levels)
    return ((q - zero) * scale).reshape(out_f, in_f)


@torch.no_grad()
def post_train_quantize(model: TinyLM, bits: int, group_size: int = DEFAULT_GROUP_SIZE) -> TinyLM:
    """A copy of `model` whose block linears hold RTN(q_w(W)) and no longer fake-quantize
    weights; activation and KV formats stay those of training."""
    ptq = copy.deepcopy(model)
    for layer in ptq.quant_linears():
        used = quantize(layer.weight, layer.w_fmt, 0)
        layer.weight.copy_(rtn_group(used, bits, group_size))
        layer.w_fmt = FULL
    return ptq
