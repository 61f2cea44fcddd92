"""File input/output shared by every PrecSim command: bounded safe YAML, atomic writes.

YAML is read with a SafeLoader subclass that also refuses anchors/aliases (the
"billion laughs" expansion bomb) and files over `MAX_YAML_BYTES`, so reading a
user's file takes bounded time and memory. Outputs are written to a temporary file
in the target folder and moved into place with `os.replace`, so a failed run never
leaves a half-written file and never destroys what the user had.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from simulator.errors import InputError

MAX_YAML_BYTES = 1 << 20  # 1 MiB: far above any profile or study file


class StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects anchors and aliases (no expansion bombs)."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name / *name) are not allowed",
                event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name / *name) are not allowed",
                event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_mapping(path: str | os.PathLike, what: str = "file") -> dict:
    """Read `path` as YAML whose top level is a non-empty mapping; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if path.is_dir():
        raise InputError(f"{path}: expected a YAML {what}, got a directory")
    if size > MAX_YAML_BYTES:
        raise InputError(f"{path}: {what} is {size} bytes; at most {MAX_YAML_BYTES} allowed")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=StrictSafeLoader)  # StrictSafeLoader is a SafeLoader
    except yaml.constructor.ConstructorError as exc:
        raise InputError(f"{path}: YAML tag not allowed ({_mark(exc)}): {exc.problem}; "
                         "only plain mappings, lists, strings and numbers") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML ({_mark(exc)}): "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise InputError(f"{path}: {what} is empty; expected a mapping of fields")
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level is a {type(data).__name__}; "
                         "expected a mapping of fields")
    return data


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "position unknown"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling, then swap it into place.

    Yields the temporary folder to write into. On success an existing `path` is
    replaced by the complete new folder; on any failure the temporary folder is
    removed and `path` is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
