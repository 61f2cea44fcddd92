"""Discrete-event simulation (simpy) of one device serving an LLM with continuous batching.

Two simpy processes share the device state:
- `arrivals` waits out each inter-arrival gap, then queues the request (or rejects it);
- `engine` runs iterations back to back: it admits queued requests, forms the batch,
  holds the device for the iteration time looked up in the cost tables (built from the
  simulator's cost model, `simulator.des.tables`), then advances every request in it.
  When nothing is runnable it sleeps until the next arrival.

Scheduling policy (iteration-level, as in Orca / vLLM):
- Admission is FIFO. A request is admitted when a batch slot is free (at most
  `max_batch` requests running) and the KV cache can hold its whole context, prompt +
  output tokens (reservation at admission, so there is no preemption). `on_full="wait"`
  queues requests until room frees up; `on_full="reject"` reserves KV cache at arrival
  and rejects a request that finds it full. A request longer than the whole KV cache is
  rejected at arrival in both modes (reason "exceeds_kv_capacity"), never left waiting.
- Without chunked prefill, an iteration is either a prefill of every newly admitted
  request (decodes pause, vLLM's default) or one decode step of every running request.
- With chunked prefill (budget T tokens per iteration, Sarathi-Serve / vLLM), every
  iteration decodes all running requests (one token each) and fills the rest of the
  budget with prompt chunks, oldest request first.
- Without chunking, a prefill iteration packs admitted prompts, oldest first, up to
  `max_batch_tokens` tokens (at least one prompt), as vLLM's max_num_batched_tokens.
- Prefill produces the first output token (TTFT); each decode step one more token.
  The decode step that writes token j+1 of a request with prompt L attends to L + j
  tokens.

Per request: queueing time (admission - arrival), TTFT (first token - arrival), TPOT
((finish - first token) / (output tokens - 1)), end-to-end latency (finish - arrival).
Energy: the iteration energies from the cost tables (dynamic: ops and bytes) through the
board power model (`simulator.power`: active baseline, cap) plus the idle floor while
nothing runs. Throttling is applied to each iteration's energy and to busy time, not to
the event timeline: when `throttled_iterations` > 0 the latencies are optimistic.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import simpy

from precsim.simulator.des.capacity import overload
from precsim.simulator.des.tables import CostTables, build_cost_tables, device_memory, resolve
from precsim.simulator.des.workload import Workload
from precsim.simulator.errors import Infeasible, InputError
from precsim.simulator.parallel import replica
from precsim.simulator.power import PowerParams, power_and_energy, power_params

OnFull = Literal["wait", "reject"]
REJECT_REASONS = ("", "exceeds_kv_capacity", "kv_cache_full")
PERCENTILES = (50, 90, 99)


class IterationCosts(Protocol):
    """Time (s) and energy (J) of one engine iteration, looked up from cost tables."""

    def prefill(self, n_seqs: int, prompt_tokens: int,
                prompt_lens: list[int] | None = None) -> tuple[float, float]:
        """A prefill of `n_seqs` prompts holding `prompt_tokens` tokens in all (of
        lengths `prompt_lens` when given)."""

    def decode(self, batch: int, context_tokens: int) -> tuple[float, float]:
        """One decode step of `batch` sequences attending to `context_tokens` in all."""

    def mixed(self, batch: int, context_tokens: int,
              chunks: list[tuple]) -> tuple[float, float]:
        """A decode step of `batch` sequences plus prompt chunks [(tokens already
        prefilled, new tokens, whether it is the prompt's last chunk), ...] in one pass
        (chunked prefill)."""


@dataclass(frozen=True)
class SchedulerConfig:
    """Continuous-batching knobs; `chunked_prefill_tokens=None` turns chunking off."""

    kv_capacity_tokens: int
    max_batch: int = 64
    max_batch_tokens: int = 8192
    chunked_prefill_tokens: int | None = None
    on_full: OnFull = "wait"
    power: PowerParams | None = None
    #: devices of one replica (tensor x pipeline parallel): each draws board power
    devices: int = 1

    def __post_init__(self) -> None:
        if int(self.max_batch) != self.max_batch or self.max_batch < 1:
            raise InputError(f"max batch: expected a whole number >= 1, got {self.max_batch!r}")
        if int(self.max_batch_tokens) != self.max_batch_tokens or self.max_batch_tokens < 1:
            raise InputError(f"max batch tokens: expected a whole number >= 1, "
                             f"got {self.max_batch_tokens!r}")
        if self.kv_capacity_tokens < 0:
            raise InputError(f"KV capacity must be >= 0 tokens, got {self.kv_capacity_tokens}")
        chunk = self.chunked_prefill_tokens
        if chunk is not None and (int(chunk) != chunk or chunk < 1):
            raise InputError(f"chunked prefill: expected a token budget >= 1, got {chunk!r}")
        if self.on_full not in ("wait", "reject"):
            raise InputError(f"on_full: expected 'wait' or 'reject', got {self.on_full!r}")


@dataclass
class ServingResult:
    """Per-request DataFrame, aggregate summary and counters of one simulation."""

    requests: pd.DataFrame
    summary: dict
    config: SchedulerConfig
    events: int
    iterations: pd.DataFrame = field(repr=False)

    def summary_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.summary])


class _Engine:
    """Device state and the two simpy processes; see the module docstring for the policy."""

    def __init__(self, workload: Workload, costs: IterationCosts, config: SchedulerConfig):
        self.w = workload
        self.costs = costs
        self.cfg = config
        n = len(workload)
        self.env = simpy.Environment()
        self.need = (workload.prompt_tokens + workload.output_tokens).tolist()
        self.prompt = workload.prompt_tokens.tolist()
        self.output = workload.output_tokens.tolist()
        self.admitted_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.reject_code = np.zeros(n, dtype=np.int8)
        self.waiting: deque[int] = deque()
        self.kv_free = int(config.kv_capacity_tokens)   # not yet reserved
        self.kv_peak = 0
        self.prefilling: deque[list[int]] = deque()     # [rid, prompt tokens done]
        self.decoding: list[tuple[int, int]] = []        # heap of (finish step, rid)
        self.base: dict[int, int] = {}                   # rid -> context - step
        self.sum_base = 0
        self.step = 0                                    # decode iterations so far
        self.arrivals_done = False
        self.wake: simpy.Event | None = None
        self.events = 0
        # one row per iteration: start, time, energy, decode batch, prefill tokens
        self.log: list[tuple[float, float, float, int, int]] = []

    # ---- arrivals ------------------------------------------------------------------------
    def arrivals(self):
        env, cfg = self.env, self.cfg
        capacity = cfg.kv_capacity_tokens
        reserve_at_arrival = cfg.on_full == "reject"
        for rid, t in enumerate(self.w.arrival_s.tolist()):
            if t > env.now:
                self.events += 1
                yield env.timeout(t - env.now)
            need = self.need[rid]
            if need > capacity:
                self.reject_code[rid] = 1
                continue
            if reserve_at_arrival:
                if need > self.kv_free:
                    self.reject_code[rid] = 2
                    continue
                self._reserve(need)
            self.waiting.append(rid)
            if self.wake is not None and not self.wake.triggered:
                self.wake.succeed()
        self.arrivals_done = True
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()

    def _reserve(self, tokens: int) -> None:
        self.kv_free -= tokens
        used = self.cfg.kv_capacity_tokens - self.kv_free
        if used > self.kv_peak:
            self.kv_peak = used

    # ---- engine --------------------------------------------------------------------------
    def _admit(self) -> None:
        reserved = self.cfg.on_full == "reject"
        room = self.cfg.max_batch - len(self.prefilling) - len(self.decoding)
        now = self.env.now
        while self.waiting and room > 0:
            rid = self.waiting[0]
            if not reserved:
                if self.need[rid] > self.kv_free:
                    break
                self._reserve(self.need[rid])
            self.waiting.popleft()
            self.admitted_s[rid] = now
            self.prefilling.append([rid, 0])
            room -= 1

    def _start_decoding(self, rid: int, now: float) -> None:
        """First token is out: finish now (1-token output) or join the decode heap."""
        self.first_token_s[rid] = now
        steps = self.output[rid] - 1
        if steps == 0:
            self._finish(rid, now)
            return
        base = self.prompt[rid] + 1 - self.step   # context of its first decode step - step
        self.base[rid] = base
        self.sum_base += base
        heapq.heappush(self.decoding, (self.step + steps, rid))

    def _finish(self, rid: int, now: float) -> None:
        self.finish_s[rid] = now
        self.kv_free += self.need[rid]

    def _advance_decodes(self, now: float) -> None:
        self.step += 1
        heap = self.decoding
        while heap and heap[0][0] == self.step:
            _, rid = heapq.heappop(heap)
            self.sum_base -= self.base.pop(rid)
            self._finish(rid, now)

    def _run(self, time_s: float, energy_j: float, batch: int, prefill_tokens: int):
        self.log.append((self.env.now, time_s, energy_j, batch, prefill_tokens))
        self.events += 1
        return self.env.timeout(time_s)

    def engine(self):
        env, costs = self.env, self.costs
        chunk_budget = self.cfg.chunked_prefill_tokens
        while True:
            self._admit()
            batch = len(self.decoding)
            if not self.prefilling and batch == 0:
                if self.arrivals_done and not self.waiting:
                    return
                self.wake = env.event()
                self.events += 1
                yield self.wake
                self.wake = None
                continue
            context = self.sum_base + batch * self.step
            if chunk_budget is None and self.prefilling:
                group, lens, tokens = [], [], 0
                for rid, _ in self.prefilling:
                    if group and tokens + self.prompt[rid] > self.cfg.max_batch_tokens:
                        break
                    group.append(rid)
                    lens.append(self.prompt[rid])
                    tokens += self.prompt[rid]
                time_s, energy_j = costs.prefill(len(group), tokens, lens)
                yield self._run(time_s, energy_j, 0, tokens)
                for rid in group:
                    self.prefilling.popleft()
                    self._start_decoding(rid, env.now)
            elif chunk_budget is None or not self.prefilling or batch >= chunk_budget:
                time_s, energy_j = costs.decode(batch, context)
                yield self._run(time_s, energy_j, batch, 0)
                self._advance_decodes(env.now)
            else:
                budget = chunk_budget - batch
                chunks: list[tuple[int, int, bool]] = []
                done = 0
                for entry in self.prefilling:
                    rid, progress = entry
                    take = min(self.prompt[rid] - progress, budget)
                    entry[1] = progress + take
                    last = entry[1] == self.prompt[rid]
                    chunks.append((progress, take, last))
                    budget -= take
                    if last:
                        done += 1
                    if budget == 0:
                        break
                time_s, energy_j = costs.mixed(batch, context, chunks)
                yield self._run(time_s, energy_j, batch, sum(chunk[1] for chunk in chunks))
                now = env.now
                if batch:
                    self._advance_decodes(now)
                for _ in range(done):
                    rid, _ = self.prefilling.popleft()
                    self._start_decoding(rid, now)

    def run(self) -> None:
        self.env.process(self.arrivals())
        self.env.process(self.engine())
        self.env.run()


def simulate_serving(workload: Workload, costs: IterationCosts,
                     config: SchedulerConfig) -> ServingResult:
    """Run the serving DES to completion; every request ends served or rejected."""
    engine = _Engine(workload, costs, config)
    engine.run()
    requests = _request_frame(workload, engine)
    iterations = pd.DataFrame(engine.log, columns=["start_s", "time_s", "energy_j",
                                                   "decode_batch", "prefill_tokens"])
    summary = summarize(requests, iterations, config, engine.kv_peak)
    summary["events"] = engine.events
    return ServingResult(requests=requests, summary=summary, config=config,
                         events=engine.events, iterations=iterations)


def serve(profile, model, quant, workload: Workload, *, max_batch: int = 64,
          max_batch_tokens: int = 8192, chunked_prefill_tokens: int | None = None,
          on_full: OnFull = "wait", kv_capacity_tokens: int | None = None,
          tables: CostTables | None = None, layout=None) -> ServingResult:
    """Simulate one device (or one replica of a `parallel.ParallelLayout`) serving
    `workload` (names or objects for profile/model/quant).

    KV capacity (tokens) = (main memory - weights - activation workspace) / KV bytes per
    token, at the format's weight and KV precision (`tables.device_memory`; per device
    of the layout's shard), unless `kv_capacity_tokens` is given. Pass `tables` (from
    `build_tables`, of the shard) to reuse them.
    """
    profile, model, quant = resolve(profile, model, quant)
    part, wrap, notes = replica(profile, model, quant, layout)
    devices = 1 if part is model else int(layout.tp * layout.pp)
    config = SchedulerConfig(kv_capacity_tokens=0, max_batch=max_batch,
                             max_batch_tokens=max_batch_tokens,
                             chunked_prefill_tokens=chunked_prefill_tokens, on_full=on_full,
                             power=power_params(profile), devices=devices)
    memory = device_memory(profile, part, quant, max_iteration_tokens(config, workload))
    if not memory.fits:
        raise Infeasible(
            f"{model.name} at {quant.name} does not fit "
            + (f"one {profile.name}" if devices == 1 else f"{devices} x {profile.name}")
            + f": weights {memory.weight_bytes / 1e9:.2f} GB + activations "
            f"{memory.activation_bytes / 1e9:.2f} GB > {memory.capacity_bytes / 1e9:.2f} GB "
            "of main memory per device; split it with --tp / --pp")
    if kv_capacity_tokens is not None:
        if isinstance(kv_capacity_tokens, bool) or int(kv_capacity_tokens) != kv_capacity_tokens \
                or kv_capacity_tokens < 0:
            raise InputError(f"KV capacity: expected a whole number of tokens >= 0, "
                             f"got {kv_capacity_tokens!r}")
    capacity = memory.kv_capacity_tokens if kv_capacity_tokens is None \
        else int(kv_capacity_tokens)
    config = replace(config, kv_capacity_tokens=capacity)
    if tables is None:
        tables = build_tables(profile, part, quant, workload, config)
    costs = wrap(tables)
    result = simulate_serving(workload, costs, config)
    result.summary |= overload(costs, result.requests, max_batch, max_batch_tokens,
                               capacity).as_dict()
    result.summary |= {"profile": profile.name, "model": model.name, "quant": quant.name,
                       "weight_bytes": memory.weight_bytes,
                       "kv_bytes_per_token": memory.kv_bytes_per_token,
                       "kv_capacity_bytes": capacity * memory.kv_bytes_per_token}
    if part is not model:
        result.summary |= {"layout": layout.describe(), "devices": devices}
    if notes:
        result.summary["approximations"] = notes
    return result


def max_iteration_tokens(config: SchedulerConfig, workload: Workload) -> int:
    """Most tokens one iteration can process: the chunk budget, else the prefill token
    limit (or the longest prompt, which always runs alone if longer), or a full decode."""
    if config.chunked_prefill_tokens is not None:
        return max(int(config.chunked_prefill_tokens), config.max_batch)
    return max(config.max_batch_tokens, int(workload.prompt_tokens.max()), config.max_batch)


def build_tables(profile, model, quant, workload: Workload,
                 config: SchedulerConfig) -> CostTables:
    """Cost tables covering every iteration `workload` can form under `config`."""
    profile, model, quant = resolve(profile, model, quant)
    return build_cost_tables(profile, model, quant, max_batch=config.max_batch,
                             max_context=workload.max_context_tokens,
                             max_prompt=int(workload.prompt_tokens.max()),
                             chunk_tokens=config.chunked_prefill_tokens,
                             prompt_lengths=workload.prompt_tokens)


def _request_frame(workload: Workload, engine: _Engine) -> pd.DataFrame:
    frame = workload.to_frame()
    arrival = workload.arrival_s
    frame["admitted_s"] = engine.admitted_s
    frame["first_token_s"] = engine.first_token_s
    frame["finish_s"] = engine.finish_s
    frame["queue_s"] = engine.admitted_s - arrival
    frame["ttft_s"] = engine.first_token_s - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = (engine.finish_s - engine.first_token_s) / (workload.output_tokens - 1)
    frame["tpot_s"] = np.where(workload.output_tokens > 1, tpot, np.nan)
    frame["e2e_s"] = engine.finish_s - arrival
    frame["rejected"] = engine.reject_code > 0
    frame["reject_reason"] = pd.Categorical.from_codes(engine.reject_code,
                                                       categories=list(REJECT_REASONS))
    return frame


def _percentiles(values: np.ndarray, name: str) -> dict:
    """p50/p90/p99 (numpy 'linear' percentile) and mean of the finite `values`."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {f"{name}_p{q}_s": float("nan") for q in PERCENTILES} | {
            f"{name}_mean_s": float("nan")}
    points = np.percentile(values, PERCENTILES)
    out = {f"{name}_p{q}_s": float(v) for q, v in zip(PERCENTILES, points)}
    out[f"{name}_mean_s"] = float(values.mean())
    return out


