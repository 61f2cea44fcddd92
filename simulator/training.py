"""One training step on real silicon, composed from the kernel models of simulator.kernels.

A step trains on `global_batch` tokens (sequences of `seq`) over `devices` devices laid
out as tensor parallel t x pipeline parallel p x data parallel dp. Each data-parallel
replica runs n_micro = ceil(sequences / dp / micro_batch) micro-batches; per micro-batch
and device (its L/p blocks, every matrix sharded by t; T = micro_batch x seq tokens):

* forward: per block two norms (fused residual add), the QKV / output / FFN-in /
  FFN-out GEMMs, causal flash attention over `seq`, the activation function; the
  embedding gather, the LM head and the cross-entropy over the vocabulary
  (`gemm_cost`, `attention_cost`, `norm_cost`, `elementwise_cost`, `embedding_cost`;
  the cross-entropy as a softmax over fp32 logits);
* backward: for each forward GEMM C[m,n] = A[m,k] W[k,n] the input gradient
  dA = dC W^T (`gemm_cost(m, k, n)`) and the weight gradient dW = A^T dC
  (`gemm_cost(k, n, m)`); flash-attention backward at 2.5x the forward kernel (Dao,
  FlashAttention-2, arXiv 2307.08691, Sec. 3.2 and its benchmark's FLOP count: five
  matmuls against two); element-wise backward at 2x the forward kernel (reads input and
  output gradient, writes the input gradient); gradient accumulation into fp32 (read the
  4 B accumulator and the 2 B gradient, write 4 B, per parameter of the device's
  gradient shard and micro-batch);
* recomputation (simulator.training_memory): selective re-runs the norms and the
  activation function, full the whole block forward;
* the recipe's casts (quantising GEMM operands, amax bookkeeping; `Recipe`);
* optimizer once per step: AdamW on the device's shard, reading fp32 master, both
  moments and the 16-bit gradient (14 B) and writing master, moments and 16-bit
  weights (14 B) per parameter at ADAM_OPS vector ops;
* communication (simulator.collectives, the one collective model): tensor parallel two
  all-reduces of T x d x 2 B per block forward and two backward, on the critical path;
  pipeline sends of the boundary activations; data parallel ZeRO 0-2 one gradient
  all-reduce (reduce-scatter + all-gather) per step, ZeRO 3 per micro-batch two weight
  all-gathers and one gradient reduce-scatter. Data- and pipeline-parallel traffic hides
  under compute by the profile's `interconnect.compute_overlap` (`exposed_time`);
* pipeline bubble: (p - 1) micro-batch slots of the slowest stage, i.e. a share
  (p - 1) / (n_micro + p - 1) of the pipeline (1F1B, Narayanan et al. SC 2021, Sec. 2.2).

GEMMs on training shapes sustain `training.gemm_efficiency.<dtype>` of the profile's
achievable matrix rate (clock under power load, tails, framework gaps): a profile field
with its source, applied by `training_profile`.

MFU convention (PaLM, Chowdhery et al. 2022, App. B; llm-foundry's count): model FLOPs
per token = 6 N + 12 L s q_dim with N the GEMM parameters (blocks + LM head); HFU adds
the recomputed FLOPs. Both are against the profile's dense bf16 peak whatever the
recipe (so recipes compare on one scale; llm-foundry's FP8 rows use the FP8 peak:
divide theirs by 2 on Hopper to compare).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from precsim.simulator.collectives import Topology, collective_time, exposed_time
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import (QUANTIZE_OPS, SOFTMAX_OPS, attention_cost,
                                       elementwise_cost, embedding_cost, gemm_cost,
                                       norm_cost)
from precsim.simulator.models import ACTIVATION_OPS, get_model, model_for_params
from precsim.simulator.power import power_and_energy
from precsim.simulator.quant import parse_quant
from precsim.simulator.roofline import KernelCost
from precsim.simulator.training_memory import (RECOMPUTE_MODES, ZERO_STAGES,
                                               largest_micro_batch, memory_per_device)

#: AdamW vector ops per parameter: two moment updates (4), bias corrections and the
#: square root / division (5), weight decay and the update (3) (Loshchilov & Hutter 2019,
#: Algorithm 2)
ADAM_OPS = 12.0
#: flash-attention backward / forward (FlashAttention-2, arXiv 2307.08691: 5 vs 2 matmuls)
ATTENTION_BACKWARD = 2.5
#: element-wise backward / forward kernel (reads input and output gradient, writes one)
ELEMENTWISE_BACKWARD = 2.0
#: amax bookkeeping of a delayed-scaling cast: one max per element (Transformer Engine)
AMAX_OPS = 1.0
#: element types a recipe's operands need no cast into
_WIDE = ("bf16", "fp16", "fp32")
PHASES = ("forward", "backward", "recompute", "casts", "optimizer", "communication",
          "bubble")


@dataclass(frozen=True)
class Recipe:
    """A precision recipe: the formats of the forward and backward GEMMs and attention,
    what is cast per GEMM, and whether the GEMM types must run natively."""

    name: str
    forward: str
    backward: str
    attention: str = "W16A16"
    cast_backward: bool = False     # backward GEMM operands are cast too (dY)
    weight_reads: float = 1.0       # passes over the 16-bit weights to quantise them
    native_only: bool = False       # refuse profiles that would emulate the GEMM types
    doc: str = ""


_FIXED = {
    "bf16": Recipe("bf16", "W16A16", "W16A16",
                   doc="bf16 mixed precision: bf16 GEMMs and kernels in every pass, fp32 "
                       "master weights and AdamW moments"),
    "fp8": Recipe("fp8", "Wfp8Afp8", "Wfp8Afp8", cast_backward=True, native_only=True,
                  doc="Transformer-Engine style: fp8 GEMMs forward and backward (e5m2 "
                      "gradients run at the e4m3 rate, priced as e4m3), "
                      "per-tensor scales with amax bookkeeping, operands cast (and "
                      "transposed) from bf16; attention, norms and the rest in bf16"),
    "ternary-qat": Recipe("ternary-qat", "W1.58A8", "W16A16", weight_reads=2.0,
                          doc="BitNet b1.58 style: absmean ternary weights (two passes "
                              "over the bf16 master copy) and absmax int8 activations in "
                              "the forward pass, straight-through bf16 backward"),
}
_FAMILIES = {
    "fwdq": "forward-only quantised training (the precision law's runs): weights, "
            "activations and KV cache of the forward pass in FORMAT, quantised from the "
            "bf16 copy each micro-batch (natively where the profile runs the type, else at "
            "the wider type it falls back to), straight-through bf16 backward",
    "native": "a hypothetical engine that runs FORMAT in every pass (forward, both "
              "backward GEMMs and attention); fails where the profile would emulate it",
}
RECIPES = tuple(_FIXED) + tuple(f"{k}:FORMAT" for k in _FAMILIES)


def get_recipe(text: str | Recipe) -> Recipe:
    """`bf16`, `fp8`, `ternary-qat`, `fwdq:FORMAT` or `native:FORMAT` (FORMAT: a quant
    format of simulator.quant, e.g. W8A8-KV8)."""
    if isinstance(text, Recipe):
        return text
    name = str(text).strip()
    if name.lower() in _FIXED:
        return _FIXED[name.lower()]
    family, sep, fmt = name.partition(":")
    if sep and family.lower() in _FAMILIES and fmt:
        parse_quant(fmt)  # a bad FORMAT names itself
        if family.lower() == "fwdq":
            return Recipe(name, fmt, "W16A16", doc=_FAMILIES["fwdq"])
        return Recipe(name, fmt, fmt, attention=fmt, cast_backward=True, native_only=True,
                      doc=_FAMILIES["native"])
    raise InputError(f"unknown training recipe {name!r}; expected one of "
                     f"{', '.join(RECIPES)} (FORMAT e.g. W8A8, W4A4-KV4, Wfp8Afp8)")


def _gemm_dtypes(recipe: Recipe) -> set:
    out = set()
    for spec in {recipe.forward, recipe.backward, recipe.attention}:
        fmt = parse_quant(spec)
        out |= {fmt.weight_dtype, fmt.act_dtype}
    return out


def check_recipe(profile, recipe: Recipe) -> None:
    """An InputError naming the recipe, the profile and what it supports when a
    native-only recipe's GEMM types are not native on the profile."""
    if not recipe.native_only:
        return
    missing = sorted(d for d in _gemm_dtypes(recipe) if not profile.native(d))
    if missing:
        ok = [r for r in _FIXED.values() if not r.native_only
              or all(profile.native(d) for d in _gemm_dtypes(r))]
        raise InputError(
            f"recipe {recipe.name} needs {', '.join(missing)} GEMMs, which profile "
            f"{profile.name} does not run natively (native: {', '.join(profile.compute)}); "
            f"recipes it supports: {', '.join(r.name for r in ok)}, fwdq:FORMAT, and "
            f"native:FORMAT for its native types")


