"""The operator graph of one phase of a decoder-only transformer (shapes only, no hardware).

Per block, in execution order (9 kernels; BitNet's two sub-norms make 11):
    attn_norm (fused residual add + norm)  qkv_proj  rope_kv (RoPE + KV-cache append)
    attention  [attn_sub_norm]  o_proj  mlp_norm (fused add + norm)  gate_up_proj  act
    [ffn_sub_norm]  down_proj
and once per forward pass: embedding, final_norm, lm_head (last position of each
sequence only, as serving engines do), sampling. A mixed pass (`build_mixed_ops`,
chunked prefill) runs decode tokens and prompt chunks through one such graph, its
attention in a decode part and a prompt-chunk part.

Activations that feed a GEMM are written by their producer at the GEMM's effective
activation bits (a quantising producer spends QUANTIZE_OPS per element); other tensors
travel at the stream width (16 bits; 32 for fp32 formats). Counts are executions per
forward pass: blocks run n_layers * block_repeat times.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.kernels import QUANTIZE_OPS, SOFTMAX_OPS
from precsim.simulator.models import ACTIVATION_OPS, TransformerConfig
from precsim.simulator.op_template import compile_values, placeholders
from precsim.simulator.quant import QuantFormat, quant_attr, stream_bits

PHASES = ("prefill", "decode")
#: The model fields a sweep may make arrays (`model_add_axis`).
SWEPT_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                "head_dim", "n_experts", "moe_d_ff", "shared_d_ff", "n_moe_layers",
                "expert_shards")
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


def object_memo(store: dict, objects: tuple, compute, extra: tuple = (), size: int = 64):
    """`compute()` memoised in `store` per tuple of (frozen) `objects` and the hashable
    `extra`, keyed on the objects' ids (the `size` most recent, the oldest evicted
    first); a dict is kept only where every value is a scalar (arrays could be edited
    in place). What it returns is the caller's to read, not to change. An entry holds
    its objects, so no other object can take one of their ids while it is kept: a key
    found is the same objects."""
    key = tuple(map(id, objects)) + extra
    hit = store.get(key)
    if hit is not None:
        return hit[1]
    out = compute()
    if not isinstance(out, dict) or all(np.ndim(v) == 0 for v in out.values()):
        while len(store) >= size:
            store.pop(next(iter(store)), None)
        store[key] = (objects, out)
    return out


#: `_constants` per (model, format) object pair (`object_memo`).
_CONSTANTS: dict = {}


def _constants(model: TransformerConfig, quant) -> dict:
    """What a pass's ops take from the model and format alone (bits per group, the
    quantising producers' extra ops, layer counts), memoised per object pair."""
    return object_memo(_CONSTANTS, (model, quant), lambda: _compute_constants(model, quant))


def _compute_constants(model: TransformerConfig, quant) -> dict:
    sb, out_bits, epilogue = _attention_io(model, quant)
    q_mlp = _bits(quant, "mlp", "act_bits") < 16
    sub = model.sub_norms
    kv_quant = quant_attr(quant, lambda f: f.kv_bits) < 16
    is_moe = model.is_moe
    dense = model.n_dense_layers / model.n_layers if is_moe else None
    return dict(
        plain=isinstance(quant, QuantFormat) and not any(
            isinstance(v, np.ndarray) and v.ndim for v in vars(model).values()),
        sb=sb, out_bits=out_bits, epilogue=epilogue,
        a_attn=_bits(quant, "attn", "effective_act_bits"),
        a_mlp=_bits(quant, "mlp", "effective_act_bits"),
        a_head=_bits(quant, "lm_head", "effective_act_bits"),
        q_attn=_bits(quant, "attn", "act_bits") < 16, q_mlp=q_mlp,
        q_head=_bits(quant, "lm_head", "act_bits") < 16,
        kv_bits=quant_attr(quant, lambda f: f.effective_kv_bits),
        rope_ops=ROPE_OPS * (model.q_dim + model.kv_dim)
        + np.where(kv_quant, QUANTIZE_OPS, 0.0) * 2 * model.kv_dim,
        act_ops=ACTIVATION_OPS[model.activation] + (0.0 if sub else
                                                   np.where(q_mlp, QUANTIZE_OPS, 0.0)),
        gate=model.ffn_in_width / model.d_ff, is_moe=is_moe, dense=dense,
        with_dense=not is_moe or bool(np.any(np.asarray(dense) > 0)),
        with_shared=is_moe and bool(np.any(np.asarray(model.shared_d_ff) > 0)))


