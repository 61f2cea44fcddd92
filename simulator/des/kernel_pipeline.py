"""Discrete-event simulation (simpy) of a tiled kernel: DMA → (dequant) → compute.

The roofline (simulator.roofline) charges a kernel max(math time, memory time) +
conversion time + launch gap: transfers and math perfectly overlapped. A real kernel
streams its operands in tiles through a few on-chip buffers, so it also pays the fill
(the first tile must land before any math starts), the drain (the last tile's math runs
after the last transfer) and, with one buffer, serialisation (the next transfer waits
until the buffer has been consumed).

The stage totals come from the simulator's cost model (a `KernelCost`: main-memory
bytes, memory time, compute time, launch overhead, conversion time); this module only
cuts them into tiles and schedules the tiles, so with two or more buffers and many
tiles it converges to the roofline time, and departs from it by fill, drain and
serialisation.

Model (per kernel, whole chip):
- `n_buffers` on-chip buffers of `tile_bytes`; n_tiles = ceil(DRAM bytes / tile_bytes),
  each tile carrying 1/n_tiles of every stage's work.
- `n_dma` DMA engines share the memory time: an engine takes a free buffer, transfers
  for (memory time / n_tiles) x n_dma, and the tile lands `dma_latency_s` later (the
  latency overlaps the next transfer, as outstanding requests do; default: the main
  memory level's `latency` when the profile gives one, else 0).
- `n_compute` compute engines share the math time; finishing a tile frees its buffer.
- A non-native format's dequantisation (`dequant`):
  "stall"  (the cost model's assumption: conversion is not hidden behind the memory
           stream) converts each tile just before its math, one tile at a time, and
           pauses every transfer and every other engine meanwhile;
  "compute" converts on the compute engine, overlapping the transfers;
  "engine" gives it `n_dequant` engines of its own, a separate pipeline stage.
  The last two are what-ifs: what hiding the conversion would gain.
- The kernel begins after its launch gap and ends when its last tile is consumed.

A model's decode step runs as its kernel sequence (`simulate_decode_step`): the ops of
`simulator.cost.decode_step_cost` in execution order, per-layer ops once per layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import simpy

from precsim.simulator.cost import PhaseCost, decode_step_cost
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import STAGING_FRACTION
from precsim.simulator.mapping import resolve_exec
from precsim.simulator.ops import OpSpec
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import stream_dtype
from precsim.simulator.roofline import KernelCost


@dataclass(frozen=True)
class KernelWork:
    """Stage totals of one kernel, taken from the cost model (`from_cost`).

    `dram_bytes` read + written in main memory; `memory_time_s` the memory system's time
    for the kernel's traffic (slowest level); `compute_time_s` the engine time for the
    math; `dequant_time_s` conversion work of a non-native format held apart from
    `compute_time_s` (0 when none); `launch_s` the launch gaps; `roofline_time_s` what
    the cost model charges without the launch gaps.
    """

    name: str
    dram_bytes: float
    memory_time_s: float
    compute_time_s: float
    roofline_time_s: float
    launch_s: float = 0.0
    dequant_time_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dram_bytes", "memory_time_s", "compute_time_s", "roofline_time_s",
                     "launch_s", "dequant_time_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"kernel {self.name}: {name} must be finite and >= 0, "
                                 f"got {value!r}")

    @classmethod
    def from_cost(cls, name: str, cost: KernelCost, dequant_time_s: float = 0.0
                  ) -> KernelWork:
        """From a scalar KernelCost; `dequant_time_s` is moved out of its compute time
        into the dequant stage."""
        launch = float(cost.overhead_time_s)
        return cls(name=name, dram_bytes=float(cost.main_memory_bytes),
                   memory_time_s=float(cost.memory_time_s),
                   compute_time_s=max(float(cost.compute_time_s) - dequant_time_s, 0.0),
                   roofline_time_s=float(cost.time_s) - launch, launch_s=launch,
                   dequant_time_s=dequant_time_s)


@dataclass(frozen=True)
class PipelineConfig:
    """Buffering and engines of the tiled kernel model.

    `tile_bytes=None`: the buffers split the staging area the cost model assumes
    (STAGING_FRACTION of the nearest memory level), tile = that / n_buffers.
    `dma_latency_s=None`: the profile's main-memory `latency` when it gives one, else 0
    (`dma_latency_for`). `dequant`: see the module docstring.
    """

    n_buffers: int = 2
    tile_bytes: float | None = None
    n_dma: int = 1
    n_dequant: int = 1
    n_compute: int = 1
    dma_latency_s: float | None = None
    dequant: Literal["stall", "compute", "engine"] = "stall"
    include_launch: bool = True

    def __post_init__(self) -> None:
        for name in ("n_buffers", "n_dma", "n_dequant", "n_compute"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"{name}: expected a whole number >= 1, got {value!r}")
        if self.tile_bytes is not None and not (math.isfinite(self.tile_bytes)
                                                and self.tile_bytes > 0):
            raise InputError(f"tile_bytes: expected bytes > 0, got {self.tile_bytes!r}")
        if self.dequant not in ("stall", "compute", "engine"):
            raise InputError(f"dequant: expected stall, compute or engine, "
                             f"got {self.dequant!r}")
        if self.dma_latency_s is not None and not (math.isfinite(self.dma_latency_s)
                                                   and self.dma_latency_s >= 0):
            raise InputError(f"dma_latency_s: expected seconds >= 0, "
                             f"got {self.dma_latency_s!r}")

    def dma_latency_for(self, profile: HardwareProfile) -> float:
        """Seconds from the end of a tile's transfer to its arrival: `dma_latency_s`, or
        the main memory's `latency` in the profile (0 when it has none)."""
        if self.dma_latency_s is not None:
            return float(self.dma_latency_s)
        return profile.main_memory.latency_s or 0.0

    def tile_bytes_for(self, profile: HardwareProfile) -> float:
        """Bytes per tile; all buffers must fit the staging share of the nearest level."""
        staging = STAGING_FRACTION * profile.memory[0].capacity_bytes
        if self.tile_bytes is None:
            return staging / self.n_buffers
        if self.tile_bytes * self.n_buffers > staging:
            raise InputError(f"{self.n_buffers} buffers of {self.tile_bytes:.4g} B do not "
                             f"fit the staging share of {profile.memory[0].name} "
                             f"({staging:.4g} B = {STAGING_FRACTION} x capacity)")
        return float(self.tile_bytes)


