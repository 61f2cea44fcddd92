"""The public Python API of PrecSim: the same functions the CLI calls.

Every function takes names or loaded objects, so a script can stay short::

    import precsim
    result = precsim.simulate("h100-sxm", "llama-3-8b", "W4A16-g128", batch=8)
    result.totals["tpot_s"], result.ops.head()
    answer = precsim.plan(deploy_profile="apple-m2")
    answer.optimum
    precsim.get_law("kumar2024").predict(1.5e9, 30e9, P_post=4)
"""
from __future__ import annotations

import functools
import os

from precsim.simulator.cost import SimulationResult
from precsim.simulator.errors import InputError
from precsim.simulator.models import TransformerConfig, get_model, list_models
from precsim.simulator.profile_loader import cached_profile, list_profiles
from precsim.simulator.profile_loader import load_profile as _load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import QuantFormat, parse_quant
from precsim.simulator.runtime import list_runtimes, load_runtime

__all__ = ["InputError", "compute_optimal", "get_law", "get_model", "list_laws",
           "list_models", "list_profiles", "list_runtimes", "load_profile",
           "load_runtime", "parse_quant", "plan", "simulate", "simulate_grid"]


def load_profile(name_or_path: str | os.PathLike | HardwareProfile,
                 profile_dirs=()) -> HardwareProfile:
    """A shipped profile by name (`precsim profiles list`) or a YAML file, validated.

    Without `profile_dirs` a name or path is read once and memoised while its file is
    unchanged (`cached_profile`): profiles are frozen, edit one with `with_overrides`."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    if not profile_dirs:
        return cached_profile(name_or_path)
    return _load_profile(name_or_path, profile_dirs)


def list_laws() -> list[str]:
    """The law presets `get_law` accepts."""
    from precsim.lawcore import LAWS
    return list(LAWS)


def __getattr__(name: str):
    """`get_law` and `compute_optimal` from lawcore on first use: lawcore loads pandas,
    which `simulate` does not need (a first call ~0.3 s sooner)."""
    if name in ("get_law", "compute_optimal"):
        import precsim.lawcore
        return getattr(precsim.lawcore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def simulate(profile: str | HardwareProfile, model: str | TransformerConfig,
             quant: str | QuantFormat = "W16A16", *, batch=1, prompt=512, gen=128,
             flash: bool = True, fused_dequant: bool = True, tp=1, pp=1,
             ep=1, runtime=None, unit: str | None = None, prefill_unit: str | None = None,
             decode_unit: str | None = None) -> SimulationResult:
    """Time, bytes moved and energy of serving `batch` requests (prompt + gen tokens).

    Returns `.totals` (a dict: ttft_s, tpot_s, energy_j, fits, bytes_moved, ...) and
    `.ops` (a per-operator DataFrame). Numeric arguments may be numpy arrays: the
    result then holds arrays that broadcast like the inputs (one call, many configs).
    `tp`/`pp`/`ep` split one replica over tp x pp devices (`precsim simulate --tp/--pp/
    --ep`, docs/parallelism.md): times are the replica's, memory per device, and totals
    gain `devices`, `devices_per_replica`, `usable_capacity_bytes`.
    `runtime`: the software stack (`precsim simulate --runtime`, docs/runtimes.md): a
    shipped name (`list_runtimes()`), a runtime YAML path or a RuntimeProfile; None is
    `reference` (the hardware profile as it is). totals["runtime"] names it.
    `unit` / `prefill_unit` / `decode_unit`: the compute unit of a SoC profile running
    both phases / prefill / decode (default: the runtime's preferred unit, else the
    profile's default for the format; docs/soc.md).
    """
    layout = None  # one device: no layout
    if not (type(tp) is int and type(pp) is int and type(ep) is int and tp == pp == ep == 1):
        from precsim.simulator.parallel import ParallelLayout
        layout = ParallelLayout(tp=tp, pp=pp, ep=ep)
    _, _, result = _run_request()(load_profile(profile), model, quant, batch, prompt, gen,
                                  flash=flash, fused_dequant=fused_dequant, layout=layout,
                                  runtime=runtime, unit=unit, prefill_unit=prefill_unit,
                                  decode_unit=decode_unit)
    return result


@functools.cache
def _run_request():
    """codesign's `run_request`, imported on the first `simulate` (codesign loads more than
    `import precsim` needs) and kept: no import statement per call."""
    from precsim.codesign.commands.simulate import run_request
    return run_request


def simulate_grid(profile: str | HardwareProfile, model: str | TransformerConfig,
                  quant: str | QuantFormat = "W16A16", *, batch=(1,), prompt=(512,),
                  gen=(128,), flash: bool = True, fused_dequant: bool = True,
                  runtime=None):
    """Every (batch, prompt, gen) of the Cartesian product of three 1-D sequences, in one
    vectorised `simulate` call: a pandas DataFrame, one row per configuration (batch
    slowest, gen fastest) with columns batch, prompt, gen and every totals entry, a dict
    entry flattened to `<key>_<name>` (bytes_moved_HBM, energy_memory_j_HBM, ...); a
    model's stated approximations are in `.attrs["approximations"]`. Row i equals the
    scalar `simulate` of its configuration (the decode-step rule never depends on the
    other configurations: `cost.decode_nodes_for`). One device; loop over layouts.
    `runtime` as in `simulate`."""
    import numpy as np
    import pandas as pd

    axes = {}
    for name, values in (("batch", batch), ("prompt", prompt), ("gen", gen)):
        arr = np.asarray(values, dtype=float)
        if arr.ndim > 1 or arr.size == 0:
            raise InputError(f"simulate_grid: {name} must be a number or a non-empty 1-D "
                             f"sequence, got shape {arr.shape}")
        axes[name] = arr.reshape(-1)
    # broadcast axes, not a meshgrid: what depends on batch alone is priced per batch
    b, p, g = (axes["batch"][:, None, None], axes["prompt"][None, :, None],
               axes["gen"][None, None, :])
    result = simulate(profile, model, quant, batch=b, prompt=p, gen=g, flash=flash,
                      fused_dequant=fused_dequant, runtime=runtime)
    b, p, g = np.broadcast_arrays(b, p, g)
    columns = {"batch": b.reshape(-1), "prompt": p.reshape(-1), "gen": g.reshape(-1)}
    approximations = result.totals.get("approximations", [])
    for key, value in result.totals.items():
        if key == "approximations":
            continue
        for name, v in (value.items() if isinstance(value, dict) else [(None, value)]):
            column = key if name is None else f"{key}_{name}"
            columns[column] = np.broadcast_to(np.asarray(v), b.shape).reshape(-1)
    frame = pd.DataFrame(columns)
    frame.attrs["approximations"] = list(approximations)
    return frame


def plan(study: str | os.PathLike | None = None, *, deploy_profile: str | None = None,
         deployment: int = 0, profile_dirs=()):
    """The cheapest (N, D, training format, serving format) of one deployment of a study.

    `study`: a study YAML (default: the built-in study); `deploy_profile` plans that
    profile's deployment (added on the study's default workload if the study has none),
    as `precsim plan --deploy-profile` does. Returns a `PlanResult` (`.optimum`: a
    `Candidate`, None if nothing is feasible; `.by_format` with each pair's reason;
    `.frontier`; `.summary()` = the CLI's `plan --json`).
    """
    from precsim.codesign.planner import plan as _plan
    from precsim.codesign.study import (Deployment, load_study, problem_from_study,
                                        resolve_study, updated)

    loaded, source = load_study(study)
    if deploy_profile is not None:
        names = [d.profile for d in loaded.deployments]
        if deploy_profile in names:
            deployment = names.index(deploy_profile)
        else:
            loaded = updated(loaded, source, deployments=[
                *loaded.deployments, Deployment(profile=deploy_profile)])
            deployment = len(names)
    resolved = resolve_study(loaded, source, profile_dirs)
    if not resolved.deploy_profiles:
        raise InputError(f"{source}: deployments: the study has no deployment to plan")
    return _plan(problem_from_study(resolved, deployment))