def _profile_of(profile):
    """The HardwareProfile of a name, path or profile (loaded once per name)."""
    return as_hardware(profile).profiles[()]


def training_profile(profile):
    """The profile as a training step runs it (its `training` block): each matrix type's
    `compute.<dtype>.achievable_fraction` times `training.gemm_efficiency.<dtype>` (the
    bf16 value for matrix types the block does not list), main
    memory's achievable fraction times `training.memory_efficiency`, and attention as a
    bf16 rule at `training.attention_rate` (unchanged where the profile gives none)."""
    profile = _profile_of(profile)
    spec = profile.training
    if spec is None:
        return profile
    overrides = {}
    default = spec.gemm_efficiency.get("bf16")
    for dtype, compute in profile.compute.items():
        eff = spec.gemm_efficiency.get(dtype, default)
        if eff is not None and compute.engine == "matrix":
            frac = compute.achievable_fraction.value * eff.value
            overrides[f"compute.{dtype}.achievable_fraction"] = {
                "value": frac, "derived": f"achievable_fraction x training.gemm_efficiency "
                                          f"{eff.value:g} ({eff.provenance})"}
    if spec.memory_efficiency is not None:
        main = profile.main_memory
        overrides[f"memory.{main.name}.achievable_fraction"] = {
            "value": main.achievable_fraction.value * spec.memory_efficiency.value,
            "derived": "achievable_fraction x training.memory_efficiency"}
    if spec.attention_rate is not None and profile.attention is None \
            and "bf16" in profile.compute:
        overrides["attention"] = {"execute_as": "bf16", "peak": {
            "value": f"{spec.attention_rate.value / 1e12:.6g} TFLOP/s",
            "derived": f"training.attention_rate ({spec.attention_rate.provenance})"}}
    return profile.with_overrides(overrides, name=f"{profile.name}-training")


