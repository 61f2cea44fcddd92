"""Plans: the N, D, training precision and serving format cheapest on real silicon.

Joins lawcore (loss from N, D, training bits, post-training bits) with simulator (time
and energy on a hardware profile). Decision variables: N (non-embedding parameters),
D (training tokens), a training format (weight/activation/KV bits) and a serving
QuantFormat, whose weight bits are the post-training precision P_post.

Costs, in device-seconds and joules, combined by the objective (time, energy, or
dollars = device-hours x $/device-hour + kWh x $/kWh):
* training: D tokens priced by the training-step model (`simulator.training.
  token_costs`: forward, backward, recomputation, casts, optimizer, communication on
  the study's devices / sequence / global batch / ZeRO stage / recompute mode) at the
  plan's N (the parametric family `model_for_params`), in each training format's
  recipe (`TrainFormat.recipe_name`: stated in the study, else bf16 at 16 bits and
  forward-only quantised training below, as the precision law's runs trained): device
  time and energy per token times D. `train_flops` stays the 6·N·D count (Kaplan et al.
  2020) for reference; `train_dtype` is the element type the format's GEMMs would run
  in (`simulator.matmul.matmul_cost`, the cheapest pair holding its bits). Training
  energy comes from the one power model (`simulator.power`: idle floor, active
  baseline, dynamic energy, cap).
* serving: `tokens_served` generated tokens in requests of prompt_len + output_len on
  the deployment profile, priced by `simulator.cost.simulate` (a batch's prefill plus
  every decode step): device time per token = the batch's end-to-end latency /
  (batch x output_len), energy per generated token from the same call. Constraints:
  weights + KV cache + activations fit the main memory (`fits`); the mean TPOT and the
  TTFT meet the SLO.

Search: for every (training format, serving format) and every N of a dense log grid,
the smallest D reaching the target loss is found on a log D grid and refined by
bisection (the loss falls with D until post-training-quantization degradation takes
over, so the smallest feasible D is the first crossing). Training cost grows with D
and serving cost does not depend on it, so that D is the cheapest for the (N, formats).
The abstract-cost optimum of the paper (C = (6/16)·N·D·P, tied precision, no PTQ,
`lawcore.training_compute_flops`) is found by the same search and checked against
`lawcore.compute_optimal`.

The question is a `codesign.problem.PlanProblem` (from a study:
`codesign.study.problem_from_study`); the answer a `PlanResult` whose optimum is a
`codesign.candidate.Candidate`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precsim import lawcore
from precsim.codesign.candidate import Candidate, PhaseCost
from precsim.codesign.multidevice import serving_totals
from precsim.codesign.law_search import LawSolution, solve_law
from precsim.codesign.problem import SERVING_QUANT_PROXY, CostWeights, PlanProblem
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.matmul import matmul_cost
from precsim.simulator.models import model_for_params
from precsim.simulator.power import power_and_energy
from precsim.simulator.quant import DTYPE_BITS
from precsim.simulator.training import token_costs

TRAIN_FLOPS_PER_PARAM_TOKEN = 6.0   # 6·N·D training FLOPs
TRAIN_FLOPS_UNIT = 1e18             # FLOPs priced once per pair (time and energy are linear)
#: Element types training operands may run in (any type at least as wide as the bits).
TRAIN_DTYPES = ("ternary", "int4", "fp4_e2m1", "int8", "fp8_e4m3", "bf16", "fp16", "fp32")
#: Decode contexts sampled per request by simulator.cost.simulate (midpoint rule; exact
#: where the step cost is linear in context).
DECODE_NODES = 8


# ---- training cost ---------------------------------------------------------------------------

def _dtypes_for(bits: float) -> list[str]:
    return [d for d in TRAIN_DTYPES if DTYPE_BITS[d] >= bits - 1e-9]


def _pair_rates(profile, weights: CostWeights) -> dict:
    """(weight dtype, act dtype) -> (cost, s/FLOP, J/FLOP, exec dtype) for pairs that run,
    from `simulator.matmul.matmul_cost` (time and energy of large-GEMM FLOPs)."""
    hw = as_hardware(profile)
    out = {}
    for wd in TRAIN_DTYPES:
        for ad in TRAIN_DTYPES:
            try:
                rate = matmul_cost(hw, TRAIN_FLOPS_UNIT, wd, ad)
            except InputError:
                continue  # this pair cannot run on the profile
            board = power_and_energy(hw, rate.time_s, rate.energy_j)  # cap, baseline
            s_per = float(board.time_s) / TRAIN_FLOPS_UNIT
            j_per = float(board.energy_j) / TRAIN_FLOPS_UNIT
            out[wd, ad] = (float(weights.cost("train", s_per, j_per)), s_per, j_per,
                           str(rate.exec_dtype))
    return out


def training_token_costs(problem: PlanProblem, N: np.ndarray) -> dict[str, np.ndarray]:
    """Per (training format, N): device-seconds and joules per trained token, MFU and
    whether the run fits the training devices (`simulator.training.token_costs`); zero
    cost and fitting without a training profile."""
    shape = (len(problem.train_formats), N.size)
    out = {"device_s_per_token": np.zeros(shape), "j_per_token": np.zeros(shape),
           "mfu": np.full(shape, np.nan), "fits": np.ones(shape, dtype=bool)}
    if problem.train_profile is None:
        return out
    for k, fmt in enumerate(problem.train_formats):
        try:
            per = token_costs(problem.train_profile, N, fmt.recipe_name,
                              **problem.train_layout)
        except InputError:   # a recipe the profile cannot run (fp8 on an A100)
            out["device_s_per_token"][k] = out["j_per_token"][k] = np.inf
            continue
        for key in out:
            out[key][k] = per[key]
    return out


def training_rates(problem: PlanProblem) -> pd.DataFrame:
    """Per training format: its recipe and the element types its GEMMs run in.

    Weights and activations of b bits may run in any type at least b bits wide; the
    pair with the lowest objective cost per FLOP wins (ties: faster, then narrower).
    """
    profile = problem.train_profile
    pairs = _pair_rates(profile, problem.weights) if profile is not None else {}
    rows = []
    for fmt in problem.train_formats:
        row = {"train_format": fmt.name,
               "recipe": fmt.recipe_name if profile is not None else None,
               "weight_dtype": None, "act_dtype": None,
               "exec_dtype": None, "native": None, "seconds_per_flop": 0.0,
               "joules_per_flop": 0.0, "cost_per_flop": 0.0}
        if profile is not None:
            options = [(v[0], v[1], DTYPE_BITS[wd] + DTYPE_BITS[ad], wd, ad)
                       for (wd, ad), v in pairs.items()
                       if wd in _dtypes_for(fmt.weight_bits) and ad in _dtypes_for(fmt.act_bits)]
            if not options:
                row.update(native=False, seconds_per_flop=np.inf, joules_per_flop=np.inf,
                           cost_per_flop=np.inf)
            else:
                *_, wd, ad = min(options)
                cost, s_per, j_per, ex = pairs[wd, ad]
                row.update(weight_dtype=wd, act_dtype=ad, exec_dtype=ex,
                           native=profile.native(wd) and profile.native(ad),
                           seconds_per_flop=s_per, joules_per_flop=j_per, cost_per_flop=cost)
        rows.append(row)
    return pd.DataFrame(rows)


# ---- serving cost ----------------------------------------------------------------------------

def serving_costs(problem: PlanProblem, N: np.ndarray) -> dict[str, np.ndarray]:
    """Per (serving format, N): lifetime serving time/energy, TPOT, TTFT, memory, fits.

    One `simulator.cost.simulate` call per format prices a batch of requests (prefill +
    every decode step) for all N and every candidate batch at once; the device time per generated token is the
    batch's end-to-end latency / (batch x output_len). Arrays of shape
    (len(serve_axis), N.size); without a deployment: zeros, all feasible. The batch is
    searched (`Workload.batch_candidates`): per (format, N) the batch with the lowest
    serving objective cost per token among those that fit and meet the SLO (none does:
    the smallest batch, reported infeasible), in `serve_batch`. With the
    study's `max_devices_per_replica` above 1, a model that does not fit one device is
    priced on the smallest fitting tensor-parallel replica (`codesign.multidevice`):
    device time then counts all `devices_per_replica` devices.
    """
    shape = (len(problem.serve_axis), N.size)
    if problem.deploy_profile is None:
        zero = np.zeros(shape)
        return {"serve_time_s": zero, "serve_energy_j": zero, "tpot_s": zero,
                "ttft_s": zero, "memory_bytes": zero, "fits": np.ones(shape, bool),
                "slo_ok": np.ones(shape, bool), "devices_per_replica": np.ones(shape),
                "serve_batch": np.zeros(shape)}
    wl = problem.workload
    each = serving_at_batch(problem, N, wl, np.array(wl.batch_candidates(), float))
    # the cheapest batch that fits and meets the SLO; where none does, the smallest
    cost = np.where(each["fits"] & each["slo_ok"], problem.weights.cost(
        "deploy", each["serve_time_s"], each["serve_energy_j"]), np.inf)
    pick = np.where(np.isfinite(cost).any(axis=0), np.argmin(cost, axis=0), 0)
    return {k: np.take_along_axis(v, pick[None], 0)[0] for k, v in each.items()}


def serving_at_batch(problem: PlanProblem, N: np.ndarray, wl,
                     batches: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """serving_costs at one request batch `wl.batch`: arrays (len(serve_axis), N.size);
    `batches` (B,) prices each of them instead, in the same one `simulate` call per
    format: arrays (B, len(serve_axis), N.size)."""
    lead = () if batches is None else (len(batches),)
    shape = (*lead, len(problem.serve_axis), N.size)
    batch = wl.batch if batches is None else np.asarray(batches, float)[:, None]
    prof = problem.deploy_profile
    model = model_for_params(N, **problem.model_options)
    cols: dict[str, list] = {k: [] for k in ("serve_time_s", "serve_energy_j", "tpot_s",
                                             "ttft_s", "memory_bytes", "fits",
                                             "devices_per_replica")}
    for fmt in problem.serve_axis:
        tot = serving_totals(prof, model, fmt, wl, problem.max_devices_per_replica,
                             batch=batch, decode_nodes=DECODE_NODES)
        tokens = batch * wl.output_len
        cols["devices_per_replica"].append(tot["devices_per_replica"])
        cols["serve_time_s"].append(wl.tokens_served * tot["e2e_latency_s"]
                                    * tot["devices_per_replica"] / tokens)
        cols["serve_energy_j"].append(wl.tokens_served * tot["energy_per_token_j"])
        cols["tpot_s"].append(tot["tpot_s"])
        cols["ttft_s"].append(tot["ttft_s"])
        cols["memory_bytes"].append(tot["memory_bytes"])
        cols["fits"].append(tot["fits"])
    # per format (…, N) -> (…, format, N)
    res = {k: np.broadcast_to(np.stack([np.broadcast_to(
        np.asarray(x, dtype=bool if k == "fits" else float), (*lead, N.size)) for x in v],
        axis=-2), shape).copy() for k, v in cols.items()}
    slo = np.ones(shape, bool)
    with np.errstate(invalid="ignore"):
        if wl.slo.tpot is not None:
            slo &= ~(res["tpot_s"] > wl.slo.tpot)
        if wl.slo.ttft is not None:
            slo &= res["ttft_s"] <= wl.slo.ttft
    res["slo_ok"] = slo
    res["serve_batch"] = np.broadcast_to(np.reshape(np.asarray(batch, float),
                                                    (*lead, 1, 1)), shape).copy()
    return res


# ---- the plan --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanResult:
    """The optimum (None: no candidate is feasible), the best candidate per format pair
    (`by_format`: Candidate.to_dict() + feasible, reason), the Pareto frontier, the
    paper's abstract-cost optimum and the training rates."""

    problem: PlanProblem
    optimum: Candidate | None
    by_format: pd.DataFrame
    frontier: pd.DataFrame
    abstract: dict
    train_rates: pd.DataFrame
    iso_loss: pd.DataFrame          # smallest D reaching the target per (bits, N)
    candidates: int
    elapsed_s: float

    def summary(self) -> dict:
        """The JSON-ready essentials (the CLI's `plan --json`)."""
        p = self.problem
        return {"target_loss": p.target_loss, "objective": p.weights.objective,
                "train_profile": getattr(p.train_profile, "name", None),
                "deploy_profile": getattr(p.deploy_profile, "name", None),
                "optimum": self.optimum.to_dict() if self.optimum is not None else None,
                "abstract_optimum": self.abstract,
                "by_format": self.by_format.to_dict(orient="records"),
                "pareto": self.frontier.to_dict(orient="records"),
                "training_rates": self.train_rates.to_dict(orient="records"),
                "serving_quantization": SERVING_QUANT_PROXY,
                "candidates_evaluated": self.candidates, "elapsed_s": self.elapsed_s}


