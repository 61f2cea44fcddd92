"""Transformer shapes: built-in models, Hugging Face config.json import, a parametric family.

Built-ins carry the values of each model's published config.json (the Hugging Face hub
repository named in `source`). `model_for_params(N)` maps a non-embedding parameter
count N (as in the precision scaling laws) to a Llama-style shape; it accepts numpy
arrays, and the returned config then has float-array fields that broadcast through the
cost model.

Parameter counts (Kaplan et al. 2020, arXiv 2001.08361, sec. 2.1): N counts the weight
matrices of attention and MLP; embeddings, norms and biases are not in N.
"""
from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.io import (MAX_JSON_BYTES, is_file_reference, load_json_bounded,
                                  read_text_bounded)
from precsim.simulator.model_zoo import BUILTIN_CONFIGS

#: Vector ops per output element of the MLP activation (gated: act(gate) * up),
#: counting one exp / erf / tanh evaluation as 2 ops (a short polynomial plus range
#: reduction on CPU vector units; an SFU op plus fix-ups on GPUs):
#: silu(x) = x / (1 + exp(-x)): negate, exp (2), add, divide -> 5, then * up -> 6;
#: gelu (erf form) = 0.5 x (1 + erf(x / sqrt 2)): scale, erf (2), fma, scale -> 5, +1;
#: gelu tanh form: x^2, fma, scale, tanh (2), fma, scale -> 7, +1; relu^2 (BitNet):
#: max, square (+ * up) -> 3. Checked on a 2-core x86 host (PyTorch 2.13, fp32, in
#: cache): silu, gelu and layer_norm (5 ops, `kernels.norm_cost`) take 95-105 ps per
#: element, within 10% of each other, as these counts say.
ACTIVATION_OPS = {"silu": 6.0, "gelu": 6.0, "gelu_new": 8.0, "gelu_pytorch_tanh": 8.0,
                  "relu": 2.0, "relu2": 3.0}


