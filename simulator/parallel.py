"""Serving on several devices: tensor, pipeline, expert and data parallelism.

A `ParallelLayout` (tp, pp, ep, dp) splits one replica over tp x pp devices (dp
replicas serve independent requests):

* tensor parallel (Megatron-LM, Shoeybi et al. 2019, arXiv 1909.08053): attention
  heads, KV heads, MLP width and the vocabulary split tp ways; two all-reduces of the
  m x d_model activations per block (after o_proj and after the MLP) on the device link;
* expert parallel: the routed experts split ep ways inside the tensor-parallel group
  (ep divides tp; each expert's width splits tp/ep ways); an MoE block dispatches and
  combines its routed tokens with two all-to-alls over ep (each device holding m k / ep
  token rows), all-gathers the m x d output back to the replicated stream over ep, and
  all-reduces over tp/ep when experts are also width-split;
* pipeline parallel (GPipe, Huang et al. 2019, arXiv 1811.06965): ceil(L / pp) blocks
  per stage, the activations sent between stages; a batch of B runs as
  mb = min(B, pp) micro-batches of B / mb. A decode step takes
  TPOT = pp (t_stage + c_stage) + (pp - 1) t_send (each token passes every stage once;
  with B < pp the stages idle a share 1 - B / pp, the bubble), and a prefill
  TTFT = (mb + pp - 1)(t_stage + c_stage + t_send);
* data parallel: dp replicas multiply throughput and devices, nothing else.

t_stage is `cost.simulate` of the per-device shard (`shard`) at the micro-batch; c_stage
its collectives (`simulator.collectives`, the one collective model), counted as exposed
past the profile's `compute_overlap`. Every field may be a numpy array: arrays of
degrees evaluate in one call.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from precsim.simulator.collectives import Topology, collective_time
from precsim.simulator.cost import kv_cache_bytes, simulate, weight_bytes
from precsim.simulator.errors import InputError
from precsim.simulator.quant import as_quant, stream_bits
from precsim.simulator.models import TransformerConfig, get_model
from precsim.simulator.profiles import HardwareProfile


@dataclass(frozen=True, eq=False)
class ParallelLayout:
    """Degrees of parallelism (ints or integer arrays that broadcast);
    `devices_per_node` overrides the profile's when given."""

    tp: int | np.ndarray = 1
    pp: int | np.ndarray = 1
    ep: int | np.ndarray = 1
    dp: int | np.ndarray = 1
    devices_per_node: int | None = None

    def __post_init__(self):
        for name in ("tp", "pp", "ep", "dp"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.size == 0 or (value < 1).any() or (value != np.round(value)).any():
                raise InputError(f"--{name} must be a positive integer, got "
                                 f"{getattr(self, name)!r}")
        if self.devices_per_node is not None and self.devices_per_node < 1:
            raise InputError(f"--devices-per-node must be at least 1, got "
                             f"{self.devices_per_node}")

    @property
    def devices(self):
        """Devices of all replicas: tp * pp * dp."""
        return np.asarray(self.tp) * np.asarray(self.pp) * np.asarray(self.dp)

    @property
    def is_single(self) -> bool:
        return all((np.asarray(getattr(self, n)) == 1).all() for n in ("tp", "pp", "ep", "dp"))

    def describe(self) -> dict:
        return {n: np.asarray(getattr(self, n)).tolist() for n in ("tp", "pp", "ep", "dp")}


def _valid(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def check_layout(model: TransformerConfig, layout: ParallelLayout, topology: Topology) -> None:
    """InputError naming the flag, the value and the valid values when the layout cannot
    split the model or the profile has no links for it."""
    tp, pp, ep = (np.asarray(v, dtype=int) for v in (layout.tp, layout.pp, layout.ep))
    if model.is_discrete:
        h, kv = int(model.n_heads), int(model.n_kv_heads)
        ok = [d for d in range(1, h + 1) if h % d == 0 and (kv % d == 0 or d % kv == 0)]
        bad = [int(v) for v in np.ravel(tp) if int(v) not in ok]
        if bad:
            raise InputError(f"--tp {bad[0]} does not split the model's n_heads={h} / "
                             f"n_kv_heads={kv} ({model.name}) into whole heads per device; "
                             f"valid --tp: {', '.join(map(str, ok))}")
        deep = pp[pp > int(model.n_layers)] if pp.ndim else (pp if pp > model.n_layers else None)
        if deep is not None and np.size(deep):
            raise InputError(f"--pp {int(np.ravel(deep)[0])} is deeper than the model's "
                             f"n_layers={int(model.n_layers)}; valid --pp: 1 to "
                             f"{int(model.n_layers)}")
    if np.any(ep > 1):
        if not model.is_moe:
            raise InputError(f"--ep {int(np.max(ep))}: {model.name} has no experts; "
                             "valid --ep: 1")
        e = int(np.max(model.n_experts))
        if np.any(np.mod(e, ep) != 0):
            raise InputError(f"--ep {int(np.ravel(ep[np.mod(e, ep) != 0])[0]) if ep.ndim else int(ep)}"
                             f" does not divide the model's n_experts={e}; valid --ep: "
                             f"{_valid(e)}")
        if np.any(np.mod(tp, ep) != 0):
            raise InputError("--ep must divide --tp (experts split inside the tensor-"
                             f"parallel group); got --tp {layout.tp} --ep {layout.ep}")
    topology.check_group(tp * pp, "tensor/pipeline-parallel group (--tp x --pp)")


def topology_for(profile: HardwareProfile, layout: ParallelLayout) -> Topology:
    topo = Topology.of(profile)
    if layout.devices_per_node is not None:
        topo = dataclasses.replace(topo, devices_per_node=int(layout.devices_per_node))
    return topo


def shard(model: TransformerConfig, layout: ParallelLayout) -> TransformerConfig:
    """One device's share: heads, KV heads, MLP width and vocabulary / tp (a KV head
    replicated when tp exceeds the KV heads, the vocabulary padded, as vLLM does),
    ceil(L / pp)
    blocks (MoE blocks in proportion), experts / ep with width / (tp / ep)."""
    tp, pp, ep = (np.asarray(v, dtype=float) for v in (layout.tp, layout.pp, layout.ep))
    layers = np.ceil(model.n_layers / pp)

    def out(x):
        return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x
    changes = dict(n_heads=out(model.n_heads / tp),
                   n_kv_heads=out(np.maximum(model.n_kv_heads / tp, 1.0)),
                   head_dim=model.hd, d_ff=out(model.d_ff / tp),
                   vocab_size=out(np.ceil(model.vocab_size / tp)), n_layers=out(layers))
    if model.is_moe:
        changes.update(moe_d_ff=out(model.expert_d_ff / (tp / ep)),
                       shared_d_ff=out(model.shared_d_ff / tp),
                       n_moe_layers=out(model.n_moe_layers * layers / model.n_layers),
                       expert_shards=out(ep))
    return dataclasses.replace(model, **changes)


def block_comm_s(topology: Topology, model: TransformerConfig, layout: ParallelLayout,
                 rows, stream_bytes):
    """Collective seconds of one block over `rows` token rows (see the module docstring):
    the attention all-reduce, then the MLP all-reduce (dense block) or the MoE
    dispatch + combine all-to-alls, all-gather and expert-width all-reduce."""
    tp, ep = np.asarray(layout.tp, dtype=float), np.asarray(layout.ep, dtype=float)
    act = rows * model.d_model * stream_bytes
    reduce = collective_time(topology, "all_reduce", act, tp)
    if not model.is_moe:
        return 2.0 * reduce
    routed = act * model.experts_per_token / ep
    moe = (2.0 * collective_time(topology, "all_to_all", routed, ep)
           + collective_time(topology, "all_gather", act, ep)
           + collective_time(topology, "all_reduce", act, tp / ep))
    dense = model.n_dense_layers / model.n_layers
    return reduce + dense * reduce + (1.0 - dense) * moe


@dataclass(frozen=True, eq=False)
class ParallelResult:
    """`stage`: `cost.simulate` of one device's shard at one micro-batch; `totals`: the
    replica's request as `SimulationResult.totals` (times, throughput of all replicas,
    energy of every device of one replica; memory per device; bytes moved, kernels and
    launch overhead of one device's stage), plus layout keys."""

    stage: object
    layout: ParallelLayout
    totals: dict


def simulate_parallel(profile: HardwareProfile, model, quant, batch, prompt_len, gen_len,
                      layout: ParallelLayout, **kwargs) -> ParallelResult:
    """A request of `batch` sequences on one replica of `layout` (totals as
    `cost.simulate`: times of the replica, memory per device, throughput of all dp
    replicas; `kwargs` pass to `cost.simulate`)."""
    model = get_model(model)
    quant = as_quant(quant)
    topo = topology_for(profile, layout)
    check_layout(model, layout, topo)
    tp, pp, dp = (np.asarray(v, dtype=float) for v in (layout.tp, layout.pp, layout.dp))
    batch = np.asarray(batch, dtype=float)
    micro = np.minimum(batch, pp)
    mb = batch / micro
    part = shard(model, layout)
    stage = simulate(profile, part, quant, mb, prompt_len, gen_len, **kwargs)
    t = stage.totals
    sb = stream_bits(quant) / 8.0
    layers = part.n_layers
    # serving's tensor/expert collectives sit on the critical path (the next layer waits
    # for the all-reduce / all-to-all): none of `interconnect.compute_overlap`, which is
    # the training-side overlap of data-parallel traffic (simulator.training), applies
    c_pre = layers * block_comm_s(topo, model, layout, mb * np.asarray(prompt_len), sb)
    c_dec = layers * block_comm_s(topo, model, layout, mb, sb)
    crosses = tp * pp > topo.devices_per_node
    pair = np.where(crosses & (pp > 1), topo.devices_per_node + 1, 2)
    send_pre = np.where(pp > 1, collective_time(topo, "send", mb * np.asarray(prompt_len)
                                                * model.d_model * sb, pair), 0.0)
    send_dec = np.where(pp > 1, collective_time(topo, "send", mb * model.d_model * sb, pair),
                        0.0)
    ttft = (micro + pp - 1.0) * (t["ttft_s"] + c_pre + send_pre)
    tpot = pp * (t["tpot_s"] + c_dec) + (pp - 1.0) * send_dec
    steps = np.asarray(gen_len, dtype=float) - 1.0
    devices = tp * pp
    # board energy (simulator.power, through the stage's totals) of each device's busy
    # time, plus the active baseline while it waits on collectives and pipeline sends:
    # NCCL's kernels keep the SMs polling at boost clocks (ML.ENERGY's multi-GPU rows
    # draw 450-630 W per H100 where the idle floor would give 72 W; docs/energy.md)
    waiting_w = profile.power.active.value
    dec_board = np.where(steps > 0, np.nan_to_num(t["decode_energy_per_token_j"])
                         * mb * steps, 0.0)
    pre_board = np.asarray(t["energy_j"]) - dec_board
    decode_j = (micro * dec_board + waiting_w * np.maximum(
        steps * tpot - micro * steps * np.nan_to_num(t["tpot_s"]), 0.0)) * devices
    energy = (micro * pre_board + waiting_w * np.maximum(ttft - micro * t["ttft_s"], 0.0)) \
        * devices + decode_j
    wb = weight_bytes(part, quant)
    weights = sum(np.asarray(v) for v in wb.values())
    kv = kv_cache_bytes(part, quant, batch, np.asarray(prompt_len) + np.asarray(gen_len))
    need = weights + kv + t["activation_bytes"]
    usable = t["capacity_bytes"] * (1.0 - _reserved(profile))
    notes = list(model.approximations)
    if np.any(pp > 1):
        notes.append("pipeline: every stage is priced with the embedding and LM head "
                     "(they run on the first / last stage only): TPOT over-estimated by "
                     "(pp - 1) x their time")
    if model.is_moe:
        notes.append("MoE: uniform top-k routing (expected distinct experts "
                     "E(1-(1-k/E)^B)); load imbalance only as given by --moe-imbalance")
    totals = dict(t)
    totals.update({
        "ttft_s": ttft, "tpot_s": tpot, "e2e_latency_s": ttft + steps * tpot,
        "decode_tokens_per_s": batch * dp / tpot,
        "prefill_tokens_per_s": batch * dp * np.asarray(prompt_len) / ttft,
        "energy_j": energy, "energy_per_token_j": energy / (batch * np.asarray(gen_len)),
        "decode_energy_per_token_j": np.where(steps > 0, decode_j / (
            batch * np.where(steps > 0, steps, 1.0)), np.nan),
        "weight_bytes": weights, "weight_bytes_by_group": wb, "kv_cache_bytes": kv,
        "memory_bytes": need, "usable_capacity_bytes": usable, "fits": need <= usable,
        "devices": devices * dp, "devices_per_replica": devices,
        "micro_batches": micro, "pipeline_bubble": 1.0 - micro / pp,
        "collective_s_prefill": c_pre + (pp - 1.0) * send_pre,
        "collective_s_per_decode_step": pp * c_dec + (pp - 1.0) * send_dec,
        "approximations": notes,
    })
    totals["average_power_w"] = energy / totals["e2e_latency_s"]
    return ParallelResult(stage=stage, layout=layout,
                          totals={k: (v[()] if isinstance(v, np.ndarray) and v.ndim == 0
                                      else v) for k, v in totals.items()})


def _reserved(profile: HardwareProfile) -> float:
    """Share of main memory the runtime keeps for itself (the profile's cited
    `overheads.runtime_memory`; 0 when the profile states none)."""
    item = getattr(profile.overheads, "runtime_memory", None)
    return item.value if item is not None else 0.0


@dataclass(frozen=True)
class ReplicaCosts:
    """Serving-DES iteration costs (`des.serving.IterationCosts`) of one replica: the
    per-device shard's cost tables plus the exposed collectives of the pass's token rows
    and the pipeline stages. An iteration runs through the pp stages one after the other
    (no micro-batch overlap inside the DES: pipeline throughput is under-estimated, as
    stated in `approximations`); energy counts every device of the replica."""

    tables: object
    topology: Topology
    model: TransformerConfig
    layout: ParallelLayout
    stream_bytes: float
    stage_layers: float

    def _wrap(self, time_s: float, energy_j: float, rows: float) -> tuple[float, float]:
        lay = self.layout
        comm = float(self.stage_layers * block_comm_s(   # on the critical path (above)
            self.topology, self.model, lay, rows, self.stream_bytes))
        send = 0.0
        if lay.pp > 1:
            crosses = lay.tp * lay.pp > self.topology.devices_per_node
            send = float(collective_time(self.topology, "send",
                                         rows * self.model.d_model * self.stream_bytes,
                                         self.topology.devices_per_node + 1 if crosses else 2))
        total = lay.pp * (time_s + comm) + (lay.pp - 1) * send
        return total, energy_j * lay.pp * lay.tp   # dynamic; board power: des summarize

    def prefill(self, n_seqs, prompt_tokens, prompt_lens=None):
        return self._wrap(*self.tables.prefill(n_seqs, prompt_tokens, prompt_lens),
                          prompt_tokens)

    def decode(self, batch, context_tokens):
        return self._wrap(*self.tables.decode(batch, context_tokens), batch)

    def mixed(self, batch, context_tokens, chunks):
        return self._wrap(*self.tables.mixed(batch, context_tokens, chunks),
                          batch + sum(c[1] for c in chunks))


def replica(profile: HardwareProfile, model: TransformerConfig, quant,
            layout: ParallelLayout | None):
    """(the model one device holds, a function wrapping that shard's cost tables into a
    replica's `ReplicaCosts`, approximations) for the serving DES; the model itself and
    the identity for no layout."""
    if layout is None or (layout.is_single and layout.devices_per_node is None):
        return model, (lambda tables: tables), list(model.approximations)
    for name in ("tp", "pp", "ep"):
        if np.ndim(getattr(layout, name)):
            raise InputError(f"serving simulates one layout at a time; got --{name} "
                             f"{getattr(layout, name)}")
    topo = topology_for(profile, layout)
    check_layout(model, layout, topo)
    part = shard(model, layout)
    notes = list(model.approximations)
    if layout.pp > 1:
        notes.append("pipeline: an iteration passes the stages in turn, no micro-batch "
                     "overlap (throughput under-estimated up to pp times)")

    def wrap(tables):
        return ReplicaCosts(tables, topo, model, layout, float(stream_bits(quant)) / 8.0,
                            float(part.n_layers))
    return part, wrap, notes


def candidate_layouts(profile: HardwareProfile, model, quants, tps, pps, eps,
                      devices_per_node: int | None = None) -> list:
    """Layouts `size` searches: [None] (one device) when every degree list is (1,)
    and the model's weights fit one device; else every (tp, pp, ep) of the lists that
    splits the model (ep dividing tp) or, with the lists left at (1,), every such layout
    within one node (tp a power of two, pp 1, ep 1 or tp for MoE)."""
    model = get_model(model)
    topo = topology_for(profile, ParallelLayout(devices_per_node=devices_per_node))
    given = tuple(tps) != (1,) or tuple(pps) != (1,) or tuple(eps) != (1,)
    if not given:
        cap = profile.main_memory.capacity_bytes
        if all(sum(np.asarray(v) for v in weight_bytes(model, as_quant(q)).values()) < cap
               for q in quants):
            return [None]
        n = topo.devices_per_node if topo.link_bytes_per_s is not None else 1
        tps = [2 ** i for i in range(int(np.log2(n)) + 1)]
        pps, eps = (1,), sorted({1, *tps}) if model.is_moe else (1,)
    out = []
    for tp in tps:
        for pp in pps:
            for ep in eps:
                if tp % ep:
                    continue
                layout = ParallelLayout(tp=tp, pp=pp, ep=ep, devices_per_node=devices_per_node)
                try:
                    check_layout(model, layout, topo)
                except InputError:
                    if given:
                        raise
                    continue
                out.append(layout)
    if not out:
        raise InputError(f"no --tp/--pp/--ep combination splits {model.name} "
                         "(--ep must divide --tp)")
    return out