def _reasons(reach, fits, slo_ok, runnable) -> str:
    """Why a (training, serving) pair has no feasible plan; `runnable`: per N, the
    training recipe runs and fits the training devices."""
    if not runnable.any():
        return "training recipe cannot run or does not fit on the training devices"
    reach = reach & runnable
    if not reach.any():
        return "target loss not reachable in the N x D search range"
    if not (reach & fits).any():
        return "no model reaching the target fits the device memory"
    return "no model reaching the target and fitting memory meets the SLO"


def hardware_costs(problem: PlanProblem, train: tuple | None = None,
                   serve: dict | None = None) -> tuple[pd.DataFrame, dict, dict]:
    """The law-free half of a plan: training rates, serving costs and training costs per
    token over the N grid. `train` (rates, training costs) or `serve`: a part already
    priced for the same profile in that role (what-if variants of the other role)."""
    N = np.asarray(problem.N_grid, float)
    rates, tok = train or (training_rates(problem), training_token_costs(problem, N))
    return rates, serving_costs(problem, N) if serve is None else serve, tok


@dataclass(frozen=True)
class Priced:
    """Every (format pair, N) of a plan priced at its smallest D: arrays (pairs, N)."""

    problem: PlanProblem
    law: LawSolution
    rates: pd.DataFrame
    serve: dict
    tok: dict
    cost: dict          # train_s, train_j, serve_s, serve_j, train_cost, serve_cost, total
    D_min: np.ndarray
    runnable: np.ndarray
    hw_ok: np.ndarray
    feasible: np.ndarray
    masked: np.ndarray  # total cost where feasible, else inf

    @property
    def t_idx(self) -> np.ndarray:
        return np.array([p[0] for p in self.law.pairs])

    @property
    def s_idx(self) -> np.ndarray:
        return np.array([p[1] for p in self.law.pairs])

    def candidate(self, c: int, i: int) -> Candidate:
        """Pair c at the i-th N of the grid."""
        problem, w, serve, k = self.problem, self.problem.weights, self.serve, self.cost
        ti, si = self.law.pairs[c]
        t, s, r = problem.train_formats[ti], problem.serve_axis[si], self.rates.iloc[ti]
        N, bits = np.asarray(problem.N_grid, float), self.law.bits
        return Candidate(
            train_format=t.name, weight_bits=t.weight_bits, act_bits=t.act_bits,
            kv_bits=t.kv_bits, train_dtype=r["exec_dtype"],
            train_native=None if r["native"] is None else bool(r["native"]),
            train_recipe=r["recipe"],
            train_mfu=None if problem.train_profile is None
            else float(self.tok["mfu"][ti, i]),
            serve_format=s.name if s is not None else None,
            P_post=None if not np.isfinite(bits[c, 3]) else float(bits[c, 3]),
            N=float(N[i]), D=float(self.D_min[c, i]),
            loss=float(self.law.sol.loss_at[self.law.inverse[c], i]),
            train_flops=float(TRAIN_FLOPS_PER_PARAM_TOKEN * N[i] * self.D_min[c, i]),
            training=PhaseCost(float(k["train_s"][c, i]), float(k["train_j"][c, i]),
                               float(k["train_cost"][c, i]), float(w.cost(
                                   "train", k["train_s"][c, i], k["train_j"][c, i],
                                   "dollars"))),
            serving=PhaseCost(float(k["serve_s"][c, i]), float(k["serve_j"][c, i]),
                              float(k["serve_cost"][c, i]), float(w.cost(
                                  "deploy", k["serve_s"][c, i], k["serve_j"][c, i],
                                  "dollars"))),
            tpot_s=float(serve["tpot_s"][si, i]), ttft_s=float(serve["ttft_s"][si, i]),
            memory_bytes=float(serve["memory_bytes"][si, i]),
            serve_devices=int(serve["devices_per_replica"][si, i]),
            serve_batch=int(serve["serve_batch"][si, i]) if s is not None else None,
            N_at_grid_edge=bool(i in (0, N.size - 1)),
            D_at_grid_edge=bool(self.law.sol.at_edge[self.law.inverse[c], i]))

    def optimum(self) -> Candidate | None:
        """The cheapest feasible candidate (None: none is feasible)."""
        flat = int(np.argmin(self.masked))
        if not np.isfinite(self.masked.flat[flat]):
            return None
        return self.candidate(*np.unravel_index(flat, self.masked.shape))

    def by_format(self) -> pd.DataFrame:
        """The best candidate per format pair, or why the pair has none."""
        rows = []
        for c, (ti, si) in enumerate(self.law.pairs):
            i = int(np.argmin(self.masked[c]))
            if np.isfinite(self.masked[c, i]):
                rows.append({**self.candidate(c, i).to_dict(), "feasible": True, "reason": ""})
                continue
            t, s = self.problem.train_formats[ti], self.problem.serve_axis[si]
            rows.append({"train_format": t.name, "weight_bits": t.weight_bits,
                         "act_bits": t.act_bits, "kv_bits": t.kv_bits,
                         "serve_format": s.name if s is not None else None,
                         "feasible": False,
                         "reason": _reasons(np.isfinite(self.D_min[c]),
                                            self.serve["fits"][si], self.serve["slo_ok"][si],
                                            self.runnable[c])})
        return pd.DataFrame(rows)


