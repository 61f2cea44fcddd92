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
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.io import is_file_reference

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
    def n_params_non_embedding(self):
        """N: attention + MLP weight matrices of the stored blocks."""
        return self.n_layers * (self.attn_params_per_layer + self.mlp_params_per_layer)

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
        return {"name": self.name, "n_layers": num(self.n_layers),
                "d_model": num(self.d_model), "n_heads": num(self.n_heads),
                "n_kv_heads": num(self.n_kv_heads), "head_dim": num(self.hd),
                "d_ff": num(self.d_ff), "vocab_size": num(self.vocab_size),
                "gated_ffn": self.gated_ffn, "activation": self.activation,
                "tied_embeddings": self.tied_embeddings, "block_repeat": self.block_repeat,
                "sliding_window": self.sliding_window,
                "n_params_non_embedding": num(self.n_params_non_embedding),
                "n_params_total": num(self.n_params_total), "source": self.source}


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


def config_from_hf(cfg: dict, name: str, source: str) -> TransformerConfig:
    """Map a Hugging Face config dictionary to a TransformerConfig."""
    if not isinstance(cfg, dict):
        raise InputError(f"{source}: expected a JSON object of model settings")

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
    return TransformerConfig(
        name=name, n_layers=get("n_layers"), d_model=d_model, n_heads=n_heads,
        n_kv_heads=get("n_kv_heads", n_heads), d_ff=get("d_ff", 4 * d_model),
        vocab_size=get("vocab_size"), head_dim=head_dim, gated_ffn=gated,
        activation=activation,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", model_type in ("gpt2",))),
        norm="layernorm" if model_type in _LAYERNORM else "rmsnorm",
        qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        sub_norms=model_type == "bitnet", sliding_window=window,
        max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("n_positions"),
        source=source)


def load_hf_config(path: str | os.PathLike, name: str | None = None) -> TransformerConfig:
    """Read a local Hugging Face `config.json` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: model config not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read model config: {exc}") from None
    if len(text) > 1 << 20:
        raise InputError(f"{path}: model config is over 1 MiB; expected a config.json")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno}): {exc.msg}") from None
    return config_from_hf(cfg, name or path.parent.name or path.stem, str(path))


# ---- built-ins ----------------------------------------------------------------------------
# Values copied from each repository's config.json on the Hugging Face hub.
_BUILTIN_HF: dict[str, tuple[str, dict]] = {
    "llama-2-7b": ("huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 11008, "max_position_embeddings": 4096,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
        "tie_word_embeddings": False, "vocab_size": 32000}),
    "llama-3-8b": ("huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 8192,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "tie_word_embeddings": False, "vocab_size": 128256}),
    "llama-3.2-1b": ("huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 2048, "head_dim": 64,
        "intermediate_size": 8192, "max_position_embeddings": 131072,
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "tie_word_embeddings": True, "vocab_size": 128256}),
    "mistral-7b": ("huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json", {
        "model_type": "mistral", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 32768,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "sliding_window": 4096, "tie_word_embeddings": False, "vocab_size": 32000}),
    "qwen2.5-0.5b": ("huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json", {
        "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 896,
        "intermediate_size": 4864, "max_position_embeddings": 32768,
        "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "tie_word_embeddings": True, "vocab_size": 151936}),
    "bitnet-b1.58-2b4t": ("huggingface.co/microsoft/bitnet-b1.58-2B-4T/blob/main/config.json", {
        "model_type": "bitnet", "hidden_act": "relu2", "hidden_size": 2560,
        "intermediate_size": 6912, "max_position_embeddings": 4096,
        "num_attention_heads": 20, "num_hidden_layers": 30, "num_key_value_heads": 5,
        "tie_word_embeddings": True, "vocab_size": 128256}),
}


def list_models() -> list[str]:
    return list(_BUILTIN_HF)


def get_model(name: str | os.PathLike | TransformerConfig) -> TransformerConfig:
    """A built-in model by name (case-insensitive) or a path to a config.json."""
    if isinstance(name, TransformerConfig):
        return name
    text = str(name)
    key = text.strip().lower()
    if key in _BUILTIN_HF:
        source, cfg = _BUILTIN_HF[key]
        return config_from_hf(cfg, key, source)
    if is_file_reference(text) or Path(text).is_dir():  # a file, or a model's folder
        return load_hf_config(os.path.expanduser(text))
    close = difflib.get_close_matches(key, list(_BUILTIN_HF), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown model {text!r}{hint} (built-ins: {', '.join(_BUILTIN_HF)}; "
                     "or give the path of a Hugging Face config.json)")


def model_for_params(n_params, *, aspect_ratio: float = 128.0, head_dim: float = 128.0,
                     ffn_ratio: float = 8.0 / 3.0, gqa_ratio: float = 1.0,
                     vocab_size: int = 32000, round_shape: bool = False,
                     name: str | None = None) -> TransformerConfig:
    """Llama-style shape with non-embedding parameter count N (scalar or array).

    Per block N_layer = c * d^2 with c = 2 + 2/gqa_ratio + 3*ffn_ratio (SwiGLU; 12 for
    MHA with d_ff = 8d/3), and depth L = d / aspect_ratio (Kaplan et al. 2020 find loss
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
