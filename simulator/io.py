"""File input/output shared by every PrecSim command: bounded safe YAML, atomic writes.

YAML is read with a SafeLoader subclass that also refuses anchors/aliases (the
"billion laughs" expansion bomb), nesting deeper than `MAX_YAML_DEPTH`, duplicate
keys, special files and anything over `MAX_YAML_BYTES` (never read past the limit),
so reading a user's file takes bounded time and memory; every failure is an
InputError naming the file. JSON and CSV inputs go through the same reader
(`read_text_bounded`: regular files only, opened without blocking, a size bound per
kind, a byte-order mark ignored; JSON nesting bounded by `MAX_JSON_DEPTH`).
Outputs are written to a temporary file in the target folder and moved into place
with `os.replace` (keeping the replaced file's mode), only over a regular file (never
a device, FIFO or socket) and only over a folder PrecSim wrote (`OUTPUT_MARKER`), so
a failed run never leaves a half-written file and never destroys what the user had.
docs/inputs.md lists every input surface and what it refuses.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import shutil
import signal
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
MAX_JSON_BYTES = 1 << 20  # 1 MiB: a config.json or a law JSON is a few KiB
MAX_JSON_DEPTH = 64  # nesting levels; a config.json uses about 3
#: upper bounds of whole-number inputs (flags and study fields; docs/inputs.md): far above
#: any real run, low enough that nothing downstream overflows a 64-bit integer
MAX_SEQUENCES = 1_000_000  # batch: concurrent sequences
MAX_TOKENS = 10_000_000  # prompt, generated, sequence tokens per sequence
MAX_DEGREE = 65_536  # parallel degrees, devices, workers: a large cluster
MAX_SEED = 2**63 - 1  # seeds: numpy's generators take any value up to 2**63 - 1 here
#: the file PrecSim puts in every output folder it writes; only such a folder (or an
#: empty one) is replaced by a later run
OUTPUT_MARKER = ".precsim-output"


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


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def read_text_bounded(path: str | os.PathLike, what: str,
                      max_bytes: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of regular file `path` (a leading byte-order mark dropped),
    refusing more than `max_bytes`.

    Every input file a user hands PrecSim (profiles, studies, model configs, law JSON,
    traces, runs CSVs) is read through here. The file is opened without blocking and
    checked with fstat before a byte is read, so a directory, a FIFO, a device or a
    huge file is a clear error naming the file, in bounded time and memory.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: expected a {what}, got a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise InputError(f"{path}: expected a {what}, got {file_kind(mode)}")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(max_bytes + 1)  # at most one byte past the limit
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: {what} is larger than {max_bytes} bytes "
                         f"(the limit for a {what})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text") from None


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON `value` nests at most `limit` levels (iterative walk)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def parse_json_text(text: str, source: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON `text` read from `source`: malformed JSON, nesting deeper than `limit`,
    integers over Python's digit limit and NaN/Infinity literals are InputErrors naming
    `source`."""
    def refuse_constant(name: str):
        raise InputError(f"{source}: JSON constant {name} not allowed; expected a finite "
                         "number")
    try:
        doc = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno}): {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested deeper than {limit} levels") from None
    except InputError:
        raise
    except ValueError as exc:  # an integer literal over Python's digit limit
        raise InputError(f"{source}: invalid JSON value: {str(exc)[:80]}") from None
    if not json_depth_ok(doc, limit):
        raise InputError(f"{source}: JSON nested deeper than {limit} levels")
    return doc


def load_json_bounded(path: str | os.PathLike, what: str,
                      max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read `path` as JSON through `read_text_bounded` and `parse_json_text`."""
    return parse_json_text(read_text_bounded(path, what, max_bytes), str(path))


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


def output_target(path: str | os.PathLike) -> Path:
    """The file an output to `path` lands in: `path` itself, or the file a symlink at
    `path` points to. Refused (InputError naming the path): a directory, and anything
    that is not a regular file (a device such as /dev/null or /dev/full, a FIFO, a
    socket): replacing it would destroy it, writing into it would hang or vanish."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory; expected a file path to write")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {file_kind(mode)}; PrecSim writes outputs only to "
                         "regular files (it never replaces or writes into a device, FIFO "
                         "or socket)")
    return target


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for the few renames that swap an output into place, so an
    interrupt cannot land between them (it is delivered right after)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not POSIX, or not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + os.replace).

    Only a missing path or a regular file (through a symlink: the file it names) is
    replaced (`output_target`). The new file keeps the mode of the file it replaces
    (else the umask default). On any failure or interrupt the temp file is removed and
    an existing `path` is left untouched; an OS error (no permission, parent is a file,
    disk full) becomes an InputError naming the path.
    """
    shown = Path(path)
    path = output_target(shown)
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
        with _signals_deferred():
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        raise InputError(f"{shown}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return shown


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _check_replaceable_folder(path: Path) -> None:
    """An existing output folder may be replaced only when it is empty or carries
    `OUTPUT_MARKER` (PrecSim wrote it); anything else is the user's (InputError)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError(f"{path}: exists and is not a directory; expected an output "
                         "folder path")
    if not path.exists() or (path / OUTPUT_MARKER).is_file():
        return
    try:
        empty = next(os.scandir(path), None) is None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the output folder: "
                         f"{exc.strerror or exc}") from None
    if not empty:
        raise InputError(f"{path}: folder exists and was not written by PrecSim (no "
                         f"{OUTPUT_MARKER} file in it); PrecSim replaces only its own "
                         "output folders: choose a new --out or remove the folder")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling, then swap it into place.

    Yields the temporary folder to write into (it already holds `OUTPUT_MARKER`). Only
    a missing, empty or PrecSim-written folder is replaced. The swap moves the old
    folder aside, the new one in, then deletes the old one, with SIGINT/SIGTERM held,
    so `path` is never missing; on any failure (in the body or in the swap) the
    temporary folder is removed and `path` is left exactly as it was.
    """
    path = Path(path)
    _check_replaceable_folder(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                    dir=path.parent))
        os.chmod(tmp, _default_mode(directory=True))
        (tmp / OUTPUT_MARKER).write_text("written by PrecSim; a later run may replace "
                                         "this folder\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot create output folder: "
                         f"{exc.strerror or exc}") from None
    old = None
    try:
        yield tmp
        with _signals_deferred():
            if path.exists():
                old = path.with_name(f".{path.name}.old.{os.getpid()}")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                if old is not None:
                    os.replace(old, path)  # put the user's folder back
                    old = None
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:  # also when an interrupt held during the swap is delivered right after it
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