def price(problem: PlanProblem, hardware: tuple | None = None,
          solution: LawSolution | None = None) -> Priced:
    """Every candidate of a plan priced: the law half (`solve_law`) joined with the
    hardware half (`hardware_costs`); either may be given, computed once and reused."""
    law = solution or solve_law(problem)
    rates, serve, tok = hardware or hardware_costs(problem)
    w = problem.weights
    t_idx = np.array([p[0] for p in law.pairs])
    s_idx = np.array([p[1] for p in law.pairs])
    per_tok_s, per_tok_j = tok["device_s_per_token"][t_idx], tok["j_per_token"][t_idx]
    D_min = law.sol.D_min[law.inverse]
    train_s, train_j = D_min * per_tok_s, D_min * per_tok_j
    serve_s, serve_j = serve["serve_time_s"][s_idx], serve["serve_energy_j"][s_idx]
    train_cost, serve_cost = w.cost("train", train_s, train_j), w.cost("deploy", serve_s, serve_j)
    cost = train_cost + serve_cost
    runnable = np.isfinite(per_tok_s) & tok["fits"][t_idx]
    hw_ok = serve["fits"][s_idx] & serve["slo_ok"][s_idx] & runnable
    feasible = np.isfinite(D_min) & hw_ok
    return Priced(problem, law, rates, serve, tok,
                  {"train_s": train_s, "train_j": train_j, "serve_s": serve_s,
                   "serve_j": serve_j, "train_cost": train_cost, "serve_cost": serve_cost,
                   "total": cost},
                  D_min, runnable, hw_ok, feasible, np.where(feasible, cost, np.inf))