@dataclass(frozen=True, eq=False)
class TrainingStep:
    """One step's time per phase (s), throughput, utilisation, energy and memory per
    device; `flops`: matrix FLOPs per device and step of the forward, backward and
    recompute passes. Arrays broadcast over the inputs."""

    recipe: str
    step_time_s: object
    phases_s: dict
    tokens_per_s: object
    tokens_per_s_per_device: object
    mfu: object
    hfu: object
    energy_per_step_j: object
    energy_per_token_j: object
    memory_bytes: dict
    capacity_bytes: float
    fits: object
    micro_batch: object
    n_micro: object
    largest_micro_batch: object
    binding: object
    flops: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)

    def summary(self) -> dict:
        def num(v):
            return np.asarray(v).tolist()
        return {"recipe": self.recipe, "layout": {k: num(v) for k, v in self.layout.items()},
                "micro_batch": num(self.micro_batch), "n_micro": num(self.n_micro),
                "largest_micro_batch": num(self.largest_micro_batch),
                "step_time_s": num(self.step_time_s),
                "phases_s": {k: num(v) for k, v in self.phases_s.items()},
                "tokens_per_s": num(self.tokens_per_s),
                "tokens_per_s_per_device": num(self.tokens_per_s_per_device),
                "mfu": num(self.mfu), "hfu": num(self.hfu),
                "energy_per_step_j": num(self.energy_per_step_j),
                "energy_per_token_j": num(self.energy_per_token_j),
                "memory_bytes": {k: num(v) for k, v in self.memory_bytes.items()},
                "capacity_bytes": self.capacity_bytes, "fits": num(self.fits),
                "binding": num(self.binding),
                "flops": {k: num(v) for k, v in self.flops.items()}}