@dataclass(frozen=True)
class PipelineResult:
    """Simulated time of one kernel against the cost model's, and where time went."""

    name: str
    time_s: float
    roofline_time_s: float   # cost model, launch included (KernelCost.time_s)
    launch_s: float
    n_tiles: int
    fill_s: float            # launch end -> first math starts
    drain_s: float           # last transfer ends -> kernel ends
    compute_busy: float      # share of the kernel body the compute engines work
    dma_busy: float          # share of the kernel body the DMA engines transfer

    @property
    def slowdown(self) -> float:
        """time_s / roofline_time_s (1 = the roofline is right)."""
        return self.time_s / self.roofline_time_s if self.roofline_time_s > 0 else math.inf

    def as_dict(self) -> dict:
        return {"kernel": self.name, "time_s": self.time_s,
                "roofline_time_s": self.roofline_time_s, "slowdown": self.slowdown,
                "launch_s": self.launch_s, "n_tiles": self.n_tiles, "fill_s": self.fill_s,
                "drain_s": self.drain_s, "compute_busy": self.compute_busy,
                "dma_busy": self.dma_busy}


class _Kernel:
    """One kernel's tiles flowing through simpy stores; stage times are per tile.

    Work steps (`_work`) can be paused: a stalling dequant interrupts every step in
    progress, and steps resume, with the time they had left, once it is over.
    """

    def __init__(self, env: simpy.Environment, work: KernelWork, cfg: PipelineConfig,
                 tile_bytes: float):
        self.env, self.cfg = env, cfg
        self.n_tiles = n = max(1, math.ceil(work.dram_bytes / tile_bytes))
        self.dma_s = work.memory_time_s / n * cfg.n_dma
        self.compute_s = work.compute_time_s / n * cfg.n_compute
        mode = cfg.dequant if work.dequant_time_s > 0 else "none"
        self.mode = mode
        per_tile = work.dequant_time_s / n
        self.dequant_s = per_tile * {"engine": cfg.n_dequant, "compute": cfg.n_compute,
                                     "stall": 1, "none": 0}[mode]
        self.free = simpy.Container(env, capacity=cfg.n_buffers, init=cfg.n_buffers)
        self.landed = simpy.Store(env)
        self.ready = simpy.Store(env) if mode == "engine" else self.landed
        self.stall_lock = simpy.Resource(env, capacity=1)
        self.working: dict[simpy.Process, None] = {}  # insertion order: deterministic
        self.thaw: simpy.Event | None = None
        self.issued = 0
        self.consumed = 0
        self.first_math_s = math.nan
        self.last_transfer_s = 0.0
        self.dma_work_s = 0.0
        self.compute_work_s = 0.0
        self.done = env.event()

    def start(self) -> simpy.Event:
        env, cfg = self.env, self.cfg
        for _ in range(cfg.n_dma):
            env.process(self._dma())
        if self.mode == "engine":
            for _ in range(cfg.n_dequant):
                env.process(self._dequant())
        for _ in range(cfg.n_compute):
            env.process(self._compute())
        return self.done

    def _work(self, duration: float):
        """Hold an engine for `duration` seconds of work, paused while a stall lasts."""
        env = self.env
        me = env.active_process
        remaining = duration
        while remaining > 0:
            if self.thaw is not None:
                yield self.thaw
                continue
            begin = env.now
            self.working[me] = None
            try:
                yield env.timeout(remaining)
                remaining = 0.0
            except simpy.Interrupt:
                remaining -= env.now - begin
            finally:
                self.working.pop(me, None)

    def _stall(self, duration: float):
        """Convert one tile with the whole chip: pause every step in progress."""
        with self.stall_lock.request() as turn:
            yield turn
            self.thaw = self.env.event()
            for proc in list(self.working):
                proc.interrupt("stall")
            yield self.env.timeout(duration)
            thaw, self.thaw = self.thaw, None
            thaw.succeed()

    def _dma(self):
        env, latency = self.env, self.cfg.dma_latency_s
        while self.issued < self.n_tiles:
            self.issued += 1
            yield self.free.get(1)
            yield from self._work(self.dma_s)
            self.dma_work_s += self.dma_s
            self.last_transfer_s = env.now
            if latency > 0:
                env.timeout(latency).callbacks.append(lambda _: self.landed.put(1))
            else:
                self.landed.put(1)

    def _dequant(self):
        while True:
            yield self.landed.get()
            yield self.env.timeout(self.dequant_s)
            self.ready.put(1)

    def _compute(self):
        env = self.env
        while True:
            yield self.ready.get()
            if self.mode == "stall":
                yield from self._stall(self.dequant_s)
            elif self.mode == "compute":
                yield from self._work(self.dequant_s)
                self.compute_work_s += self.dequant_s
            if math.isnan(self.first_math_s):
                self.first_math_s = env.now
            yield from self._work(self.compute_s)
            self.compute_work_s += self.compute_s
            self.free.put(1)
            self.consumed += 1
            if self.consumed == self.n_tiles:
                self.done.succeed(env.now)