@dataclass(frozen=True, eq=False)
class TransformerConfig:
    """A decoder-only transformer. Numeric fields may be numpy arrays (parametric sweeps).

    `n_layers` counts stored (unique) blocks; with MobileLLM-style immediate block-wise
    weight sharing (Liu et al., arXiv 2402.14905) each block runs `block_repeat` times in
    a row, so `n_layers * block_repeat` blocks execute and keep their own KV cache.
    `sub_norms` adds BitNet's two extra RMSNorms per block (before o_proj and down_proj).
    `sliding_window` (Mistral-7B-v0.1: 4096) bounds the keys each query attends to and
    the KV cache kept per sequence.

    Mixture of experts: `n_moe_layers` of the `n_layers` blocks replace the dense MLP
    (width `d_ff`) by `n_experts` routed experts of width `moe_d_ff`, each token going
    to `experts_per_token` of them, plus always-on shared experts of total width
    `shared_d_ff` and a router (d_model x n_experts). A per-device shard
    (`simulator.parallel`) stores n_experts / `expert_shards` of the experts;
    `moe_imbalance` (>= 1) is the busiest device's routed tokens over the uniform mean.
    `approximations`: what the import could not model exactly, stated (reported with
    every result).
    """

    name: str
    n_layers: float | np.ndarray
    d_model: float | np.ndarray
    n_heads: float | np.ndarray
    n_kv_heads: float | np.ndarray
    d_ff: float | np.ndarray
    vocab_size: float | np.ndarray
    head_dim: float | np.ndarray | None = None
    gated_ffn: bool = True
    activation: str = "silu"
    tied_embeddings: bool = False
    norm: str = "rmsnorm"
    qkv_bias: bool = False
    sub_norms: bool = False
    block_repeat: int = 1
    sliding_window: int | None = None
    max_position_embeddings: int | None = None
    n_experts: float | np.ndarray = 0
    experts_per_token: float = 0
    moe_d_ff: float | np.ndarray | None = None
    shared_d_ff: float | np.ndarray = 0
    n_moe_layers: float | np.ndarray = 0
    expert_shards: float | np.ndarray = 1
    moe_imbalance: float = 1.0
    approximations: tuple = ()
    source: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.size == 0 or not np.all(np.isfinite(value)) or np.any(value <= 0):
                raise InputError(f"model {self.name}: {name} must be positive, got "
                                 f"{getattr(self, name)!r}")
        if self.sliding_window is not None and not self.sliding_window >= 1:
            raise InputError(f"model {self.name}: sliding_window must be at least 1")
        if self.block_repeat < 1 or int(self.block_repeat) != self.block_repeat:
            raise InputError(f"model {self.name}: block_repeat must be a positive integer")
        if self.is_moe:
            e, k = np.asarray(self.n_experts, float), float(self.experts_per_token)
            if not (1 <= k and np.all(k <= e)):
                raise InputError(f"model {self.name}: experts_per_token must be 1 to "
                                 f"n_experts={self.n_experts}, got {self.experts_per_token}")
            if not 1.0 <= self.moe_imbalance <= float(np.max(e)):
                raise InputError(f"model {self.name}: moe_imbalance must be at least 1 "
                                 f"(busiest over mean load) and at most n_experts="
                                 f"{float(np.max(e)):g} (every token on one device), got "
                                 f"{self.moe_imbalance}")
            if np.any(np.asarray(self.n_moe_layers) > np.asarray(self.n_layers)):
                raise InputError(f"model {self.name}: n_moe_layers={self.n_moe_layers} "
                                 f"exceeds n_layers={self.n_layers}")
        if self.activation not in ACTIVATION_OPS:
            raise InputError(f"model {self.name}: activation {self.activation!r} not "
                             f"supported; expected one of {', '.join(ACTIVATION_OPS)}")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise InputError(f"model {self.name}: norm must be rmsnorm or layernorm")
        if self.is_discrete:
            d, h, kv = int(self.d_model), int(self.n_heads), int(self.n_kv_heads)
            if self.head_dim is None and d % h:
                raise InputError(f"model {self.name}: n_heads={h} does not divide "
                                 f"d_model={d}; give head_dim explicitly")
            if h % kv:
                raise InputError(f"model {self.name}: n_kv_heads={kv} does not divide "
                                 f"n_heads={h} (grouped-query attention needs whole groups)")

    @property
    def is_discrete(self) -> bool:
        """All shape fields are scalar integers (a real model, not a continuous sweep)."""
        fields = (self.n_layers, self.d_model, self.n_heads, self.n_kv_heads, self.d_ff,
                  self.vocab_size)
        return all(np.ndim(v) == 0 and float(v) == int(v) for v in fields)

    # ---- derived shapes -------------------------------------------------------------
    @property
    def hd(self):
        """Head dimension (explicit, or d_model / n_heads)."""
        return self.head_dim if self.head_dim is not None else self.d_model / self.n_heads

    @property
    def q_dim(self):
        return self.n_heads * self.hd

    @property
    def kv_dim(self):
        return self.n_kv_heads * self.hd

    @property
    def ffn_in_width(self):
        """Output width of the (fused) gate+up projection."""
        return self.d_ff * (2 if self.gated_ffn else 1)

    @property
    def executed_layers(self):
        return self.n_layers * self.block_repeat

    @property
    def attn_params_per_layer(self):
        """q, k, v, o projection weights: d*(q + 2 kv) + q*d."""
        return self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model

    @property
    def mlp_params_per_layer(self):
        """(gate +) up + down: d*d_ff*(3 if gated else 2)."""
        return self.d_model * self.d_ff * (3 if self.gated_ffn else 2)

    @property
    def is_moe(self) -> bool:
        return bool(np.any(np.asarray(self.n_moe_layers) > 0))

    @property
    def n_dense_layers(self):
        return self.n_layers - self.n_moe_layers

    @property
    def expert_d_ff(self):
        """Width of one routed expert (`moe_d_ff`, else `d_ff` as in Mixtral)."""
        return self.d_ff if self.moe_d_ff is None else self.moe_d_ff

    @property
    def moe_params_per_layer(self):
        """Stored routed experts + shared experts + router of one MoE block."""
        per = 3 if self.gated_ffn else 2
        return (self.n_experts / self.expert_shards * self.d_model * self.expert_d_ff * per
                + self.d_model * self.shared_d_ff * per + self.d_model * self.n_experts)

    @property
    def mlp_params(self):
        """MLP weights of all stored blocks: dense MLPs + MoE blocks (every expert)."""
        return (self.n_dense_layers * self.mlp_params_per_layer
                + self.n_moe_layers * self.moe_params_per_layer)

    @property
    def mlp_out_channels(self):
        """Output channels of every stored MLP matrix (per-channel scales)."""
        dense = self.ffn_in_width + self.d_model
        gate = 2 if self.gated_ffn else 1
        moe = (self.n_experts / self.expert_shards * (gate * self.expert_d_ff + self.d_model)
               + (gate * self.shared_d_ff + self.d_model) * (self.shared_d_ff > 0)
               + self.n_experts)
        return self.n_dense_layers * dense + self.n_moe_layers * moe

    def distinct_experts(self, tokens):
        """Expected distinct experts a pass of `tokens` routed tokens touches in one MoE
        block under uniform top-k routing: E (1 - (1 - k/E)^tokens) (each expert is
        missed by one token with probability 1 - k/E, independently)."""
        e = np.asarray(self.n_experts, dtype=float)
        k = float(self.experts_per_token)
        return e * (1.0 - (1.0 - k / e) ** np.asarray(tokens, dtype=float))

    @property
    def n_params_non_embedding(self):
        """N: attention + MLP weight matrices of the stored blocks (all experts)."""
        return self.n_layers * self.attn_params_per_layer + self.mlp_params

    @property
    def n_params_active_non_embedding(self):
        """Weights one token uses: attention, dense MLPs, k experts + shared + router."""
        per = 3 if self.gated_ffn else 2
        active_moe = self.d_model * per * (self.experts_per_token * self.expert_d_ff
                                           + self.shared_d_ff) + self.d_model * self.n_experts
        return (self.n_layers * self.attn_params_per_layer
                + self.n_dense_layers * self.mlp_params_per_layer
                + self.n_moe_layers * active_moe)

    @property
    def n_params_embedding(self):
        """Embedding table plus an untied LM head."""
        return self.vocab_size * self.d_model * (1 if self.tied_embeddings else 2)

    @property
    def n_params_norms_biases(self):
        per_layer = self.d_model * (2 if self.norm == "rmsnorm" else 4)
        if self.sub_norms:
            per_layer = per_layer + self.d_model + self.d_ff
        if self.qkv_bias:
            per_layer = per_layer + self.q_dim + 2 * self.kv_dim
        return self.n_layers * per_layer + self.d_model

    @property
    def n_params_total(self):
        return self.n_params_non_embedding + self.n_params_embedding + self.n_params_norms_biases

    def kv_elements_per_token(self):
        """K and V elements stored per token over all executed blocks."""
        return 2 * self.executed_layers * self.kv_dim

    def cached_positions(self, tokens):
        """Positions kept in the KV cache for a sequence of `tokens` (sliding window)."""
        return tokens if self.sliding_window is None else np.minimum(tokens,
                                                                     self.sliding_window)

    def summary(self) -> dict:
        def num(v):
            return np.asarray(v).tolist()
        out = {"name": self.name, "n_layers": num(self.n_layers),
                "d_model": num(self.d_model), "n_heads": num(self.n_heads),
                "n_kv_heads": num(self.n_kv_heads), "head_dim": num(self.hd),
                "d_ff": num(self.d_ff), "vocab_size": num(self.vocab_size),
                "gated_ffn": self.gated_ffn, "activation": self.activation,
                "tied_embeddings": self.tied_embeddings, "block_repeat": self.block_repeat,
                "sliding_window": self.sliding_window,
                "n_params_non_embedding": num(self.n_params_non_embedding),
                "n_params_total": num(self.n_params_total), "source": self.source}
        if self.is_moe:
            out.update(n_experts=num(self.n_experts), experts_per_token=self.experts_per_token,
                       moe_d_ff=num(self.expert_d_ff), shared_d_ff=num(self.shared_d_ff),
                       n_moe_layers=num(self.n_moe_layers),
                       n_params_active_non_embedding=num(self.n_params_active_non_embedding))
        if self.approximations:
            out["approximations"] = list(self.approximations)
        return out