def model_flops_per_token(model, seq):
    """6 N + 12 L s q_dim (module docstring), N = block GEMM parameters + LM head."""
    n = model.n_params_non_embedding + model.vocab_size * model.d_model
    return 6.0 * n + 12.0 * model.executed_layers * seq * model.q_dim


def _block_gemms(model, tokens, tp):
    """(m, n, k, group) of one block's forward GEMMs on one tensor-parallel shard."""
    d = model.d_model
    return [(tokens, (model.q_dim + 2 * model.kv_dim) / tp, d, "attn"),
            (tokens, d, model.q_dim / tp, "attn"),
            (tokens, model.ffn_in_width / tp, d, "mlp"),
            (tokens, d, model.d_ff / tp, "mlp")]


def _cast(hw, elements, fmt, group, reads=1.0):
    """Quantising `elements` 16-bit values to a format's activation width (amax and
    QUANTIZE_OPS per element); written at the wider type where it is not native."""
    bits = parse_quant(fmt).for_group(group).effective_act_bits
    return elementwise_cost(hw, reads * 2.0 * elements, elements * bits / 8.0,
                            elements * (reads * AMAX_OPS + QUANTIZE_OPS))


def _gemm_pass(hw, shapes, recipe: Recipe, backward: bool):
    """The GEMMs (forward, or dA and dW) of `shapes` and the casts feeding them."""
    total, casts = None, None
    for m, n, k, group in shapes:
        if backward:
            cost = (gemm_cost(hw, m, k, n, recipe.backward, group=group)
                    + gemm_cost(hw, k, n, m, recipe.backward, group=group))
            cast = _cast(hw, m * n, recipe.backward, group) if recipe.cast_backward else None
        else:
            cost = gemm_cost(hw, m, n, k, recipe.forward, group=group)
            cast = None
            if recipe.forward != "W16A16":
                cast = _cast(hw, k * n, recipe.forward, group, recipe.weight_reads)
                if parse_quant(recipe.forward).for_group(group).act_dtype not in _WIDE:
                    cast = cast + _cast(hw, m * k, recipe.forward, group)
        total = cost if total is None else total + cost
        if cast is not None:
            casts = cast if casts is None else casts + cast
    return total, casts


def _elementwise(hw, model, tokens, tp):
    """One block's norms and activation function (forward)."""
    rows = tokens / tp  # sequence-parallel norms
    norms = norm_cost(hw, rows, model.d_model, kind=model.norm).scaled(2.0)
    gate = 1.0 if model.gated_ffn else 0.0
    act_elems = tokens * model.d_ff / tp
    act = elementwise_cost(hw, tokens * model.ffn_in_width / tp * 2.0, act_elems * 2.0,
                           act_elems * (ACTIVATION_OPS[model.activation] + gate))
    return norms, act


@dataclass(frozen=True, eq=False)
class _Micro:
    forward: KernelCost
    backward: KernelCost
    recompute: KernelCost
    casts: KernelCost
    flops_recomputed: object