def _run_kernel(env: simpy.Environment, work: KernelWork, cfg: PipelineConfig,
                tile_bytes: float, results: list[PipelineResult]):
    t0 = env.now
    launch = work.launch_s if cfg.include_launch else 0.0
    if launch > 0:
        yield env.timeout(launch)
    kernel = _Kernel(env, work, cfg, tile_bytes)
    start = env.now
    end = yield kernel.start()
    body = end - start
    results.append(PipelineResult(
        name=work.name, time_s=end - t0, roofline_time_s=work.roofline_time_s + launch,
        launch_s=launch, n_tiles=kernel.n_tiles, fill_s=kernel.first_math_s - start,
        drain_s=end - max(kernel.last_transfer_s, start),
        compute_busy=kernel.compute_work_s / cfg.n_compute / body if body > 0 else 1.0,
        dma_busy=kernel.dma_work_s / cfg.n_dma / body if body > 0 else 1.0))


def simulate_kernel(work: KernelWork, profile: HardwareProfile,
                    config: PipelineConfig = PipelineConfig()) -> PipelineResult:
    """One kernel through the pipeline (model in the module docstring)."""
    return _simulate([work], profile, config)[0]


def simulate_kernels(works: list[KernelWork], profile: HardwareProfile,
                     config: PipelineConfig = PipelineConfig()) -> pd.DataFrame:
    """Kernels back to back, each after its launch gap; one row per kernel.

    Columns: kernel, time_s, roofline_time_s, slowdown, launch_s, n_tiles, fill_s,
    drain_s, compute_busy, dma_busy, start_s.
    """
    results = _simulate(works, profile, config)
    frame = pd.DataFrame([r.as_dict() for r in results])
    frame["start_s"] = frame["time_s"].cumsum() - frame["time_s"]
    return frame