# ---- Hugging Face config.json ------------------------------------------------------------

_NON_GATED = {"gpt2", "gpt_neox", "gptj", "opt", "falcon", "bloom", "gpt_bigcode", "phi"}
_LAYERNORM = _NON_GATED
_KEYS = {  # canonical -> accepted spellings, first found wins
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "n_heads": ("num_attention_heads", "n_head"),
    "n_kv_heads": ("num_key_value_heads",),
    "d_ff": ("intermediate_size", "n_inner", "ffn_dim"),
    "vocab_size": ("vocab_size",),
}


#: largest shape integer a config.json may give (2**24: vocabularies and widths of real
#: models are below 2**20); larger ones would overflow 64-bit byte and FLOP counts
MAX_SHAPE = 1 << 24
#: config.json fields PrecSim reads, by the JSON type each must have (checked strictly:
#: the string "false" is not a boolean, "8" and 8.0 are not integers)
_INT_FIELDS = (*(k for keys in _KEYS.values() for k in keys), "head_dim", "sliding_window",
               "max_position_embeddings", "n_positions", "num_local_experts", "num_experts",
               "n_routed_experts", "num_experts_per_tok", "experts_per_token",
               "moe_intermediate_size", "shared_expert_intermediate_size",
               "n_shared_experts", "decoder_sparse_step", "moe_layer_freq",
               "first_k_dense_replace")
