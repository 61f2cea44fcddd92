"""A small Llama-style transformer in plain PyTorch, in any weight format, with a KV cache.

Per layer: RMSNorm, fused QKV projection, scaled_dot_product_attention (causal over
the prompt in prefill; one query against the cache in decode), output projection,
residual add, RMSNorm, fused gate/up projection, SiLU(gate) * up, down projection,
residual add. Then a final RMSNorm and the LM head. Every projection (and the LM
head) runs in the weight format under test through `validation.formats.Linear`;
embeddings, norms, attention and the KV cache are in the activation dtype.

`prefill(batch, prompt_len)` and `decode_step(batch, context_len)` return callables
that run one whole forward pass, for `validation.bench.time_callable`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from precsim.validation.formats import Linear
from precsim.validation.torchenv import load_torch


@dataclass(frozen=True)
class TorchModelShape:
    """The shape of the PyTorch model (taken from the simulator's model config)."""

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class TinyTransformer:
    """Weights in format `fmt`, built deterministically from `seed`."""

    def __init__(self, shape: TorchModelShape, fmt: str, device: str, seed: int = 0):
        torch = load_torch()
        self.torch, self.shape, self.fmt, self.device = torch, shape, fmt, device
        gen = torch.Generator().manual_seed(seed)
        s, hd = shape, shape.head_dim

        def weight(out_f: int, in_f: int):
            return torch.randn(out_f, in_f, generator=gen) / in_f**0.5

        self.layers = []
        for _ in range(s.n_layers):
            self.layers.append({
                "qkv": Linear(fmt, weight((s.n_heads + 2 * s.n_kv_heads) * hd, s.d_model),
                              device),
                "o": Linear(fmt, weight(s.d_model, s.n_heads * hd), device),
                "gate_up": Linear(fmt, weight(2 * s.d_ff, s.d_model), device),
                "down": Linear(fmt, weight(s.d_model, s.d_ff), device)})
        self.lm_head = Linear(fmt, weight(s.vocab_size, s.d_model), device)
        self.dtype = self.lm_head.act_dtype
        self.embed = (torch.randn(s.vocab_size, s.d_model, generator=gen)
                      .to(device=device, dtype=self.dtype))
        self.norm_w = torch.ones(s.d_model, device=device, dtype=self.dtype)

    @property
    def weight_bytes(self) -> int:
        linears = [lin for layer in self.layers for lin in layer.values()] + [self.lm_head]
        return sum(lin.weight_bytes for lin in linears)

    def _kv_cache(self, batch: int, length: int):
        torch, s = self.torch, self.shape
        return [(torch.zeros(batch, s.n_kv_heads, length, s.head_dim, device=self.device,
                             dtype=self.dtype),
                 torch.zeros(batch, s.n_kv_heads, length, s.head_dim, device=self.device,
                             dtype=self.dtype)) for _ in self.layers]

    def _forward(self, tokens, cache, start: int):
        """Tokens (batch, t) at positions start..start+t-1; writes K/V into `cache`."""
        torch, s = self.torch, self.shape
        fn = torch.nn.functional
        b, t = tokens.shape
        hd, end = s.head_dim, start + tokens.shape[1]
        gqa = s.n_kv_heads != s.n_heads
        x = self.embed[tokens]
        for layer, (k_cache, v_cache) in zip(self.layers, cache):
            h = fn.rms_norm(x, (s.d_model,), self.norm_w)
            qkv = layer["qkv"](h).view(b, t, s.n_heads + 2 * s.n_kv_heads, hd)
            q, k, v = qkv.split([s.n_heads, s.n_kv_heads, s.n_kv_heads], dim=2)
            k_cache[:, :, start:end] = k.transpose(1, 2)
            v_cache[:, :, start:end] = v.transpose(1, 2)
            attn = fn.scaled_dot_product_attention(
                q.transpose(1, 2), k_cache[:, :, :end], v_cache[:, :, :end],
                is_causal=t > 1, enable_gqa=gqa)
            x = x + layer["o"](attn.transpose(1, 2).reshape(b, t, s.n_heads * hd))
            h = fn.rms_norm(x, (s.d_model,), self.norm_w)
            gate, up = layer["gate_up"](h).chunk(2, dim=-1)
            x = x + layer["down"](fn.silu(gate) * up)
        x = fn.rms_norm(x[:, -1:], (s.d_model,), self.norm_w)
        return self.lm_head(x)

    def prefill(self, batch: int, prompt_len: int) -> Callable[[], object]:
        torch = self.torch
        tokens = torch.randint(0, self.shape.vocab_size, (batch, prompt_len),
                               device=self.device)
        cache = self._kv_cache(batch, prompt_len)
        return lambda: self._forward(tokens, cache, 0)

    def decode_step(self, batch: int, context_len: int) -> Callable[[], object]:
        """One new token per sequence after `context_len` cached positions."""
        torch = self.torch
        token = torch.randint(0, self.shape.vocab_size, (batch, 1), device=self.device)
        cache = self._kv_cache(batch, context_len + 1)
        for k_cache, v_cache in cache:  # a filled cache (values do not change timing)
            k_cache.normal_()
            v_cache.normal_()
        return lambda: self._forward(token, cache, context_len)
