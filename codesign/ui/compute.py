"""What the explorer's views compute, without Dash: the functions the CLI commands call.

Each view function takes plain values (what the page's controls hold), returns the
command's `--json` object (`"json"`), the equivalent command line (`"argv"`) and the
extra data its charts need. The page shows the JSON it got, so a user can re-run the
command line and compare.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import functools
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.codesign.commands.law import parse_count
from precsim.codesign.commands.law import optimal_json
from precsim.codesign.commands.plan import (add_study_args, plan_json, plan_with_robustness,
                                             study_from_args)
from precsim.codesign.commands.profiles import check_file, profile_rows
from precsim.codesign.commands.simulate import run_request, simulate_json
from precsim.codesign.law_search import LawSolver
from precsim.codesign.planner import (hardware_costs, serving_costs, training_rates,
                                      training_token_costs)
from precsim.codesign.study import problem_from_study
from precsim.codesign.variants import profile_variants
from precsim.lawcore import compute_optimal, get_law
from precsim.lawcore.plots import iso_loss_grid
from precsim.simulator.errors import InputError
from precsim.simulator.io import MAX_YAML_BYTES
from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.profile_loader import list_profiles, load_profile
from precsim.simulator.compute_units import phase_profiles
from precsim.simulator.roofline_plot import roofline_data

#: Per-operator columns shown in the Simulate view's table (plus bytes at each level).
OP_COLUMNS = ("phase", "op", "exec_dtype", "bound", "time_s", "flops", "energy_j")
#: Largest model config.json accepted by upload (as `models.load_hf_config`).
MAX_CONFIG_BYTES = 1 << 20


def _dirs(profile_dirs) -> list[str]:
    return [str(p) for p in profile_dirs]


def _dir_flags(profile_dirs) -> list[str]:
    return [flag for d in _dirs(profile_dirs) for flag in ("--profile-dir", d)]


def profile_names(profile_dirs=()) -> list[str]:
    """Names of every profile on the search path (`precsim profiles list`)."""
    return [p.name for p in list_profiles(_dirs(profile_dirs))]


# ---- uploads ---------------------------------------------------------------------------------

def save_upload(contents: str, folder: str | os.PathLike, name: str, max_bytes: int,
                what: str) -> Path:
    """Decode a browser upload (`data:...;base64,...`) into `folder`/`name`.

    The name is ours, never the user's file name, so nothing lands outside `folder`;
    more than `max_bytes` is refused before anything is written.
    """
    _, sep, payload = (contents or "").partition(",")
    if not sep:
        raise InputError(f"upload {what}: not a file upload")
    if len(payload) > 4 * (max_bytes // 3 + 2):
        raise InputError(f"upload {what}: larger than {max_bytes} bytes (the limit)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"upload {what}: not valid base64 data") from None
    if len(data) > max_bytes:
        raise InputError(f"upload {what}: larger than {max_bytes} bytes (the limit)")
    path = Path(folder) / name
    path.write_bytes(data)
    return path


def check_uploaded_profile(contents: str, filename: str, folder: str | os.PathLike) -> dict:
    """`profiles check --json` of an uploaded YAML (bounded safe loader), as one entry;
    `file` names the upload, `profile` holds the validated profile when ok."""
    path = save_upload(contents, folder, "uploaded-profile.yaml", MAX_YAML_BYTES,
                       f"profile {filename!r}")
    entry = check_file(str(path))
    if entry["error"]:
        entry["error"] = entry["error"].replace(str(path), f"upload {filename}")
    entry["file"] = filename
    entry["profile"] = load_profile(str(path)) if entry["ok"] else None
    return entry


def hf_cache_config(name: str) -> Path | None:
    """config.json of `org/model` in the local Hugging Face hub cache, if present
    (newest snapshot); nothing is downloaded."""
    if name.count("/") != 1 or name.startswith(("/", ".")):
        return None
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache",
                                                  "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub")))
    snaps = hub / ("models--" + name.replace("/", "--")) / "snapshots"
    found = sorted(snaps.glob("*/config.json"), key=lambda p: p.stat().st_mtime) \
        if snaps.is_dir() else []
    return found[-1] if found else None


def model_ref(choice: str, typed: str | None, upload_path: str | None) -> str:
    """The --model argument: a built-in, a Hugging Face cache name or an uploaded file."""
    if choice == "upload":
        if not upload_path:
            raise InputError("model: choose 'uploaded config.json' only after uploading one")
        return upload_path
    if choice == "hf-cache":
        name = (typed or "").strip()
        path = hf_cache_config(name)
        if path is None:
            raise InputError(f"model: {name!r} is not in the local Hugging Face cache "
                             "(expected ORG/NAME with a downloaded config.json)")
        return str(path)
    return choice


# ---- Simulate --------------------------------------------------------------------------------

def simulate_view(profile: str, model: str, quant: str, batch: int, prompt: int, gen: int,
                  profile_dirs=(), tp: int = 1, pp: int = 1, ep: int = 1,
                  runtime: str = "reference") -> dict:
    """`precsim simulate --json` plus the op table, roofline data and bytes per level;
    tp/pp/ep > 1 simulate one replica of that layout (`simulator.parallel`), the op table
    and roofline then show one device's stage; `runtime` as `--runtime`."""
    for name, value in (("batch", batch), ("prompt", prompt), ("gen", gen), ("tp", tp),
                        ("pp", pp), ("ep", ep)):
        if value is None:
            raise InputError(f"--{name}: expected a whole number of at least 1, got nothing")
    hw = load_profile(profile, _dirs(profile_dirs))
    tp, pp, ep = int(tp), int(pp), int(ep)
    layout = ParallelLayout(tp=tp, pp=pp, ep=ep) if (tp, pp, ep) != (1, 1, 1) else None
    cfg, fmt, result = run_request(hw, model, quant, int(batch), int(prompt), int(gen),
                                   layout=layout, runtime=runtime or "reference")
    levels = [lv.name for lv in hw.memory]
    ops = result.ops[[*OP_COLUMNS, *(f"bytes_{lv}" for lv in levels)]]
    flags = [f for name, v in (("--tp", tp), ("--pp", pp), ("--ep", ep)) if v != 1
             for f in (name, str(v))]
    if runtime and runtime != "reference":
        flags += ["--runtime", runtime]
    return {"json": simulate_json(hw, cfg, fmt, result, int(batch), int(prompt), int(gen),
                                  layout=layout),
            "argv": ["simulate", "--profile", profile, "--model", model, "--quant", quant,
                     "--batch", str(batch), "--prompt", str(prompt), "--gen", str(gen),
                     *flags, *_dir_flags(profile_dirs), "--json"],
            "ops": ops,  # a SoC: the roofs of the unit running decode
            "roofline": roofline_data(phase_profiles(hw, fmt, "decode"), result.ops)}


