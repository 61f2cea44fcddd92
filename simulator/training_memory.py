"""Training memory per device: weights, gradients, optimizer state, activations.

Model states (Rajbhandari et al., "ZeRO", SC 2020, Sec. 3.1, mixed-precision AdamW):
16 bytes per parameter = 2 (16-bit working weights) + 2 (16-bit gradients) + 12 (fp32
master weights, first and second moments). ZeRO stage 1 shards the 12 optimizer bytes
over the data-parallel group, stage 2 also the gradients, stage 3 (FSDP FULL_SHARD) also
the weights, plus the two gathered blocks in flight (one computing, one prefetched).

Activations kept for the backward pass, per token and block, in 16-bit words (the
tensors the backward GEMMs and kernels read; Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models", arXiv 2205.05198, Sec. 4 count the same
tensors for GPT; flash attention keeps only Q, K, V, the output and the row
log-sum-exp, no score matrix). Tensor parallelism shards every one of them by t
(sequence parallelism for the d-wide ones, Korthikanti Sec. 4.2.2):

* none:      2 [norm in, norm out] x 2 norms x d + (q + 2 kv) + q + w_in + d_ff
* selective: norms and the activation function recomputed: 2 d + (q + 2 kv) + q + w_in
* full:      the block's input only (d); the whole block forward runs again.

Pipeline parallelism (1F1B, Narayanan et al. 2021) keeps min(p, m) micro-batches of
the first stage's L/p blocks in flight: at most L blocks of one micro-batch.
"""
from __future__ import annotations

import numpy as np

#: bytes per parameter of mixed-precision AdamW (ZeRO paper, Sec. 3.1)
WEIGHT_BYTES = 2.0
GRAD_BYTES = 2.0
OPTIMIZER_BYTES = 12.0
RECOMPUTE_MODES = ("none", "selective", "full")
ZERO_STAGES = (0, 1, 2, 3)


def activation_words_per_token(model, mode: str):
    """16-bit words kept per token and block for the backward pass (module docstring)."""
    d, q, kv = model.d_model, model.q_dim, model.kv_dim
    if mode == "full":
        return 1.0 * d
    kept = 2.0 * d + (q + 2.0 * kv) + q + model.ffn_in_width
    if mode == "selective":
        return kept
    return kept + 2.0 * d + model.d_ff


def model_state_bytes(n_params_local, zero, dp, block_params_local):
    """(weights, gradients, optimizer) bytes per device for `n_params_local` parameters
    (after tensor and pipeline sharding) under ZeRO `zero` over `dp` devices."""
    zero = np.asarray(zero)
    weights = WEIGHT_BYTES * np.where(zero >= 3, n_params_local / dp
                                      + 2.0 * block_params_local, n_params_local)
    grads = GRAD_BYTES * n_params_local / np.where(zero >= 2, dp, 1.0)
    optim = OPTIMIZER_BYTES * n_params_local / np.where(zero >= 1, dp, 1.0)
    return weights, grads, optim


def memory_per_device(model, mode, seq, micro_batch, tp, pp, n_micro, zero, dp,
                      n_params_local, block_params_local, vocab_shard):
    """Bytes per device: weights, gradients, optimizer, activations (in-flight micro-
    batches x kept words x 2 B, plus the last block's full activations while it is
    recomputed or backpropagated) and the fp32 + bf16 logits of one micro-batch."""
    weights, grads, optim = model_state_bytes(n_params_local, zero, dp, block_params_local)
    tokens = micro_batch * seq
    in_flight = np.minimum(pp, n_micro)
    blocks = model.executed_layers / pp
    kept = activation_words_per_token(model, mode) * 2.0 / tp
    working = activation_words_per_token(model, "none") * 2.0 / tp
    acts = tokens * (in_flight * blocks * kept + working)
    logits = tokens * vocab_shard * 6.0
    return {"weights": weights, "gradients": grads, "optimizer": optim,
            "activations": acts, "logits": logits,
            "total": weights + grads + optim + acts + logits}


def largest_micro_batch(model, mode, seq, tp, pp, n_micro, zero, dp, n_params_local,
                        block_params_local, vocab_shard, capacity):
    """The largest whole micro-batch (sequences) whose memory fits `capacity` (0: none);
    memory is affine in the micro-batch, so one division."""
    fixed = memory_per_device(model, mode, seq, 0.0, tp, pp, n_micro, zero, dp,
                              n_params_local, block_params_local, vocab_shard)["total"]
    per_seq = memory_per_device(model, mode, seq, 1.0, tp, pp, n_micro, zero, dp,
                                n_params_local, block_params_local, vocab_shard)["total"] \
        - fixed
    return np.maximum(np.floor((capacity - fixed) / per_seq), 0.0)