_BOOL_FIELDS = ("tie_word_embeddings", "attention_bias", "use_sliding_window")
_STR_FIELDS = ("model_type", "hidden_act", "activation_function")


def _check_field_types(cfg: dict, source: str) -> None:
    """InputError naming the field, its value and the expected type for any field PrecSim
    reads that has the wrong JSON type or an integer outside [0, MAX_SHAPE]."""
    def refuse(key: str, expected: str) -> None:
        raise InputError(f"{source}: field {key} is {str(json.dumps(cfg[key]))[:40]}; "
                         f"expected {expected}")
    for key in _INT_FIELDS:
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_SHAPE):
            refuse(key, f"a whole number from 0 to {MAX_SHAPE:,} (or null)")
    for key in _BOOL_FIELDS:
        if cfg.get(key) is not None and not isinstance(cfg[key], bool):
            refuse(key, "true or false (a JSON boolean, not a string or number)")
    for key in _STR_FIELDS:
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            refuse(key, "a string")
    layers = cfg.get("mlp_only_layers")
    if layers is not None and not (isinstance(layers, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in layers)):
        refuse("mlp_only_layers", "a list of layer indices")


def config_from_hf(cfg: dict, name: str, source: str) -> TransformerConfig:
    """Map a Hugging Face config dictionary to a TransformerConfig."""
    if not isinstance(cfg, dict):
        raise InputError(f"{source}: expected a JSON object of model settings")
    _check_field_types(cfg, source)

    def get(canonical: str, default=None):
        for key in _KEYS[canonical]:
            if cfg.get(key) is not None:
                value = cfg[key]
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise InputError(f"{source}: {key} must be a positive integer, "
                                     f"got {value!r}")
                return value
        if default is not None:
            return default
        raise InputError(f"{source}: missing {' / '.join(_KEYS[canonical])} "
                         "(needed for the model shape)")

    model_type = str(cfg.get("model_type", "llama"))
    d_model = get("d_model")
    n_heads = get("n_heads")
    gated = model_type not in _NON_GATED
    activation = str(cfg.get("hidden_act") or cfg.get("activation_function")
                     or ("silu" if gated else "gelu"))
    if activation not in ACTIVATION_OPS:
        raise InputError(f"{source}: hidden_act {activation!r} not supported; expected one "
                         f"of {', '.join(ACTIVATION_OPS)}")
    head_dim = cfg.get("head_dim")
    if head_dim is not None and (not isinstance(head_dim, int) or head_dim <= 0):
        raise InputError(f"{source}: head_dim must be a positive integer, got {head_dim!r}")
    if head_dim is not None and head_dim * n_heads == d_model:
        head_dim = None
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1):
        raise InputError(f"{source}: sliding_window must be a positive integer or null, "
                         f"got {window!r}")
    n_layers = get("n_layers")
    notes = _unmodelled(cfg, source)
    window, notes = _window_layout(cfg, window, n_layers, notes)
    moe = _moe_fields(cfg, source, n_layers)
    return TransformerConfig(
        name=name, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
        n_kv_heads=get("n_kv_heads", n_heads), d_ff=get("d_ff", 4 * d_model),
        vocab_size=get("vocab_size"), head_dim=head_dim, gated_ffn=gated,
        activation=activation,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", model_type in ("gpt2",))),
        norm="layernorm" if model_type in _LAYERNORM else "rmsnorm",
        qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        sub_norms=model_type == "bitnet", sliding_window=window,
        max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("n_positions"),
        approximations=tuple(notes), source=source, **moe)