# ---- Co-design -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WhatIf:
    """Hardware what-ifs of the Co-design view, as `precsim whatif --vary` specs."""
    bandwidth_x: float = 1.0          # main-memory bandwidth multiplier
    sram_x: float = 1.0               # capacity multiplier of every on-chip level
    native: tuple[str, ...] = ()      # data types given a native engine
    emulated: tuple[str, ...] = ()    # native engines removed (run through a fallback)

    def specs(self, profile) -> list[str]:
        """The --vary arguments for `profile` (dtypes already native are skipped when
        added, and dtypes not native are skipped when removed; on a SoC per unit,
        `_engine_sets`)."""
        main = profile.main_memory.name
        out = [f"memory.{main}.bandwidth={self.bandwidth_x:g}x"] \
            if self.bandwidth_x != 1 else []
        if self.sram_x != 1:
            out += [f"memory.{lv.name}.capacity={self.sram_x:g}x" for lv in profile.memory
                    if lv.name != main]
        for field, engines, takes in _engine_sets(profile):
            out += [f"{field}.{d}=native" for d in self.native
                    if not engines.native(d) and (takes is None or d in takes)]
            out += [f"{field}.{d}=emulated" for d in self.emulated
                    if engines.native(d) and d not in self.native]
        return out


def _engine_sets(profile) -> list[tuple]:
    """(--vary field prefix, the profile that holds the engines, the types its runtimes
    take or None) of `profile`'s compute, or of each unit of a SoC: a native format
    switched on is added to every unit that lacks it and takes that type (its
    `formats`), switched off it is removed from every unit that has it."""
    if not profile.compute_units:
        return [("compute", profile, None)]
    return [(f"compute_units.{name}.compute", profile.for_unit(name), unit.formats)
            for name, unit in profile.compute_units.items()]


class _FlagParser(argparse.ArgumentParser):
    """argparse that raises InputError (naming the flag) instead of exiting."""

    def error(self, message: str):
        raise InputError(message)


_STUDY_PARSER = _FlagParser(prog="precsim plan", add_help=False)
add_study_args(_STUDY_PARSER)


def _plan_argv(study, profile_dirs, deploy, target_loss, dollars_per_hour, tokens) -> list:
    argv = ["--study", str(study)] if study else []
    argv += ["--deploy-profile", deploy]
    if target_loss is not None:
        argv += ["--target-loss", repr(float(target_loss))]
    if dollars_per_hour is not None:
        argv += ["--dollars-per-device-hour", repr(float(dollars_per_hour))]
    if tokens is not None:
        argv += ["--tokens-served", repr(float(tokens))]
    return argv + _dir_flags(profile_dirs)


def study_deployments(study=None, profile_dirs=()) -> dict:
    """The study's deployment profile names, its target loss and defaults per deployment."""
    argv = (["--study", str(study)] if study else []) + _dir_flags(profile_dirs)
    resolved, _ = study_from_args(_STUDY_PARSER.parse_args(argv))
    s = resolved.study
    return {"target_loss": resolved.target_loss, "objective": s.objective,
            "deployments": [{"profile": d.profile, "name": p.name,
                             "dollars_per_device_hour": d.dollars_per_device_hour,
                             "tokens_served": d.workload(s.workload).tokens_served}
                            for d, p in zip(s.deployments, resolved.deploy_profiles)]}


