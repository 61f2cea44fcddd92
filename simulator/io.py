"""File input/output shared by every PrecSim command: bounded safe YAML, atomic writes.

YAML is read with a SafeLoader subclass that also refuses anchors/aliases (the
"billion laughs" expansion bomb), nesting deeper than `MAX_YAML_DEPTH`, duplicate
keys, special files and anything over `MAX_YAML_BYTES` (never read past the limit),
so reading a user's file takes bounded time and memory; every failure is an
InputError naming the file. Outputs are written to a temporary file in the target
folder and moved into place with `os.replace` (keeping the replaced file's mode),
so a failed run never leaves a half-written file and never destroys what the user had.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from precsim.simulator.errors import InputError

MAX_YAML_BYTES = 1 << 20  # 1 MiB: far above any profile or study file
MAX_YAML_DEPTH = 64  # nesting levels; profiles use about 5


class RefusedYAML(yaml.MarkedYAMLError):
    """Well-formed YAML that PrecSim refuses (aliases, deep nesting, duplicate keys)."""


class StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also rejects anchors/aliases (no expansion bombs), nesting
    deeper than `MAX_YAML_DEPTH` (no recursion blow-up) and duplicate mapping keys
    (a silently dropped value hides a typo)."""

    def __init__(self, stream):  # noqa: ANN001 - PyYAML signature
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise RefusedYAML(
                None, None, "anchors and aliases (&name / *name) are not allowed",
                event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise RefusedYAML(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                    event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML signature
        seen: set = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise RefusedYAML(
                        None, None, f"duplicate key {str(key)[:40]!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


#: file endings that make an argument a file path rather than a name
FILE_SUFFIXES = (".yaml", ".yml", ".json")


def is_file_reference(text: str | os.PathLike) -> bool:
    """The one rule for "is this profile/model/study argument a file, not a name": it
    ends in .yaml, .yml or .json, or contains a path separator, or starts with '~'."""
    text = os.fspath(text)
    return (text.endswith(FILE_SUFFIXES) or "/" in text or os.sep in text
            or text.startswith("~"))


def read_text_bounded(path: str | os.PathLike, what: str,
                      max_bytes: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of regular file `path`, refusing more than `max_bytes`.

    Every input file a user hands PrecSim (profiles, studies, traces, runs CSVs) is read
    through here, so a directory, a device file or a huge file is a clear error naming
    the file, in bounded time and memory.
    """
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path}: expected a {what}, got a directory")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: expected a {what}, got a special file")
        with path.open("rb") as handle:  # read at most one byte past the limit
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: {what} is larger than {max_bytes} bytes "
                         f"(the limit for a {what})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text") from None


@functools.lru_cache(maxsize=64)
def _parse_yaml(text: str):
    """Parse with StrictSafeLoader (a SafeLoader), remembered by content: profiles are
    re-read on every plan, and parsing dominates (the caller gets a deep copy)."""
    return yaml.load(text, Loader=StrictSafeLoader)


def load_yaml_mapping(path: str | os.PathLike, what: str = "file") -> dict:
    """Read `path` as YAML whose top level is a non-empty mapping; errors name the file.

    Bounded: at most MAX_YAML_BYTES read, MAX_YAML_DEPTH levels, no aliases, and only
    the YAML core types (mappings, lists, strings, numbers, booleans, null).
    """
    path = Path(path)
    text = read_text_bounded(path, what)
    try:
        data = copy.deepcopy(_parse_yaml(text))
    except RefusedYAML as exc:
        raise InputError(f"{path}: {exc.problem} ({_mark(exc)})") from None
    except yaml.constructor.ConstructorError as exc:
        problem = str(exc.problem)
        if problem.startswith("could not determine a constructor"):
            tag = problem.rsplit(" ", 1)[-1]
            raise InputError(f"{path}: YAML tag {tag[:60]} not allowed ({_mark(exc)}); "
                             "only plain mappings, lists, strings and numbers") from None
        raise InputError(f"{path}: invalid YAML ({_mark(exc)}): {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML ({_mark(exc)}): "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise InputError(f"{path}: invalid YAML value: {str(exc)[:80]}") from None
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply") from None
    if data is None:
        raise InputError(f"{path}: {what} is empty; expected a mapping of fields")
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level is a {type(data).__name__}; "
                         "expected a mapping of fields")
    return data


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "position unknown"


def _default_mode(directory: bool) -> int:
    """Permission bits a plain open()/mkdir() would give under the current umask."""
    try:  # Linux: read the umask without changing it (thread-safe)
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status
                         if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + os.replace).

    The new file keeps the mode of the file it replaces (else the umask default). On
    any failure the temp file is removed and an existing `path` is left untouched;
    an OS error (no permission, parent is a file, disk full) becomes an InputError
    naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected a file path to write")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = (stat.S_IMODE(path.stat().st_mode) if path.exists()
                else _default_mode(directory=False))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling, then swap it into place.

    Yields the temporary folder to write into. On success an existing `path` is
    replaced by the complete new folder; on any failure (in the body or in the swap)
    the temporary folder is removed and `path` is left exactly as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                    dir=path.parent))
        os.chmod(tmp, _default_mode(directory=True))
    except OSError as exc:
        raise InputError(f"{path}: cannot create output folder: "
                         f"{exc.strerror or exc}") from None
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)  # put the user's folder back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data: numpy arrays and scalars converted, tuples as lists,
    keys as strings, NaN and inf as null (strict JSON). The one JSON helper of PrecSim
    (lawcore, which imports nothing from the simulator, keeps its own for law files)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """`value` as strict JSON text (through `jsonable`)."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)