#: config.json keys of architectures PrecSim does not price: the import refuses them.
_UNSUPPORTED = {
    "kv_lora_rank": "multi-head latent attention (DeepSeek-V2/V3 MLA)",
    "q_lora_rank": "multi-head latent attention (DeepSeek-V2/V3 MLA)",
    "hybrid_override_pattern": "hybrid state-space (Mamba) layers",
    "layers_block_type": "hybrid state-space (Mamba) layers",
    "mamba_d_state": "state-space (Mamba) layers",
    "ssm_state_size": "state-space (Mamba) layers",
    "linear_attn_config": "linear attention layers",
    "text_config": "a multimodal wrapper (give the text model's config)",
}
#: Keys whose cost effect is left out, as a stated approximation.
_APPROXIMATED = {
    "attention_chunk_size": "chunked local attention modelled as full attention "
                            "(KV cache and attention over-estimated)",
    "num_nextn_predict_layers": "multi-token-prediction layers not served (ignored)",
    "sliding_window_pattern": "interleaved sliding-window layers modelled as full "
                              "attention (KV cache and attention over-estimated)",
}


def _unmodelled(cfg: dict, source: str) -> list[str]:
    """InputError for a cost-changing field PrecSim cannot model; notes for approximated
    ones (never silently ignored)."""
    for key, what in _UNSUPPORTED.items():
        if cfg.get(key) not in (None, 0, [], {}):
            raise InputError(f"{source}: {key}={cfg[key]!r} means {what}, which PrecSim "
                             "does not model; expected a decoder-only transformer with "
                             "multi-head / grouped-query attention")
    return [f"{key}={cfg[key]!r}: {what}" for key, what in _APPROXIMATED.items()
            if cfg.get(key) not in (None, 0, [], {})]


def _window_layout(cfg: dict, window, n_layers: int, notes: list[str]):
    """`layer_types` mixing sliding and full attention (gpt-oss, Gemma 3): modelled as
    full attention on every layer, stated."""
    types = cfg.get("layer_types")
    if not isinstance(types, list) or len(set(types)) <= 1:
        return window, notes
    sliding = sum(1 for t in types if "sliding" in str(t))
    return None, notes + [f"layer_types: {sliding} of {n_layers} layers use a sliding "
                          f"window of {window}; modelled as full attention on all layers "
                          "(KV cache and attention over-estimated)"]