def _micro_batch(hw, model, recipe, mode, micro_batch, seq, tp, pp, grad_params):
    """Per-device cost of one micro-batch on the slowest (last) stage."""
    tokens = micro_batch * seq
    blocks = model.executed_layers / pp
    gemm_f, cast_f = _gemm_pass(hw, _block_gemms(model, tokens, tp), recipe, False)
    gemm_b, cast_b = _gemm_pass(hw, _block_gemms(model, tokens, tp), recipe, True)
    attn = attention_cost(hw, micro_batch, seq, seq, model.n_heads / tp,
                          model.n_kv_heads / tp, model.hd, recipe.attention, cache_len=0.0)
    norms, act = _elementwise(hw, model, tokens, tp)
    casts = None
    if cast_f is not None:
        casts = cast_f
        if parse_quant(recipe.forward).kv_dtype not in _WIDE:
            casts = casts + _cast(hw, 2.0 * tokens * model.kv_dim / tp, recipe.forward, "attn")
    if cast_b is not None:
        casts = cast_b if casts is None else casts + cast_b
    block_f = gemm_f + attn + norms + act
    block_b = gemm_b + attn.scaled(ATTENTION_BACKWARD) \
        + (norms + act).scaled(ELEMENTWISE_BACKWARD)
    recompute = {"none": block_f.scaled(0.0), "selective": norms + act,
                 "full": block_f}[mode]
    head_shape = [(tokens, model.vocab_size / tp, model.d_model, "lm_head")]
    head_f, head_cast_f = _gemm_pass(hw, head_shape, recipe, False)
    head_b, head_cast_b = _gemm_pass(hw, head_shape, recipe, True)
    logits = tokens * model.vocab_size / tp
    ce = elementwise_cost(hw, logits * 4.0, logits * 4.0, logits * SOFTMAX_OPS)
    ce_b = elementwise_cost(hw, logits * 4.0, logits * 2.0, logits * 2.0)
    emb = embedding_cost(hw, tokens, model.d_model)
    accumulate = elementwise_cost(hw, grad_params * 6.0, grad_params * 4.0, grad_params)
    forward = block_f.scaled(blocks) + head_f + ce + emb
    backward = block_b.scaled(blocks) + head_b + ce_b + accumulate
    zero = forward.scaled(0.0)
    casts = (casts.scaled(blocks) if casts is not None else zero)
    for extra in (head_cast_f, head_cast_b):
        if extra is not None:
            casts = casts + extra
    return _Micro(forward, backward, recompute.scaled(blocks), casts,
                  recompute.scaled(blocks).flops)