def _simulate(works: list[KernelWork], profile: HardwareProfile,
              config: PipelineConfig) -> list[PipelineResult]:
    if not works:
        raise InputError("no kernels to simulate")
    tile_bytes = config.tile_bytes_for(profile)
    config = replace(config, dma_latency_s=config.dma_latency_for(profile))
    env = simpy.Environment()
    results: list[PipelineResult] = []

    def sequence():
        for work in works:
            yield env.process(_run_kernel(env, work, config, tile_bytes, results))

    env.process(sequence())
    env.run()
    return results


def convert_s_per_op(profile: HardwareProfile, spec: OpSpec, quant) -> float:
    """Seconds per conversion op of an op's format, from the preferred execution plan
    (`resolve_exec`; weights' conversion when they convert, else the activations';
    attention converts KV). A per-op rate for reference; the kernel sequence takes the
    conversion time itself from the cost model (`KernelCost.convert_time_s`), whose
    kernels may choose another execution option for their shape."""
    fmt = quant.for_group(spec.group)
    if spec.kind == "attention":
        plan = resolve_exec(profile, fmt.kv_dtype, stream_dtype(fmt))
    elif spec.kind == "embedding":
        plan = resolve_exec(profile, fmt.weight_dtype, stream_dtype(fmt))
    else:
        plan = resolve_exec(profile, fmt.weight_dtype, fmt.act_dtype)
    if plan.w_convert_ops > 0:
        return plan.w_convert_s / plan.w_convert_ops
    return plan.a_convert_s / plan.a_convert_ops if plan.a_convert_ops > 0 else 0.0


def phase_kernels(phase: PhaseCost) -> list[KernelWork]:
    """The kernel sequence of a scalar PhaseCost: per-layer ops repeated for every layer,
    each with its per-kernel share of the cost (`KernelCost.scaled(1 / count)`) and its
    conversion time (`KernelCost.convert_time_s`) in the dequant stage; ops the pass
    leaves out (count 0) are skipped."""
    first: list[KernelWork] = []
    layer: list[KernelWork] = []
    last: list[KernelWork] = []
    n_layers = 0
    for spec, cost in zip(phase.specs, phase.costs):
        count = float(np.asarray(spec.count))
        if count == 0:
            continue
        one = cost.scaled(1.0 / count) if spec.per_layer else cost
        work = KernelWork.from_cost(spec.name, one, dequant_time_s=float(one.convert_time_s))
        if spec.per_layer:
            layer.append(work)
            n_layers = int(round(count))
        else:
            (last if layer else first).append(work)
    return first + layer * n_layers + last


def simulate_decode_step(profile, model, quant, batch: int, context_len: int,
                         config: PipelineConfig = PipelineConfig()
                         ) -> tuple[pd.DataFrame, dict]:
    """A decode step as its kernel sequence; returns (one row per kernel, totals).

    totals: time_s (simulated), roofline_time_s (decode_step_cost, launches included),
    slowdown, kernels, launch_s, pipeline_loss_s (fill, drain and serialisation: time
    beyond the per-kernel roofline times).
    """
    profile = load_profile(profile)
    phase = decode_step_cost(profile, model, quant, batch, context_len)
    if np.ndim(phase.time_s):
        raise InputError("simulate_decode_step needs a scalar batch and context length")
    works = phase_kernels(phase)
    frame = simulate_kernels(works, profile, config)
    time_s = float(frame["time_s"].sum())
    roofline = float(phase.time_s)
    launch = float(frame["launch_s"].sum())
    return frame, {"time_s": time_s, "roofline_time_s": roofline,
                   "slowdown": time_s / roofline, "kernels": len(frame), "launch_s": launch,
                   "pipeline_loss_s": time_s - float(frame["roofline_time_s"].sum())}
