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

import os

from precsim.lawcore import LAWS, compute_optimal, get_law
from precsim.simulator.cost import SimulationResult
from precsim.simulator.errors import InputError
from precsim.simulator.models import TransformerConfig, get_model, list_models
from precsim.simulator.profile_loader import list_profiles
from precsim.simulator.profile_loader import load_profile as _load_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import QuantFormat, parse_quant

__all__ = ["InputError", "compute_optimal", "get_law", "get_model", "list_laws",
           "list_models", "list_profiles", "load_profile", "parse_quant", "plan",
           "simulate"]


def load_profile(name_or_path: str | os.PathLike | HardwareProfile,
                 profile_dirs=()) -> HardwareProfile:
    """A shipped profile by name (`precsim profiles list`) or a YAML file, validated."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    return _load_profile(name_or_path, profile_dirs)


def list_laws() -> list[str]:
    """The law presets `get_law` accepts."""
    return list(LAWS)


def simulate(profile: str | HardwareProfile, model: str | TransformerConfig,
             quant: str | QuantFormat = "W16A16", *, batch=1, prompt=512, gen=128,
             flash: bool = True, fused_dequant: bool = True, tp=1, pp=1,
             ep=1, unit: str | None = None, prefill_unit: str | None = None,
             decode_unit: str | None = None) -> SimulationResult:
    """Time, bytes moved and energy of serving `batch` requests (prompt + gen tokens).

    Returns `.totals` (a dict: ttft_s, tpot_s, energy_j, fits, bytes_moved, ...) and
    `.ops` (a per-operator DataFrame). Numeric arguments may be numpy arrays: the
    result then holds arrays that broadcast like the inputs (one call, many configs).
    `tp`/`pp`/`ep` split one replica over tp x pp devices (`precsim simulate --tp/--pp/
    --ep`, docs/parallelism.md): times are the replica's, memory per device, and totals
    gain `devices`, `devices_per_replica`, `usable_capacity_bytes`.
    `unit` / `prefill_unit` / `decode_unit`: the compute unit of a SoC profile running
    both phases / prefill / decode (default: the profile's default for the format;
    docs/soc.md).
    """
    from precsim.codesign.commands.simulate import run_request
    from precsim.simulator.parallel import ParallelLayout

    _, _, result = run_request(load_profile(profile), model, quant, batch, prompt, gen,
                               flash=flash, fused_dequant=fused_dequant,
                               layout=ParallelLayout(tp=tp, pp=pp, ep=ep), unit=unit,
                               prefill_unit=prefill_unit, decode_unit=decode_unit)
    return result


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