def _layout(model, devices, tp, pp, seq, global_batch, topo, zero, mode):
    """Checked parallel layout: (dp, sequences per replica); InputError otherwise."""
    devices, tp, pp = (np.asarray(v, dtype=float) for v in (devices, tp, pp))
    for name, v in (("devices", devices), ("tp", tp), ("pp", pp), ("seq", seq),
                    ("global batch", global_batch)):
        v = np.asarray(v, dtype=float)
        if np.any(v < 1) or np.any(v != np.round(v)):
            raise InputError(f"{name} must be a positive integer, got {v.reshape(-1)[0]:g}")
    if np.any(np.asarray(zero) < 0) or np.any(np.asarray(zero) > 3):
        raise InputError(f"--zero must be one of {ZERO_STAGES}, got {zero}")
    if mode not in RECOMPUTE_MODES:
        raise InputError(f"--recompute must be one of {', '.join(RECOMPUTE_MODES)}, "
                         f"got {mode!r}")
    if np.any(tp > topo.devices_per_node):
        raise InputError(f"--tp {np.max(tp):g} exceeds the {topo.devices_per_node} devices "
                         f"of a {topo.profile} node; tensor parallelism stays inside a node")
    if model.is_discrete:
        for heads in (model.n_heads, model.n_kv_heads):
            bad = np.mod(heads, tp) != 0
            if np.any(bad):
                raise InputError(f"--tp {np.asarray(tp)[bad].reshape(-1)[0]:g} does not "
                                 f"divide the {heads:g} heads of {model.name} "
                                 f"(n_heads {model.n_heads:g}, n_kv_heads "
                                 f"{model.n_kv_heads:g})")
    if np.any(pp > np.asarray(model.executed_layers)):
        raise InputError(f"--pp {np.max(pp):g} is deeper than the "
                         f"{np.max(model.executed_layers):g} layers of {model.name}")
    if np.any(np.mod(devices, tp * pp) != 0):
        raise InputError(f"--devices {np.asarray(devices).reshape(-1)[0]:g} is not a "
                         f"multiple of tp x pp")
    dp = devices / (tp * pp)
    seqs = np.asarray(global_batch, dtype=float) / np.asarray(seq, dtype=float)
    if np.any(seqs != np.round(seqs)):
        raise InputError(f"--global-batch {global_batch} tokens is not a whole number of "
                         f"sequences of {seq}")
    if np.any(np.mod(seqs, dp) != 0):
        raise InputError(f"--global-batch of {np.asarray(seqs).reshape(-1)[0]:g} sequences "
                         f"is not divisible by the data-parallel degree "
                         f"{np.asarray(dp).reshape(-1)[0]:g} (devices / (tp x pp))")
    return dp, seqs / dp


