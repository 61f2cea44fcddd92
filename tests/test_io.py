"""precsim.simulator.io: bounded safe YAML loading and atomic writes."""
import os
import stat
import tracemalloc

import pytest

import precsim.simulator.io as sio
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_directory, atomic_write_bytes, atomic_write_text, load_yaml_mapping

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
       for i in range(8)]) + "\n"


def _write(tmp_path, text, name="f.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path) -> str:
    with pytest.raises(InputError) as info:
        load_yaml_mapping(path, what="test file")
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


def test_reads_a_mapping(tmp_path):
    assert load_yaml_mapping(_write(tmp_path, "a: 1\nb: [x, 2.5]\n")) == {"a": 1, "b": ["x", 2.5]}


@pytest.mark.parametrize("text, expected", [
    ("a: [1, 2\n", "malformed YAML (line 2"),
    ("a: 1\n\tb: 2\n", "malformed YAML"),
    ("- 1\n- 2\n", "top level is a list; expected a mapping"),
    ("just a string\n", "top level is a str"),
    ("", "test file is empty"),
    ("# only a comment\n", "test file is empty"),
    (BILLION_LAUGHS, "anchors and aliases"),
    ("a: &x 1\n", "anchors and aliases"),
    ("x: !!python/object/apply:os.system [echo pwned]\n",
     "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' not allowed"),
    ("x: !!python/name:os.system\n", "not allowed"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("? [a, b]\n: c\n", "unhashable key"),
    ("a: " + "[" * 1000 + "]" * 1000 + "\n", "nested deeper than 64 levels"),
    ("a: " + "1" * 5000 + "\n", "invalid YAML value"),  # over Python's int digit limit
])
def test_bad_yaml_is_an_input_error(tmp_path, text, expected):
    assert expected in _error(_write(tmp_path, text))


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    _error(path)
    assert not marker.exists()


def test_billion_laughs_is_refused_in_bounded_memory(tmp_path):
    path = _write(tmp_path, BILLION_LAUGHS)
    tracemalloc.start()
    try:
        _error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the expansion would be 9**9 strings


def test_oversized_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * sio.MAX_YAML_BYTES + b"\n")
    assert f"larger than {sio.MAX_YAML_BYTES} bytes" in _error(path)


def test_special_file_is_refused_without_reading_forever():
    with pytest.raises(InputError, match="got a character device"):
        load_yaml_mapping("/dev/zero")


def test_missing_file_directory_and_binary(tmp_path):
    assert "test file not found" in _error(tmp_path / "nope.yaml")
    assert "got a directory" in _error(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    assert "not UTF-8" in _error(binary)


# ---- atomic writes -------------------------------------------------------------------

def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert _leftovers(path.parent) == []


def test_atomic_write_keeps_the_mode_of_the_replaced_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_file_gets_the_umask_default_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch, failing):
    path = tmp_path / "out.txt"
    path.write_text("precious")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(sio.os, failing, boom)
    with pytest.raises(InputError, match=r"out.txt: cannot write: No space left"):
        atomic_write_text(path, "new content")
    assert path.read_text() == "precious"
    assert _leftovers(tmp_path) == []


def test_non_bytes_data_fails_cleanly(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_write_to_a_directory_or_under_a_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        atomic_write_text(tmp_path, "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        atomic_write_text(tmp_path / "file" / "out.txt", "x")


def test_atomic_directory_builds_then_swaps(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / sio.OUTPUT_MARKER).write_text("")  # a folder PrecSim wrote
    old_umask = os.umask(0o022)
    try:
        with atomic_directory(out) as tmp:
            (tmp / "new.txt").write_text("new")
            assert (out / "old.txt").exists()  # untouched while building
    finally:
        os.umask(old_umask)
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "new.txt"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert _leftovers(tmp_path) == []


def test_atomic_directory_failure_in_body_keeps_old(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / sio.OUTPUT_MARKER).write_text("")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash mid-run")
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "old.txt"]
    assert _leftovers(tmp_path) == []


def test_atomic_directory_failure_in_swap_restores_old(tmp_path, monkeypatch):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / sio.OUTPUT_MARKER).write_text("")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new folder into place
            raise OSError(5, "I/O error")
        return real_replace(src, dst)
    monkeypatch.setattr(sio.os, "replace", replace)
    with pytest.raises(OSError):
        with atomic_directory(out) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "old.txt"]
    assert _leftovers(tmp_path) == []


def test_atomic_directory_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "report").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        with atomic_directory(tmp_path / "report"):
            pass


def test_one_formatter_for_schema_errors_names_file_path_and_nearest_field():
    from pydantic import BaseModel, ConfigDict, ValidationError

    from precsim.simulator.schema_errors import field_path, format_validation_error

    class Item(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        size: int

    class Doc(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[Item]

    doc = {"items": [{"name": "hbm", "sise": 1}, {"size": "x", "name": ""}]}
    try:
        Doc.model_validate(doc)
    except ValidationError as exc:
        text = format_validation_error(exc, "f.yaml", doc, ("name", "size"), list_expected=True)
    assert text.splitlines() == [
        "f.yaml: items[hbm].size: required field is missing",
        "f.yaml: items[hbm].sise: unknown field (did you mean 'size'?); expected one of "
        "name, size",
        "f.yaml: items[1].size: Input should be a valid integer, unable to parse string "
        "as an integer"]
    assert field_path(("a", 0, "b")) == "a[0].b"


@pytest.mark.parametrize("text, is_file", [
    ("h100-sxm", False), ("llama-3-8b", False), ("W4A16", False),
    ("my.yaml", True), ("my.yml", True), ("config.json", True), ("dir/h100", True),
    ("./h100", True), ("~/profiles/x", True),
])
def test_one_rule_for_file_arguments(text, is_file):
    from precsim.simulator.io import is_file_reference
    assert is_file_reference(text) is is_file


def test_one_json_helper_converts_numpy_and_non_finite_values():
    import json

    import numpy as np

    from precsim.simulator.io import json_text, jsonable
    value = {1: np.float64(2.5), "a": np.array([1, 2]), "t": (np.int64(3), float("nan")),
             "inf": np.inf, "ok": True}
    assert jsonable(value) == {"1": 2.5, "a": [1, 2], "t": [3, None], "inf": None, "ok": True}
    assert json.loads(json_text(value, indent=None)) == jsonable(value)
