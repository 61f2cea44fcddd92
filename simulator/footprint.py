"""Memory footprint of a request: stored weight bytes per layer group, the KV cache and the
peak live activations of a prefill block (simulator.cost's totals and placement; the
parallel and serving models). What depends on the model and format alone is memoised per
(model, format) object pair (`ops.object_memo`): a request only multiplies it by its sizes.
"""
from __future__ import annotations

import numpy as np

from precsim.simulator.models import TransformerConfig
from precsim.simulator.ops import object_memo
from precsim.simulator.quant import as_quant, quant_attr, stream_bits
from precsim.simulator.roofline import add_all


#: weight_bytes per (model, format) object pair with scalar entries (`ops.object_memo`).
_WEIGHT_BYTES: dict = {}


def weight_bytes(model: TransformerConfig, quant) -> dict:
    """Stored weight bytes per layer group (with group / per-channel scales).

    A tied LM head shares the embedding table when both use the same format; with
    different formats both copies are stored. Memoised per (model, format) object pair
    where every entry is a scalar (a new dict each call).
    """
    quant = as_quant(quant)
    return dict(object_memo(_WEIGHT_BYTES, (model, quant), lambda: _weight_bytes(model, quant)))


#: weight_total per (model, format) object pair with a scalar total (`ops.object_memo`).
_WEIGHT_TOTALS: dict = {}


def weight_total(model: TransformerConfig, quant):
    """All stored weight bytes: the entries of `weight_bytes` added in order (memoised
    as `weight_bytes` is)."""
    quant = as_quant(quant)
    return object_memo(_WEIGHT_TOTALS, (model, quant), lambda: {
        "total": numpy_scalar(add_all(weight_bytes(model, quant).values()))})["total"]


def _weight_bytes(model: TransformerConfig, quant) -> dict:
    """`weight_bytes` of a parsed format, computed."""

    def per(group, attr):
        return quant_attr(quant, lambda q: getattr(q.for_group(group), attr))

    d, v = model.d_model, model.vocab_size
    attn = model.n_layers * (model.attn_params_per_layer * per("attn", "effective_weight_bits")
                             + (model.q_dim + 2 * model.kv_dim + d)
                             * per("attn", "channel_scale_bits")) / 8.0
    mlp = (model.mlp_params * per("mlp", "effective_weight_bits")
           + model.mlp_out_channels * per("mlp", "channel_scale_bits")) / 8.0
    emb = v * (d * per("embedding", "effective_weight_bits")
               + per("embedding", "channel_scale_bits")) / 8.0
    head = v * (d * per("lm_head", "effective_weight_bits")
                + per("lm_head", "channel_scale_bits")) / 8.0
    if model.tied_embeddings:
        same = quant_attr(quant, lambda q: q.for_group("embedding") == q.for_group("lm_head"))
        head = np.where(np.asarray(same, dtype=bool), 0.0, head)
    other = model.n_params_norms_biases * stream_bits(quant) / 8.0
    out = {"embedding": emb, "attn": attn, "mlp": mlp, "lm_head": head, "norms": other}
    return {k: (val[()] if isinstance(val, np.ndarray) and val.ndim == 0 else val)
            for k, val in out.items()}


#: What `kv_cache_bytes` and `activation_bytes` take from the model and format alone, per
#: (model, format) object pair with scalar entries (`ops.object_memo`).
_FOOTPRINT: dict = {}


def _footprint_terms(model: TransformerConfig, quant) -> dict:
    """K/V elements per token, effective KV bits, stream bytes per element and a block's
    widest activation row in elements (2 d_model + widest GEMM output) of a parsed format,
    memoised per object pair: a request only multiplies them by its sizes."""
    def compute() -> dict:
        widest = np.maximum(model.q_dim + 2 * model.kv_dim, model.ffn_in_width)
        return {"kv_elements": model.kv_elements_per_token(),
                "kv_bits": quant_attr(quant, lambda q: q.effective_kv_bits),
                "stream_bytes": stream_bits(quant) / 8.0,
                "row_width": 2 * model.d_model + widest}
    return object_memo(_FOOTPRINT, (model, quant), compute)


def kv_cache_bytes(model: TransformerConfig, quant, batch, tokens):
    """K and V of `tokens` positions (capped by a sliding window) for `batch` sequences at
    effective KV bits: batch x positions x K/V elements per token x bits / 8."""
    terms = _footprint_terms(model, as_quant(quant))
    return batch * model.cached_positions(tokens) * terms["kv_elements"] * terms["kv_bits"] / 8.0


def activation_bytes(model: TransformerConfig, quant, batch, prompt_len, flash: bool = True):
    """Peak live activations of a prefill block: residual + normalised input + the widest
    GEMM output, the fp32 logits of the last positions and, unfused, two score matrices."""
    terms = _footprint_terms(model, as_quant(quant))
    sb = terms["stream_bytes"]
    m = batch * prompt_len
    peak = m * sb * terms["row_width"] + batch * model.vocab_size * 4.0
    if not flash:
        peak = peak + 2 * batch * model.n_heads * prompt_len ** 2 * sb
    return peak


def numpy_scalar(x):
    """`x` as `np.asarray(x)[()]` gives it: a numpy scalar for a number or 0-d array, else
    the array."""
    if isinstance(x, np.generic):
        return x  # a numpy scalar already (np.asarray(x)[()] is x's value and type)
    if type(x) is float:
        return np.float64(x)  # np.asarray(x)[()]
    arr = np.asarray(x)
    return arr[()] if arr.ndim == 0 else arr