def _communication(topo, model, micro_batch, seq, tp, pp, dp, zero, n_micro, params_local,
                   compute_s):
    """(exposed seconds per step, raw seconds per step) of TP, PP and DP traffic."""
    act_bytes = micro_batch * seq * model.d_model * 2.0
    blocks = model.executed_layers / pp
    tp_s = 4.0 * blocks * n_micro * collective_time(topo, "all_reduce", act_bytes, tp)
    # a stage boundary is a 2-device send; no pipeline (pp 1) is a group of 1: no link needed
    pp_s = 2.0 * n_micro * collective_time(topo, "send", act_bytes / tp, np.minimum(pp, 2))
    dp_topo = replace(topo, devices_per_node=max(1, int(topo.devices_per_node
                                                        // np.max(tp))))
    w_bytes = params_local * 2.0
    per_step = collective_time(dp_topo, "all_reduce", w_bytes, dp)
    per_micro = 2.0 * collective_time(dp_topo, "all_gather", w_bytes, dp) \
        + collective_time(dp_topo, "reduce_scatter", w_bytes, dp)
    dp_s = np.where(np.asarray(zero) >= 3, n_micro * per_micro, per_step)
    raw = tp_s + pp_s + dp_s
    return tp_s + exposed_time(topo, pp_s + dp_s, compute_s), raw


def training_step(profile, model, recipe="bf16", *, seq, global_batch, devices=1, tp=1,
                  pp=1, zero=1, recompute: str = "none", micro_batch=None) -> TrainingStep:
    """Time, throughput, MFU/HFU, energy and memory of one training step (module
    docstring). `micro_batch` None: the largest that fits (at most the replica's
    sequences). Every numeric argument may be an array (broadcast)."""
    base = _profile_of(profile)
    model = get_model(model)
    recipe = get_recipe(recipe)
    check_recipe(base, recipe)
    hw = as_hardware(training_profile(base))
    topo = Topology.of(base)
    dp, seqs = _layout(model, devices, tp, pp, seq, global_batch, topo, zero, recompute)
    tp, pp = np.asarray(tp, dtype=float), np.asarray(pp, dtype=float)
    topo.check_group(np.asarray(devices), "training layout")
    params_local = model.n_params_total / (tp * pp)
    block_local = (model.attn_params_per_layer + model.mlp_params_per_layer) / tp
    vocab_shard = model.vocab_size / tp
    capacity = base.main_memory.capacity_bytes
    largest = largest_micro_batch(model, recompute, seq, tp, pp, pp, zero, dp,
                                  params_local, block_local, vocab_shard, capacity)
    mb = np.minimum(np.maximum(largest, 1.0), seqs) if micro_batch is None \
        else np.asarray(micro_batch, dtype=float)
    if np.any(mb < 1) or np.any(mb > seqs):
        raise InputError(f"--micro-batch must be 1 to the {seqs.reshape(-1)[0]:g} sequences "
                         f"of a data-parallel replica, got {micro_batch}")
    n_micro = np.ceil(seqs / mb)
    memory = memory_per_device(model, recompute, seq, mb, tp, pp, n_micro, zero, dp,
                               params_local, block_local, vocab_shard)
    grad_params = params_local / np.where(np.asarray(zero) >= 2, dp, 1.0)
    micro = _micro_batch(hw, model, recipe, recompute, mb, seq, tp, pp, grad_params)
    opt_params = params_local / np.where(np.asarray(zero) >= 1, dp, 1.0)
    optimizer = elementwise_cost(hw, 14.0 * opt_params, 14.0 * opt_params,
                                 ADAM_OPS * opt_params)
    per_micro = {"forward": micro.forward.time_s, "backward": micro.backward.time_s,
                 "recompute": micro.recompute.time_s, "casts": micro.casts.time_s}
    compute_micro = sum(per_micro.values())
    comm, comm_raw = _communication(topo, model, mb, seq, tp, pp, dp, zero, n_micro,
                                    params_local, n_micro * compute_micro)
    phases = {k: n_micro * v for k, v in per_micro.items()}
    phases["optimizer"] = optimizer.time_s
    phases["communication"] = comm
    phases["bubble"] = (pp - 1.0) * compute_micro
    step = sum(phases.values())
    tokens = np.asarray(global_batch, dtype=float)
    devices = np.asarray(devices, dtype=float)
    flops_tok = model_flops_per_token(model, seq)
    peak = base.compute["bf16"].peak_ops_per_s if "bf16" in base.compute \
        else max(c.peak_ops_per_s for c in base.compute.values())
    mfu = flops_tok * tokens / (step * devices * peak)
    hfu = mfu + n_micro * micro.flops_recomputed / (step * peak)
    # energy from the one power model (simulator.power): idle floor, active baseline and
    # the kernels' dynamic energy while computing, the idle floor while waiting on
    # communication and the bubble, the cap. Step time stays the fitted model's: the
    # profile's training efficiencies already include the clock under power load.
    dynamic_j = n_micro * (micro.forward.energy_j + micro.backward.energy_j
                           + micro.recompute.energy_j + micro.casts.energy_j) \
        + optimizer.energy_j
    busy_s = step - phases["communication"] - phases["bubble"]
    energy_dev = power_and_energy(base, busy_s, dynamic_j, wall_time_s=step).energy_j
    fits = memory["total"] <= capacity
    labels = np.array(["compute", "memory", "overhead", "communication", "bubble"],
                      dtype=object)
    kernels = micro.forward + micro.backward + micro.recompute + micro.casts
    shares = np.stack(np.broadcast_arrays(
        n_micro * kernels.compute_time_s, n_micro * kernels.memory_time_s,
        n_micro * kernels.overhead_time_s, phases["communication"], phases["bubble"]))
    binding = np.asarray(labels[np.argmax(shares, axis=0)], dtype=object)
    return TrainingStep(
        recipe=recipe.name, step_time_s=step, phases_s=phases,
        tokens_per_s=tokens / step, tokens_per_s_per_device=tokens / step / devices,
        mfu=mfu, hfu=hfu, energy_per_step_j=energy_dev * devices,
        energy_per_token_j=energy_dev * devices / tokens, memory_bytes=memory,
        capacity_bytes=capacity, fits=fits, micro_batch=mb, n_micro=n_micro,
        largest_micro_batch=largest,
        flops={k: n_micro * getattr(micro, k).flops
               for k in ("forward", "backward", "recompute")},
        binding=binding[()] if binding.ndim == 0 else binding,
        layout={"devices": devices, "tp": tp, "pp": pp, "dp": dp, "zero": zero,
                "recompute": recompute, "seq": seq, "global_batch": tokens,
                "communication_raw_s": comm_raw})


def _bits_token(bits: float, containers: tuple) -> str:
    """The narrowest quant-grammar width in `containers` holding `bits` (16 beyond)."""
    return next((f"{c:g}" for c in containers if bits <= c + 1e-9), "16")


def recipe_for_bits(weight_bits: float, act_bits: float, kv_bits: float) -> str:
    """The recipe of the precision law's quantised-training runs at these bits: `bf16`
    at 16 bits and above, else `fwdq:` with each operand in the narrowest type of the
    quant grammar that holds it (weights 1, 1.58, 2-8 bits; activations 4 or 8; KV 2,
    4 or 8; wider: 16)."""
    if min(weight_bits, act_bits, kv_bits) >= 16:
        return "bf16"
    w = _bits_token(weight_bits, (1, 1.58, 2, 3, 4, 5, 6, 7, 8))
    a = _bits_token(act_bits, (4, 8))
    kv = _bits_token(kv_bits, (2, 4, 8))
    return f"fwdq:W{w}A{a}-KV{kv}"


def token_costs(profile, n_params, recipe, *, seq, global_batch, devices, zero=3,
                recompute: str = "selective") -> dict:
    """Per trained token of the parametric family `model_for_params(n_params)` (arrays
    broadcast): device-seconds, joules, MFU and whether the layout fits (the planner's
    training cost: D tokens cost D times these)."""
    step = training_step(profile, model_for_params(n_params), recipe, seq=seq,
                         global_batch=global_batch, devices=devices, zero=zero,
                         recompute=recompute)
    return {"device_s_per_token": step.step_time_s * devices / global_batch,
            "j_per_token": step.energy_per_token_j, "mfu": step.mfu, "fits": step.fits}


def fit_advice(profile, model, recipe="bf16", *, seq, global_batch, devices=1, tp=1, pp=1,
               zero=1, recompute: str = "none") -> str:
    """What would fit when one micro-batch of one sequence does not (scalar inputs): a
    higher ZeRO stage, full recomputation, or the fewest devices (ZeRO 3, same tp x pp)."""
    def largest(**kw):
        args = dict(seq=seq, global_batch=global_batch, devices=devices, tp=tp, pp=pp,
                    zero=zero, recompute=recompute) | kw
        try:
            return training_step(profile, model, recipe, **args).largest_micro_batch
        except InputError:
            return 0.0
    tried = [({"zero": 3}, "--zero 3"), ({"recompute": "full"}, "--recompute full"),
             ({"zero": 3, "recompute": "full"}, "--zero 3 --recompute full")]
    for kw, flag in tried:
        if any(kw[k] != v for k, v in (("zero", zero), ("recompute", recompute)) if k in kw):
            n = float(largest(**kw))
            if n >= 1:
                return f"{flag} fits a micro-batch of {n:.0f}"
    seqs, group = global_batch // seq, tp * pp
    dps = np.array([dp for dp in range(max(1, devices // group) + 1, seqs + 1)
                    if seqs % dp == 0])
    if dps.size:
        n = np.asarray(largest(devices=dps * group, zero=3, recompute="full"))
        ok = np.nonzero(np.broadcast_to(n, dps.shape) >= 1)[0]
        if ok.size:
            dp = int(dps[ok[0]])
            return (f"--devices {dp * group} (tp {tp} x pp {pp} x dp {dp}) with --zero 3 "
                    "--recompute full fits")
    return "no layout of this tp x pp fits one sequence: raise --tp or --pp"