class OpList(Sequence):
    """The OpSpecs of one pass, and `signature`: what decides the ops' kinds, groups and
    their inputs' dimensions (the model and format, by id, kept in `objects`; the
    phase, the attention flag and the dimensions of the request's inputs), the same
    for every pass built alike (op_eval keeps how it batches such a pass); None where
    the model or format holds arrays. Built from a `template` (the pass's ops with
    placeholders, simulator.op_template) and the request's `values`, an op is made only
    when read (op_eval fills its stacked calls' inputs from the template instead)."""

    signature: tuple | None = None
    objects: tuple = ()

    def __init__(self, specs=(), template: _Template | None = None, values: tuple = ()):
        self.template, self.values = template, values
        self._specs = list(specs) if template is None else [None] * len(template.specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        spec = self._specs[i]
        if spec is None:
            spec = self._specs[i] = self.template.op(i % len(self), self.values)
        return spec

    def __repr__(self) -> str:
        return f"OpList({list(self)!r})"


class _Template:
    """The ops of a pass with placeholders for the request's (batch, q_len, kv_len,
    cache_len) (`specs`), and per op a compiled function giving its params and KV-cache
    append for a request's values (simulator.op_template)."""

    def __init__(self, specs: list):
        self.specs = specs
        self._fills = [compile_values([[(0, (s.params, s.kv_write_bytes))]]) for s in specs]

    def op(self, i: int, values: tuple) -> OpSpec:
        """Op `i` of the request with these values (the op `_graph` builds for them)."""
        [[(params, kv)]] = self._fills[i]((values,))
        return _spec(**{**self.specs[i].__dict__, "params": params, "kv_write_bytes": kv})


#: `_template` per (model, format) object pair, phase and attention flag (`object_memo`).
_TEMPLATES: dict = {}


def new_frozen(cls, **fields):
    """An instance of the frozen dataclass `cls` (no `__post_init__`, no slots) from ALL
    its fields, defaults included: what its `__init__` makes, without the per-field
    frozen setattr (objects built per op or per call of every request)."""
    new = object.__new__(cls)
    new.__dict__.update(fields)
    return new


def _spec(**fields) -> OpSpec:
    """An OpSpec from all its fields (`new_frozen`)."""
    return new_frozen(OpSpec, **fields)


def build_ops(model: TransformerConfig, quant, batch, q_len, kv_len, phase: str,
              flash: bool = True, *, cache_len=None, logit_rows=None) -> list[OpSpec]:
    """The ops of one forward pass: `phase` prefill (q_len new tokens per sequence
    attending to kv_len positions, the first `cache_len` = kv_len - q_len of them cached:
    0 for a whole prompt) or decode (q_len = 1 new token per sequence attending to
    kv_len cached ones). `logit_rows`: sequences that produce a token (default batch; 0
    for a prompt chunk that is not the prompt's last)."""
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    _check_quant(quant)
    if cache_len is None:
        cache_len = kv_len if phase == "decode" else kv_len - q_len
    template = None if logit_rows is not None else object_memo(
        _TEMPLATES, (model, quant), lambda: _template(model, quant, phase, flash),
        (phase, bool(flash)))
    if template is not None:
        ops = OpList(template=template, values=(batch, q_len, kv_len, cache_len))
    else:
        ops = OpList(_graph(model, quant, batch, q_len, kv_len, cache_len, phase, flash,
                            logit_rows))
    if template is not None or _constants(model, quant)["plain"]:
        # every input enters its ops elementwise: their dimensions decide
        ops.signature = (id(model), id(quant), phase, bool(flash), logit_rows is None,
                         *map(ndim, (batch, q_len, kv_len, cache_len, logit_rows)))
        ops.objects = (model, quant)
    return ops


def _template(model: TransformerConfig, quant, phase: str, flash: bool) -> _Template | None:
    """The pass's `_Template`, or None where its graph does more than arithmetic on the
    request's values: a model or format holding arrays (not `plain`), MoE routing."""
    c = _constants(model, quant)
    if not c["plain"] or c["is_moe"]:
        return None
    return _Template(_graph(model, quant, *placeholders(4), phase, flash, None))


def _graph(model: TransformerConfig, quant, batch, q_len, kv_len, cache_len, phase: str,
           flash: bool, logit_rows) -> list[OpSpec]:
    """`build_ops`'s ops, built."""
    c = _constants(model, quant)
    part = _attention_part("attention", model, batch, q_len, kv_len, cache_len, flash,
                           c["out_bits"], c["epilogue"])
    return _pass_ops(model, quant, phase, batch * q_len, logit_rows, [part],
                     batch_rows=batch)


def build_mixed_ops(model: TransformerConfig, quant, decode_batch, decode_context_len,
                    prefill_tokens, prefill_past_len=0.0, last_chunk=True,
                    flash: bool = True, ragged: bool = False, phase: str = "mixed"
                    ) -> list[OpSpec]:
    """One forward pass holding `decode_batch` decode tokens (each attending to
    `decode_context_len` cached positions, its own included) and prompt chunks of
    `prefill_tokens` new tokens after `prefill_past_len` cached ones (the prompt's last
    chunk where `last_chunk`: it produces a token). `ragged`: the last axis of the chunk
    inputs lists the chunks of one pass (0 tokens: none); other inputs broadcast
    against the remaining axes. The GEMMs and element-wise ops run once over all
    b + sum(tokens) rows; lm_head over the sequences that produce a token; attention is
    one kernel in two parts, `attention` (decode) and `prefill_attention` (the chunks;
    named `attention` when there is no decode part), each part placing Q, the output
    and fresh K/V by the pass's totals (`pass_*_bytes`). A scalar 0 `decode_batch` (or
    a scalar 0 `prefill_tokens`, not ragged) leaves that part out."""
    _check_quant(quant)
    c = _constants(model, quant)
    sb, out_bits, epilogue = c["sb"], c["out_bits"], c["epilogue"]
    b = np.asarray(decode_batch, dtype=float)
    tokens = np.asarray(prefill_tokens, dtype=float)
    past = np.asarray(prefill_past_len, dtype=float)
    emits = np.asarray(last_chunk, dtype=float)
    present = (tokens > 0).astype(float)
    total = np.sum(tokens, axis=-1) if ragged else tokens
    logits = np.sum(present * emits, axis=-1) if ragged else present * emits
    with_decode = np.ndim(b) > 0 or b > 0
    with_prefill = ragged or np.ndim(tokens) > 0 or tokens > 0
    m = b + total
    totals = dict(pass_q_bytes=m * model.q_dim * sb / 8.0,
                  pass_out_bytes=m * model.q_dim * out_bits / 8.0,
                  pass_fresh_kv_bytes=total * 2 * model.kv_dim * sb / 8.0)
    parts = []
    if with_decode:
        dec = np.maximum(b, 1.0)  # absent parts are priced at one row and counted 0 times
        ctx = np.where(b > 0, decode_context_len, 1.0)
        parts.append(_attention_part("attention", model, dec, 1.0, ctx, ctx, flash, out_bits,
                                     epilogue, present=(b > 0).astype(float), **totals))
    if with_prefill:
        q = np.maximum(tokens, 1.0)
        first = present * (np.cumsum(present, axis=-1) == 1) if ragged else present
        launched = first * ((add_axis(b) if ragged else b) == 0)  # else with the decodes
        x_model, x_out, x_epi = model, out_bits, epilogue
        if ragged:
            x_model, x_out = model_add_axis(model), add_axis(out_bits)
            x_epi = None if epilogue is None else add_axis(epilogue)
        parts.append(_attention_part("prefill_attention" if with_decode else "attention",
                                     x_model, 1.0, q, past + q, past, flash, x_out, x_epi,
                                     present=present, ragged=ragged,
                                     n_kernels=(1.0 if flash else 3.0) * launched, **totals))
    return _pass_ops(model, quant, phase, m, b + logits, parts)


def _check_quant(quant) -> None:
    if not isinstance(quant, (QuantFormat, np.ndarray)):
        raise TypeError("build_ops needs a parsed QuantFormat (or an object array of them)")


def ndim(x) -> int:
    """`np.ndim(x)`, without converting numbers, None and arrays (0, 0, their ndim)."""
    if isinstance(x, np.ndarray):
        return x.ndim
    if x is None or isinstance(x, (int, float, np.generic)):
        return 0
    return np.ndim(x)


def add_axis(x):
    """`x` with a trailing length-1 axis when it is an array (scalars unchanged)."""
    return np.asarray(x)[..., None] if ndim(x) else x


#: Whether a model object's swept fields are all scalars, per model (`object_memo`).
_SCALAR_MODELS: dict = {}


def model_add_axis(model: TransformerConfig) -> TransformerConfig:
    """The model with a trailing length-1 axis on every swept field (to broadcast
    against a trailing axis of lengths); the model itself where they are scalars (known
    per model object: its fields are frozen)."""
    if object_memo(_SCALAR_MODELS, (model,), lambda: {"scalar": not any(
            ndim(getattr(model, f)) for f in SWEPT_FIELDS)})["scalar"]:
        return model
    changes = {f: add_axis(getattr(model, f)) for f in SWEPT_FIELDS
               if ndim(getattr(model, f))}
    return replace(model, **changes) if changes else model


def _attention_io(model: TransformerConfig, quant):
    """(stream bits, attention output bits, vector ops per output element quantising it
    for o_proj; None with sub-norms, which take the unquantised output)."""
    sb = stream_bits(quant)
    if model.sub_norms:
        return sb, sb, None
    q_attn = _bits(quant, "attn", "act_bits") < 16
    return sb, _bits(quant, "attn", "effective_act_bits"), np.where(q_attn, QUANTIZE_OPS, 0.0)


def _attention_part(name, model, batch, q_len, kv_len, cache_len, flash, out_bits,
                    epilogue, present=None, n_kernels=None, ragged=False, **extra
                    ) -> OpSpec:
    """An attention OpSpec (phase and count set by _pass_ops); `present` (0 or 1)
    multiplies the count (None: once per layer), or weights the ragged axis; `extra`
    params (the pass totals) are passed through."""
    params = dict(batch=batch, q_len=q_len, kv_len=kv_len, n_heads=model.n_heads,
                  n_kv_heads=model.n_kv_heads, head_dim=model.hd,
                  window=model.sliding_window, out_bits=out_bits, flash=flash,
                  epilogue_ops=0.0 if epilogue is None
                  else batch * q_len * model.q_dim * epilogue, cache_len=cache_len)
    params.update(extra)
    if n_kernels is not None:
        params["n_kernels"] = n_kernels
    if ragged:
        params.update(ragged=True, present=present)
    count = None if present is None or ragged else present
    return _spec(name=name, phase="", group="attn", kind="attention", count=count,
                 per_layer=True, params=params, kv_write_bytes=0.0)


def _pass_ops(model: TransformerConfig, quant, phase: str, m, logit_rows,
              attention: list[OpSpec], batch_rows=None) -> list[OpSpec]:
    """The ops of a pass over `m` token rows with the given attention part(s);
    lm_head and sampling over `logit_rows` (default `batch_rows`)."""
    d, q, kv, ff = model.d_model, model.q_dim, model.kv_dim, model.d_ff
    c = _constants(model, quant)
    sb, a_attn, a_mlp, q_attn, q_mlp = c["sb"], c["a_attn"], c["a_mlp"], c["q_attn"], c["q_mlp"]
    layers = model.executed_layers
    sub = model.sub_norms
    if logit_rows is None:
        head_rows, head_count = batch_rows, 1.0
    else:
        head_rows = np.maximum(logit_rows, 1.0)
        head_count = np.where(np.asarray(logit_rows) > 0, 1.0, 0.0)
    ops: list[OpSpec] = []

    def add(name, group, kind, per_layer=True, kv_write_bytes=0.0, count=None, **params):
        ops.append(_spec(name=name, phase=phase, group=group, kind=kind,
                         count=(layers if count is None else layers * count) if per_layer
                         else (1.0 if count is None else count), per_layer=per_layer,
                         params=params, kv_write_bytes=kv_write_bytes))

    add("embedding", "embedding", "embedding", per_layer=False, tokens=m, d_model=d)
    add("attn_norm", "attn", "norm", rows=m, width=d, in_bits=sb, out_bits=a_attn,
        kind_norm=model.norm, quantize_out=q_attn)
    add("qkv_proj", "attn", "gemm", m=m, n=q + 2 * kv, k=d)
    add("rope_kv", "attn", "elementwise",
        kv_write_bytes=m * 2 * kv * c["kv_bits"] / 8.0,
        read_bytes=m * (q + 2 * kv) * sb / 8.0, write_bytes=m * (q + kv) * sb / 8.0,
        vector_ops=m * c["rope_ops"])
    for part in attention:
        ops.append(_spec(**{**part.__dict__, "phase": phase, "count": layers if part.count
                            is None else layers * part.count}))
    if sub:
        add("attn_sub_norm", "attn", "norm", rows=m, width=q, in_bits=sb, out_bits=a_attn,
            kind_norm=model.norm, quantize_out=q_attn, fused_residual=False)
    add("o_proj", "attn", "gemm", m=m, n=d, k=q)
    add("mlp_norm", "mlp", "norm", rows=m, width=d, in_bits=sb, out_bits=a_mlp,
        kind_norm=model.norm, quantize_out=q_mlp)
    act_ops, gate, dense = c["act_ops"], c["gate"], c["dense"]
    if c["with_dense"]:
        add("gate_up_proj", "mlp", "gemm", count=dense, m=m, n=model.ffn_in_width, k=d)
        add("act", "mlp", "elementwise", count=dense,
            read_bytes=m * model.ffn_in_width * sb / 8.0,
            write_bytes=m * ff * (sb if sub else a_mlp) / 8.0, vector_ops=m * ff * act_ops)
        if sub:
            add("ffn_sub_norm", "mlp", "norm", rows=m, width=ff, in_bits=sb,
                out_bits=a_mlp, kind_norm=model.norm, quantize_out=q_mlp,
                fused_residual=False)
        add("down_proj", "mlp", "gemm", count=dense, m=m, n=d, k=ff)
    if c["is_moe"]:
        _moe_ops(add, model, m, sb, a_mlp, act_ops, gate, c["with_shared"])
    add("final_norm", "lm_head", "norm", per_layer=False, rows=m, width=d, in_bits=sb,
        out_bits=c["a_head"], kind_norm=model.norm, quantize_out=c["q_head"])
    add("lm_head", "lm_head", "gemm", per_layer=False, count=head_count, m=head_rows,
        n=model.vocab_size, k=d, out_bits=32.0)
    add("sampling", "lm_head", "elementwise", per_layer=False, count=head_count,
        read_bytes=head_rows * model.vocab_size * 4.0, write_bytes=head_rows * 4.0,
        vector_ops=head_rows * model.vocab_size * SOFTMAX_OPS)
    return ops


def _moe_ops(add, model: TransformerConfig, m, sb, a_mlp, act_ops, gate, shared) -> None:
    """The MoE half of an MoE block over `m` token rows of one device: router GEMM
    (m x E x d), the grouped expert GEMMs over the experts this device stores that the
    pass touches, E_dev = distinct_experts(m) / expert_shards, each with
    r = imbalance * m k / distinct_experts(m) rows (so E_dev * r = imbalance * m k /
    shards rows in all), priced as one GEMM of r rows against the E_dev experts'
    concatenated weights (weights read once per touched expert, one launch), the
    weighted combine of the k expert outputs per token, and the shared experts.
    `stored_n`: the output width of all the experts the device stores (an engine's
    per-expert tile work, `op_eval._expert_tiles`); `shared`: the model has shared
    experts."""
    d, f = model.d_model, model.expert_d_ff
    share = model.n_moe_layers / model.n_layers
    touched = model.distinct_experts(m)
    e_dev = touched / model.expert_shards
    stored = model.n_experts / model.expert_shards
    rows = model.moe_imbalance * m * model.experts_per_token / touched
    add("router", "mlp", "gemm", count=share, m=m, n=model.n_experts, k=d, out_bits=32.0)
    add("expert_gate_up", "mlp", "gemm", count=share, m=rows, n=e_dev * gate * f, k=d,
        experts=True, stored_n=stored * gate * f)
    add("expert_act", "mlp", "elementwise", count=share,
        read_bytes=rows * e_dev * gate * f * sb / 8.0,
        write_bytes=rows * e_dev * f * a_mlp / 8.0, vector_ops=rows * e_dev * f * act_ops)
    add("expert_down", "mlp", "gemm", count=share, m=rows, n=e_dev * d, k=f,
        experts=True, stored_n=stored * d)
    add("moe_combine", "mlp", "elementwise", count=share,
        read_bytes=rows * e_dev * d * sb / 8.0, write_bytes=m * d * sb / 8.0,
        vector_ops=2.0 * rows * e_dev * d)
    if shared:
        s_ff = model.shared_d_ff
        add("shared_gate_up", "mlp", "gemm", count=share, m=m, n=gate * s_ff, k=d)
        add("shared_act", "mlp", "elementwise", count=share,
            read_bytes=m * gate * s_ff * sb / 8.0, write_bytes=m * s_ff * a_mlp / 8.0,
            vector_ops=m * s_ff * act_ops)
        add("shared_down", "mlp", "gemm", count=share, m=m, n=d, k=s_ff)