def plan(problem: PlanProblem, hardware: tuple | None = None,
         solution: LawSolution | None = None) -> PlanResult:
    """The cheapest (N, D, training format, serving format) reaching the target loss.

    `hardware`: `hardware_costs(problem)`, `solution`: `solve_law(problem)`, computed once
    and reused (robustness ensemble, lifetime sweep). A caller that needs only the optimum
    and the best candidate per pair prices them (`price`) without the frontier.
    """
    start = time.perf_counter()
    p = price(problem, hardware, solution)
    N, D_grid = np.asarray(problem.N_grid, float), np.asarray(problem.D_grid, float)
    sol, t_idx, s_idx, w = p.law.sol, p.t_idx, p.s_idx, problem.weights
    # Pareto frontier (loss vs cost) over the grid candidates and the refined smallest-D
    # points that run on the hardware
    C, n, m = len(p.law.pairs), N.size, D_grid.size
    per_tok_s, per_tok_j = p.tok["device_s_per_token"][t_idx], p.tok["j_per_token"][t_idx]
    grid_cost = (D_grid[None, None, :] * w.cost("train", per_tok_s, per_tok_j)[:, :, None]
                 + p.cost["serve_cost"][:, :, None])
    cloud = {
        "cost": np.concatenate([grid_cost.ravel(), p.cost["total"].ravel()]),
        "loss": np.concatenate([sol.grid_loss[p.law.inverse].ravel(),
                                sol.loss_at[p.law.inverse].ravel()]),
        "ok": np.concatenate([np.broadcast_to(p.hw_ok[:, :, None], (C, n, m)).ravel(),
                              p.feasible.ravel()]),
        "combo": np.concatenate([np.repeat(np.arange(C), n * m), np.repeat(np.arange(C), n)]),
        "N": np.concatenate([np.tile(np.repeat(N, m), C), np.tile(N, C)]),
        "D": np.concatenate([np.tile(D_grid, C * n), p.D_min.ravel()])}
    frontier = _frontier(cloud, problem, t_idx, s_idx)
    uniq = p.law.uniq
    abstract = _abstract_optimum(problem, sol, uniq, p.law.bits, p.law.pairs, N, p.rates,
                                 p.masked)
    # candidates: every (training, serving, N, D) costed: the grid plus the bisection points
    candidates = C * N.size * (D_grid.size + problem.bisection_steps)
    rep = np.repeat(uniq, N.size, axis=0)
    iso = pd.DataFrame({"weight_bits": rep[:, 0], "act_bits": rep[:, 1], "kv_bits": rep[:, 2],
                        "P_post": np.where(np.isfinite(rep[:, 3]), rep[:, 3], np.nan),
                        "N": np.tile(N, len(uniq)), "D": sol.D_min.ravel()})
    return PlanResult(problem, p.optimum(), p.by_format(), frontier, abstract, p.rates, iso,
                      candidates, time.perf_counter() - start)