class _Recent(OrderedDict):
    """A dict keeping its `size` latest entries: the page's parts of plans stay bounded."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > self.size:
            self.popitem(last=False)


#: Parts of plans already computed, shared by the deployments and controls that ask them
#: again: the law half per law question (`law_search.LawSolver`: a target, the study's law,
#: formats and grids; every deployment shares it; ~6 MB each, the 13 laws of a plan's
#: robustness ensemble fit), the training and serving halves of `planner.hardware_costs`
#: per the controls they depend on (not the target loss).
_LAW = _Recent(16)
_SOLVE = LawSolver(_LAW)
_TRAINING = _Recent(16)
_SERVING = _Recent(64)


def clear_caches() -> None:
    """Forget every plan and part of a plan the page computed (benchmarks/ui_speed.py)."""
    plan_view.cache_clear()
    for store in (_LAW, _TRAINING, _SERVING):
        store.clear()


def _kept(store: _Recent, key: tuple, make):
    if key not in store:
        store[key] = make()
    return store[key]


@functools.lru_cache(maxsize=256)
def plan_view(study, profile_dirs: tuple, deploy: str, target_loss=None, dollars_per_hour=None,
              tokens=None, whatif: WhatIf = WhatIf()) -> dict:
    """`precsim plan --json` of one deployment (cached: the page re-asks often).

    Without what-ifs it equals `precsim plan ARGV --json`; with them, the optimum equals
    the last row of `precsim whatif --profile DEPLOY --vary SPEC ... --json`. The law
    half and the hardware halves are reused where the controls they depend on did not
    change (the training half: the study and, varied as the deployment, the what-ifs;
    the serving half: also the deployment, its $/device-hour and lifetime tokens).
    """
    argv = _plan_argv(study, profile_dirs, deploy, target_loss, dollars_per_hour, tokens)
    resolved, index = study_from_args(_STUDY_PARSER.parse_args(argv))
    profile = resolved.deploy_profiles[index]
    specs = whatif.specs(profile)
    train, dep = None, None
    if specs:
        dep = profile_variants(profile, specs)[-1][1]
        if getattr(resolved.train_profile, "name", None) == profile.name:
            train = dep
    problem = problem_from_study(resolved, index, with_training=resolved.train_profile
                                 is not None, train_profile=train, deploy_profile=dep)
    N = np.asarray(problem.N_grid, float)
    varied = None if train is None else (deploy, *specs)   # trains on the varied profile
    training = _kept(_TRAINING, (study, profile_dirs, varied),
                     lambda: (training_rates(problem), training_token_costs(problem, N)))
    serving = _kept(_SERVING, (study, profile_dirs, deploy, dollars_per_hour, tokens, *specs),
                    lambda: serving_costs(problem, N))
    result, section = plan_with_robustness(
        problem, hardware=hardware_costs(problem, training, serving), solve=_SOLVE)
    if specs:
        cli = ["whatif", "--profile", deploy, *[f for s in specs for f in ("--vary", s)],
               *[a for a in argv if a not in ("--deploy-profile", deploy)], "--json"]
    else:
        cli = ["plan", *argv, "--json"]
    return {"json": plan_json(resolved, result, section), "argv": cli, "specs": specs}


# ---- Laws ------------------------------------------------------------------------------------

def law_view(law_name: str, compute: str) -> dict:
    """`precsim law optimal --compute C --json` and the iso-loss grid at that budget
    (a law without a training-precision term is refused, as the CLI refuses it)."""
    try:
        compute_flops = parse_count(str(compute or ""))
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"--compute: {exc}") from None
    if not np.isfinite(compute_flops) or compute_flops <= 0:
        raise InputError(f"--compute: expected a positive number of FLOPs, got {compute}")
    law = get_law(law_name)
    opt = compute_optimal(float(compute_flops), law)
    grid = iso_loss_grid(law, float(compute_flops), points=120)
    return {"json": optimal_json(law, opt, "compute"),
            "argv": ["law", "optimal", "--compute", str(compute).strip(),
                     "--law", law_name, "--json"],
            "grid": grid, "domain": getattr(law, "domain", None)}


# ---- Profiles --------------------------------------------------------------------------------

def compare_profiles(profiles: list) -> pd.DataFrame:
    """Side by side: one row per field path, per profile its value and its provenance."""
    frames = []
    for p in profiles:
        doc = p.raw()
        doc.pop("sources", None)
        rows = profile_rows(doc)
        frames.append(pd.DataFrame(
            {"field": [r[0] for r in rows], p.name: [str(r[1]) for r in rows],
             f"{p.name} source": [r[2] or "" for r in rows]}).drop_duplicates("field"))
    if not frames:
        return pd.DataFrame({"field": []})
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on="field", how="outer", sort=False)
    return table.fillna("-")
