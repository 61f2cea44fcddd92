"""Run one golden case in-process and return its machine-readable result."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pandas as pd

from precsim.codesign.cli import main

#: The checkout's root: paths in outputs are recorded relative to it ("{root}/..."),
#: so the goldens hold in any clone.
ROOT = str(Path(__file__).resolve().parent.parent.parent)


def _relative_paths(text: str) -> str:
    return text.replace(ROOT, "{root}")


def run_case(argv: list[str], tmp: Path) -> dict:
    """Exit code plus the parsed --json output (and, for `report`, its CSV tables)."""
    argv = [a.replace("{tmp}", str(tmp)) for a in argv] + ["--json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    result: dict = {"exit": code}
    text = out.getvalue()
    result["json"] = json.loads(_relative_paths(text)) if text.strip() else None
    if code != 0:
        result["stderr"] = _relative_paths(err.getvalue().strip())
    if argv[0] == "report" and code == 0:
        folder = Path(argv[argv.index("--out") + 1])
        result["json"] = {"tables": {
            p.name: pd.read_csv(p).to_dict(orient="list")
            for p in sorted(folder.glob("*.csv"))}}
    return result


#: Keys whose values are wall-clock measurements, not model outputs: present, not compared.
VOLATILE_KEYS = frozenset({"elapsed_s"})


def compare(expected, actual, path: str = "", rel: float = 1e-9) -> list[str]:
    """Differences between two JSON trees: identical keys, numbers within `rel`."""
    if path.rsplit(".", 1)[-1] in VOLATILE_KEYS:
        return []
    if isinstance(expected, dict) and isinstance(actual, dict):
        diffs = []
        if set(expected) != set(actual):
            diffs.append(f"{path}: keys differ: missing {sorted(set(expected) - set(actual))},"
                         f" extra {sorted(set(actual) - set(expected))}")
        for key in set(expected) & set(actual):
            diffs += compare(expected[key], actual[key], f"{path}.{key}", rel)
        return diffs
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: length {len(expected)} != {len(actual)}"]
        diffs = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            diffs += compare(e, a, f"{path}[{i}]", rel)
        return diffs
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        if math.isnan(expected) and math.isnan(actual):
            return []
        if expected == actual or math.isclose(expected, actual, rel_tol=rel, abs_tol=1e-300):
            return []
        return [f"{path}: {expected!r} != {actual!r}"]
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]