def _moe_fields(cfg: dict, source: str, n_layers: int) -> dict:
    """TransformerConfig MoE fields from the config.json spellings of Mixtral
    (`num_local_experts`), Qwen-MoE (`num_experts`, `moe_intermediate_size`,
    `shared_expert_intermediate_size`, `decoder_sparse_step`, `mlp_only_layers`),
    DeepSeek (`n_routed_experts`, `n_shared_experts`, `first_k_dense_replace`,
    `moe_layer_freq`) and gpt-oss (`num_local_experts`, `experts_per_token`)."""
    experts = next((cfg[k] for k in ("num_local_experts", "num_experts", "n_routed_experts")
                    if cfg.get(k)), 0)
    if not experts:
        return {}
    top_k = cfg.get("num_experts_per_tok") or cfg.get("experts_per_token")
    for key, value in (("num_experts", experts), ("num_experts_per_tok", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{source}: {key} must be a positive integer, got {value!r}")
    moe_ff = cfg.get("moe_intermediate_size")
    shared = cfg.get("shared_expert_intermediate_size") or 0
    if cfg.get("n_shared_experts"):
        shared = int(cfg["n_shared_experts"]) * int(moe_ff or cfg["intermediate_size"])
    step = int(cfg.get("decoder_sparse_step") or cfg.get("moe_layer_freq") or 1)
    dense_first = int(cfg.get("first_k_dense_replace") or 0)
    only_dense = set(cfg.get("mlp_only_layers") or [])
    moe_layers = sum(1 for i in range(n_layers) if i >= dense_first and i not in only_dense
                     and (i + 1) % step == 0)
    return {"n_experts": experts, "experts_per_token": top_k, "moe_d_ff": moe_ff,
            "shared_d_ff": shared, "n_moe_layers": moe_layers}


def load_hf_config(path: str | os.PathLike, name: str | None = None) -> TransformerConfig:
    """Read a local Hugging Face `config.json` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    cfg = load_json_bounded(path, "model config", MAX_JSON_BYTES)
    return config_from_hf(cfg, name or path.parent.name or path.stem, str(path))


# ---- built-ins ----------------------------------------------------------------------------
_BUILTIN_HF = BUILTIN_CONFIGS


def list_models() -> list[str]:
    return list(_BUILTIN_HF)


def get_model(name: str | os.PathLike | TransformerConfig) -> TransformerConfig:
    """A built-in model by name (case-insensitive), a path to a config.json (or its
    folder), or a Hugging Face `org/name` found in the local cache (no network)."""
    if isinstance(name, TransformerConfig):
        return name
    text = str(name)
    key = text.strip().lower()
    if key in _BUILTIN_HF:
        return _builtin_model(key)
    if text.endswith(".json") or Path(os.path.expanduser(text)).exists():
        return load_hf_config(os.path.expanduser(text))
    hint = (f"(built-ins: {', '.join(_BUILTIN_HF)}; or give the path of a Hugging Face "
            "config.json or of a folder holding one)")
    if _HF_NAME.fullmatch(text):
        cached = hf_cache_config(text)
        if cached is not None:
            return load_hf_config(cached, name=text)
        raise InputError(f"model {text!r}: not in the local Hugging Face cache "
                         f"({hf_cache_dir()}/models--{text.replace('/', '--')}); PrecSim "
                         f"does not download {hint}")
    if is_file_reference(text):  # a file, or a model's folder
        return load_hf_config(os.path.expanduser(text))
    close = difflib.get_close_matches(key, list(_BUILTIN_HF), n=3, cutoff=0.4)
    did = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown model {text!r}{did} {hint}")


@functools.lru_cache(maxsize=None)
def _builtin_model(key: str) -> TransformerConfig:
    """A built-in model's config, built once (TransformerConfig is frozen)."""
    source, cfg = _BUILTIN_HF[key]
    return config_from_hf(cfg, key, source)


_HF_NAME = re.compile(r"[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub (huggingface_hub's own resolution order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                      "huggingface")
    return Path(home) / "hub"


def hf_cache_config(repo: str) -> Path | None:
    """config.json of `org/name` in the local cache: the snapshot refs/main names, else
    the newest snapshot holding one; None when absent."""
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / "main"
    if ref.is_file():
        commit = read_text_bounded(ref, "Hugging Face cache ref", 256).strip()
        pinned = root / "snapshots" / commit / "config.json"
        if pinned.is_file():
            return pinned
    found = sorted(root.glob("snapshots/*/config.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


#: Query heads per KV head of the parametric family: grouped-query attention at n_heads/4,
#: as Llama-3-8B (32/8), Mistral-7B (32/8) and BitNet b1.58 2B4T (20/5) in their
#: config.json (simulator/model_zoo.py cites each; Llama-3-70B uses 64/8 = 8).
GQA_RATIO = 4.0


def model_for_params(n_params, *, aspect_ratio: float = 128.0, head_dim: float = 128.0,
                     ffn_ratio: float = 8.0 / 3.0, gqa_ratio: float = GQA_RATIO,
                     vocab_size: int = 32000, round_shape: bool = False,
                     name: str | None = None) -> TransformerConfig:
    """Llama-style shape with non-embedding parameter count N (scalar or array).

    Per block N_layer = c * d^2 with c = 2 + 2/gqa_ratio + 3*ffn_ratio (SwiGLU; 12 for
    MHA with d_ff = 8d/3, 10.5 at the default GQA_RATIO = 4), and depth L = d / aspect_ratio (Kaplan et al. 2020 find loss
    flat for aspect ratios 50-200; Llama-2-7B has 4096/32 = 128). So
    d = (N * aspect_ratio / c)^(1/3), L = d / aspect_ratio, and n_params_non_embedding
    equals N exactly (continuous shapes). `round_shape=True` (scalars only) rounds d to
    whole heads, L to an integer and d_ff to a multiple of 256, for a real model.
    """
    n = np.asarray(n_params, dtype=float)
    if n.size == 0 or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise InputError(f"n_params must be positive and finite, got {n_params!r}")
    for label, value in (("aspect_ratio", aspect_ratio), ("head_dim", head_dim),
                         ("ffn_ratio", ffn_ratio), ("gqa_ratio", gqa_ratio)):
        if not value > 0:
            raise InputError(f"model_for_params: {label} must be positive, got {value!r}")
    c = 2 + 2 / gqa_ratio + 3 * ffn_ratio
    d = np.cbrt(n * aspect_ratio / c)
    layers = d / aspect_ratio
    label = name or ("param-" + (f"{float(n):.3g}" if n.ndim == 0 else f"{n.size}x"))
    if round_shape:
        if n.ndim:
            raise InputError("model_for_params: round_shape needs a scalar n_params")
        heads = max(gqa_ratio, round(float(d) / head_dim / gqa_ratio) * gqa_ratio)
        d_r = int(heads * head_dim)
        d_ff = int(max(256, round(ffn_ratio * d_r / 256) * 256))
        return TransformerConfig(
            name=label, n_layers=max(1, round(float(layers))), d_model=d_r,
            n_heads=int(heads), n_kv_heads=int(heads / gqa_ratio), d_ff=d_ff,
            vocab_size=vocab_size, head_dim=int(head_dim),
            source=f"model_for_params({float(n):.4g}, rounded)")
    scalar = n.ndim == 0
    conv = float if scalar else (lambda a: a)
    heads = d / head_dim
    return TransformerConfig(
        name=label, n_layers=conv(layers), d_model=conv(d), n_heads=conv(heads),
        n_kv_heads=conv(heads / gqa_ratio), d_ff=conv(ffn_ratio * d),
        vocab_size=vocab_size, head_dim=float(head_dim),
        source="model_for_params (continuous)")
