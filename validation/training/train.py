"""One training run: QAT at (P_w, P_a, P_kv), held-out loss, then PTQ of the final weights.

Optimiser: AdamW (β = 0.9, 0.95; weight decay on matrices only), linear warm-up over
`warmup_frac` of the steps then cosine decay to 10 % of the peak rate, gradient norm
clipped at 1. The schedule always runs to completion for the run's D (Chinchilla
practice: one schedule per token budget). D = steps · batch_size · seq_len.
Held-out loss: mean cross-entropy (nats/token) over fixed evaluation windows shared by
all runs of a data source (common random numbers: differences between runs are not
blurred by evaluation noise), skipping the source's `eval_skip` first targets.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from precsim.validation.training.model import ModelShape, TinyLM, TrainPrecision
from precsim.validation.training.numformat import parse_format
from precsim.validation.training.ptq import PTQ_METHOD, post_train_quantize

_EVAL_BATCH = 64
# Part of every run_id: bump it when a change to the harness alters results, so that a
# resumed sweep never mixes runs made by different versions.
HARNESS_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result; `run_id` hashes it."""

    data: str
    data_fingerprint: str
    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    seq_len: int
    tokens: int                      # requested D; rounded to whole steps
    w_format: str = "none"
    a_format: str = "none"
    kv_format: str = "none"
    seed: int = 0
    batch_size: int = 32
    lr: float = 3e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    post_bits: tuple[int, ...] = ()
    group_size: int = 32
    eval_tokens: int = 32768

    @property
    def shape(self) -> ModelShape:
        return ModelShape(self.d_model, self.n_layers, self.n_heads, self.vocab_size,
                          self.seq_len)

    @property
    def precision(self) -> TrainPrecision:
        return TrainPrecision(parse_format(self.w_format, "weight format"),
                              parse_format(self.a_format, "activation format"),
                              parse_format(self.kv_format, "KV format"))

    @property
    def steps(self) -> int:
        return max(1, round(self.tokens / (self.batch_size * self.seq_len)))

    @property
    def trained_tokens(self) -> int:
        return self.steps * self.batch_size * self.seq_len

    @property
    def ptq_bits(self) -> tuple[int, ...]:
        """Post-training widths below the training weight width (PTQ to P_post >= P_w is void)."""
        return tuple(sorted(b for b in set(self.post_bits) if b < self.precision.w.bits))

    @property
    def n_rows(self) -> int:
        return 1 + len(self.ptq_bits)

    @property
    def run_id(self) -> str:
        blob = json.dumps({**asdict(self), "harness_version": HARNESS_VERSION},
                          sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run torch ops on `threads` intra-op threads, restoring the previous count after."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warm-up to cfg.lr, cosine decay to 0.1·cfg.lr at the last step."""
    warmup = max(1, round(cfg.warmup_frac * cfg.steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _optimizer(model: TinyLM, cfg: RunConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.95))


@torch.no_grad()
def evaluate(model: TinyLM, windows: torch.Tensor, skip: int) -> torch.Tensor:
    """Held-out loss (nats/token) of each window, skipping its first `skip` targets."""
    model.eval()
    per_window = []
    for start in range(0, windows.shape[0], _EVAL_BATCH):
        batch = windows[start: start + _EVAL_BATCH]
        logits = model(batch[:, :-1])
        nll = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        per_window.append(nll[:, skip:].mean(dim=1))
    model.train()
    return torch.cat(per_window).double()


def _standard_error(values: torch.Tensor) -> float:
    return float(values.std() / math.sqrt(values.numel())) if values.numel() > 1 else math.nan


def train_run(cfg: RunConfig, source) -> list[dict]:
    """Train one model and return its rows: no PTQ first, then one per PTQ width."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    torch.set_flush_denormal(True)   # measured: subnormals made a 0.1M-model run 13x slower
    torch.manual_seed(cfg.seed)
    model = TinyLM(cfg.shape, cfg.precision)
    opt = _optimizer(model, cfg)
    windows = torch.from_numpy(source.train_windows(cfg.steps * cfg.batch_size,
                                                    cfg.seq_len + 1, cfg.seed))
    tail = max(1, cfg.steps // 10)
    recent: list[float] = []
    diverged = False
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = windows[step * cfg.batch_size: (step + 1) * cfg.batch_size]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1))
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= cfg.steps - tail:
            recent.append(loss.item())

    n_eval = max(1, cfg.eval_tokens // cfg.seq_len)
    eval_windows = torch.from_numpy(source.eval_windows(n_eval, cfg.seq_len + 1))
    results = []          # (P_post, loss, its SE, SE of the paired difference to no PTQ)
    base = None
    for bits in (None, *cfg.ptq_bits):
        if diverged:
            results.append((bits, math.nan, math.nan, math.nan))
            continue
        evaluated = model if bits is None else post_train_quantize(model, bits, cfg.group_size)
        losses = evaluate(evaluated, eval_windows, source.eval_skip)
        base = losses if bits is None else base
        results.append((bits, float(losses.mean()), _standard_error(losses),
                        math.nan if bits is None else _standard_error(losses - base)))
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0

    prec, shape = cfg.precision, cfg.shape
    common = {
        "run_id": cfg.run_id, "data": cfg.data, "data_fingerprint": cfg.data_fingerprint,
        "known_E": source.known_entropy_nats,
        "N": shape.non_embedding_params, "params_total":
            shape.non_embedding_params + shape.embedding_params,
        "d_model": cfg.d_model, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
        "seq_len": cfg.seq_len, "batch_size": cfg.batch_size, "lr": cfg.lr,
        "D": cfg.trained_tokens, "steps": cfg.steps,
        "data_epochs": source.epochs(cfg.trained_tokens, cfg.seq_len + 1),
        "w_format": prec.w.name, "a_format": prec.a.name, "kv_format": prec.kv.name,
        "P_w": prec.w.bits, "P_a": prec.a.bits, "P_kv": prec.kv.bits,
    }
    eval_tokens_each = n_eval * (cfg.seq_len - source.eval_skip)
    tokens = cfg.trained_tokens + eval_tokens_each * len(results)
    train_loss = float(np.mean(recent)) if recent and not diverged else math.nan
    return [{**common, "P_post": bits, "ptq_method": PTQ_METHOD if bits else "",
             "group_size": cfg.group_size if bits else None,
             "loss": loss, "loss_se": se, "delta_se": delta_se, "train_loss": train_loss,
             "diverged": int(diverged),
             "eval_tokens": eval_tokens_each, "tokens": tokens, "wall_time_s": wall_s,
             "cpu_time_s": cpu_s, "seed": cfg.seed, "n_rows": cfg.n_rows}
            for bits, loss, se, delta_se in results]