def summarize(requests: pd.DataFrame, iterations: pd.DataFrame, config: SchedulerConfig,
              kv_peak_tokens: int = 0) -> dict:
    """Aggregates: latency percentiles, throughput, energy per token, utilisation, rejects.

    makespan = last finish - first arrival; throughput = output tokens of served
    requests / makespan; energy = board energy of every iteration (`config.power`: the
    `simulator.power` model; None: the iteration energies as given) + idle floor x idle
    time; split into static (idle + active baseline) and dynamic; utilisation = busy
    time / makespan.
    """
    served = requests[~requests["rejected"]]
    out_tokens = int(served["output_tokens"].sum())
    start = float(requests["arrival_s"].min())
    end = float(served["finish_s"].max()) if len(served) else start
    makespan = end - start
    if config.power is None:
        busy = float(iterations["time_s"].sum())
        dynamic, static, throttled = float(iterations["energy_j"].sum()), 0.0, 0
    else:
        board = power_and_energy(config.power, iterations["time_s"].to_numpy(),
                                 iterations["energy_j"].to_numpy(), devices=config.devices,
                                 run_time_s=makespan)
        busy = float(np.sum(board.time_s))
        static = float(np.sum(board.static_j) + config.devices * config.power.static_w
                       * max(makespan - busy, 0.0))
        dynamic, throttled = float(np.sum(board.dynamic_j)), int(np.sum(board.throttled))
    energy = static + dynamic
    decode_iters = iterations["decode_batch"] > 0
    summary = {"requests": len(requests), "served": len(served),
               "rejected": int(requests["rejected"].sum()),
               "rejected_exceeds_kv_capacity": int(
                   (requests["reject_reason"] == "exceeds_kv_capacity").sum()),
               "rejected_kv_cache_full": int(
                   (requests["reject_reason"] == "kv_cache_full").sum())}
    for name in ("ttft", "tpot", "e2e", "queue"):
        summary |= _percentiles(served[f"{name}_s"].to_numpy(), name)
    summary |= {
        "makespan_s": makespan,
        "output_tokens": out_tokens,
        "throughput_tokens_per_s": out_tokens / makespan if makespan > 0 else float("nan"),
        "throughput_requests_per_s": len(served) / makespan if makespan > 0 else float("nan"),
        "energy_j": energy,
        "energy_per_token_j": energy / out_tokens if out_tokens else float("nan"),
        "energy_per_request_j": energy / len(served) if len(served) else float("nan"),
        "average_power_w": energy / makespan if makespan > 0 else float("nan"),
        "energy_static_j": static, "energy_dynamic_j": dynamic,
        "throttled_iterations": throttled,
        "busy_s": busy,
        "utilization": min(busy / makespan, 1.0) if makespan > 0 else float("nan"),
        "iterations": len(iterations),
        "mean_decode_batch": float(iterations.loc[decode_iters, "decode_batch"].mean())
        if decode_iters.any() else float("nan"),
        "kv_capacity_tokens": int(config.kv_capacity_tokens),
        "kv_peak_tokens": int(kv_peak_tokens),
        "max_batch": int(config.max_batch),
        "max_batch_tokens": int(config.max_batch_tokens),
        "chunked_prefill_tokens": config.chunked_prefill_tokens,
        "on_full": config.on_full,
    }
    return summary
