"""Finding and reading hardware profiles: the search path, files, names.

Built-in profiles ship as package data (hw_profiles/); users add files or folders with
`--profile-dir` or the `PRECSIM_PROFILE_PATH` environment variable (os.pathsep-separated).
User paths come first; a name found twice keeps the first.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from precsim.simulator.errors import InputError
from precsim.simulator.io import file_kind, is_file_reference, load_yaml_mapping
from precsim.simulator.profiles import HardwareProfile, profile_from_mapping

PROFILE_PATH_ENV = "PRECSIM_PROFILE_PATH"


def load_profile_file(path: str | os.PathLike) -> HardwareProfile:
    """Read and validate one profile YAML file; errors name the file and field path."""
    doc = load_yaml_mapping(path, what="hardware profile")
    return profile_from_mapping(doc, source=str(path))


def builtin_profile_dir() -> Path:
    """The shipped hw_profiles folder (package data, or the source checkout's root)."""
    packaged = resources.files("precsim.simulator").joinpath("hw_profiles")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "hw_profiles"


def profile_search_paths(extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """User paths (flags, then $PRECSIM_PROFILE_PATH) first, then the built-ins."""
    paths = [Path(p) for p in extra]
    env = os.environ.get(PROFILE_PATH_ENV, "")
    paths += [Path(p) for p in env.split(os.pathsep) if p]
    paths.append(builtin_profile_dir())
    return paths


def _profile_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise InputError(f"{path}: expected a profile file or folder, got "
                             f"{file_kind(path.stat().st_mode)} (from --profile-dir or "
                             f"${PROFILE_PATH_ENV})")
        else:
            raise InputError(f"{path}: profile path does not exist "
                             f"(from --profile-dir or ${PROFILE_PATH_ENV})")
    return files


def list_profiles(extra_paths: Iterable[str | os.PathLike] = ()) -> list[HardwareProfile]:
    """Every profile found on the search path; a name found twice keeps the first."""
    found: dict[str, HardwareProfile] = {}
    for file in _profile_files(profile_search_paths(extra_paths)):
        profile = load_profile_file(file)
        found.setdefault(profile.name, profile)
    return list(found.values())


def load_profile(name_or_path: str | os.PathLike,
                 extra_paths: Iterable[str | os.PathLike] = ()) -> HardwareProfile:
    """A profile by canonical name (searched on the profile path) or by YAML file path."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    text = str(name_or_path)
    if is_file_reference(text):
        return load_profile_file(os.path.expanduser(text))
    found: dict[str, HardwareProfile] = {}
    for file in _profile_files(profile_search_paths(extra_paths)):
        profile = load_profile_file(file)
        if profile.name == text:  # first on the search path wins, as in list_profiles
            return profile
        found.setdefault(profile.name, profile)
    lower = {name.lower(): name for name in found}
    close = [lower[n] for n in difflib.get_close_matches(text.lower(), list(lower), n=3,
                                                         cutoff=0.4)]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown profile {text!r}{hint} (known: {', '.join(sorted(found))})")


#: name, $PRECSIM_PROFILE_PATH -> (profile, its file, the file's mtime)
_LOADED: dict = {}


def cached_profile(profile) -> HardwareProfile:
    """`load_profile`, memoised for names (per $PRECSIM_PROFILE_PATH) while the profile's
    file is unchanged (as_hardware's cache); anything else goes to `load_profile`."""
    if not isinstance(profile, str):
        return load_profile(profile)
    # a path is keyed absolute: the same relative path names another file in another cwd
    where = os.path.abspath(os.path.expanduser(profile)) if is_file_reference(profile) \
        else profile
    key = (where, os.environ.get(PROFILE_PATH_ENV, ""))
    hit = _LOADED.get(key)
    if hit is not None:
        loaded, path, stamp = hit
        try:
            if path and os.stat(path).st_mtime_ns == stamp:
                return loaded
        except OSError:
            pass
    loaded = load_profile(profile)
    path = loaded.path if loaded.path and os.path.isfile(loaded.path) else None
    _LOADED[key] = (loaded, path, os.stat(path).st_mtime_ns if path else None)
    return loaded