def _frontier(cloud: dict, problem: PlanProblem, t_idx, s_idx) -> pd.DataFrame:
    """Points no other candidate beats on both loss and cost (lower-left envelope)."""
    c = np.where(cloud["ok"], cloud["cost"], np.inf)
    finite = np.flatnonzero(np.isfinite(c))       # sorted alone: same order, fewer to sort
    order = finite[np.argsort(c[finite], kind="stable")]
    loss = cloud["loss"][order]
    keep = np.ones(order.size, bool)
    keep[1:] = loss[1:] < np.minimum.accumulate(loss)[:-1]
    sel = order[keep]
    combo = cloud["combo"][sel]
    return pd.DataFrame({
        "cost": c[sel], "loss": cloud["loss"][sel],
        "train_format": [problem.train_formats[t_idx[k]].name for k in combo],
        "serve_format": [getattr(problem.serve_axis[s_idx[k]], "name", None) for k in combo],
        "N": cloud["N"][sel], "D": cloud["D"][sel]})


def _abstract_optimum(problem, sol, uniq, bits, pairs, N, rates, masked) -> dict:
    """The paper's optimum at the target loss: minimise (6/16)·N·D·P over tied training
    precisions without PTQ; checked against lawcore.compute_optimal at that budget and
    priced on real silicon (trained as the plan would train that format, served in the
    cheapest format that does not quantise it further)."""
    tied = [k for k, row in enumerate(uniq)
            if row[0] == row[1] == row[2] and not np.isfinite(row[3])]
    if not tied:
        return {"available": False,
                "reason": "no tied training precision served without PTQ in the search"}
    P = uniq[tied, 0][:, None]
    D_min = sol.D_min[tied]
    with np.errstate(invalid="ignore"):
        c_abs = np.where(np.isfinite(D_min), np.asarray(lawcore.training_compute_flops(
            np.broadcast_to(N, D_min.shape), np.nan_to_num(D_min, nan=1.0),
            np.broadcast_to(P, D_min.shape))), np.inf)
    flat = int(np.argmin(c_abs))
    if not np.isfinite(c_abs.flat[flat]):
        return {"available": False, "reason": "target loss not reachable at any tied precision"}
    k, i = np.unravel_index(flat, c_abs.shape)
    budget = float(c_abs[k, i])
    fixed = None if problem.law.models_training_precision else float(P[k, 0])
    try:
        paper = lawcore.compute_optimal(budget, problem.law, precision=fixed).to_dict()
    except lawcore.LawInputError as exc:  # laws without a size-free N_eff/N factor
        paper = {"available": False, "reason": str(exc)}
    out = {"available": True, "precision_bits": float(P[k, 0]), "N": float(N[i]),
           "D": float(D_min[k, i]), "loss": float(sol.loss_at[tied[k], i]),
           "abstract_cost": budget, "lawcore_compute_optimal": paper}
    # real-silicon price of that choice: the combos with the same bits and no PTQ
    same = [c for c in range(len(pairs))
            if np.array_equal(bits[c, :3], uniq[tied[k], :3]) and bits[c, 3] >= P[k, 0]]
    real = [(masked[c, i], c) for c in same if np.isfinite(masked[c, i])]
    if real:
        value, c = min(real)
        t = problem.train_formats[pairs[c][0]]
        s = problem.serve_axis[pairs[c][1]]
        out.update(real_cost=float(value), train_format=t.name,
                   train_dtype=rates.iloc[pairs[c][0]]["exec_dtype"],
                   serve_format=getattr(s, "name", None))
    else:
        out.update(real_cost=None, train_format=None, serve_format=None,
                   note="the paper's choice does not fit or meet the SLO on this profile"
                   if same else "no serving format keeps the paper's precision")
    return out
