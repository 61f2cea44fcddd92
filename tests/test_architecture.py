"""The package's shape: its import graph has no cycle and keeps the boundaries of
docs/architecture.md, no module grows past MAX_LINES, and the CLI imports lazily."""
from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from precsim.codesign import cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulator", "lawcore", "codesign", "validation")
MAX_LINES = 600
#: modules allowed above MAX_LINES, each with the reason
LONG_MODULES: dict[str, str] = {}  # none today; a data table would be listed here
HEAVY = ("scipy", "matplotlib", "torch", "dask")


def _module_files() -> dict[str, Path]:
    """precsim.<dotted name> -> file, for the API folder and the mapped subpackages."""
    out = {}
    for folder in PACKAGES + ("precsim",):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            parts = parts[1:] if parts[0] == "precsim" else parts
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(["precsim", *parts])] = path
    return out


MODULES = _module_files()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported precsim module, imported inside a function) for every import statement
    of `path`, `if TYPE_CHECKING:` blocks excluded (annotations only)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    name = f"{child.module}.{alias.name}"
                    found.append((name if name in MODULES else child.module, inner))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            visit(child, inner)
    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(name, lazy) for name, lazy in found if name in MODULES]


GRAPH = {mod: sorted({name for name, _ in _imports(path)} - {mod})
         for mod, path in MODULES.items()}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_walker_finds_every_subpackage_and_a_known_edge():
    assert {"precsim.simulator.cost", "precsim.lawcore.base", "precsim.codesign.cli",
            "precsim.validation.calibrate", "precsim.api"} <= set(MODULES)
    assert "precsim.validation.fits" in GRAPH["precsim.validation.calibrate"]
    assert "precsim.lawcore.coords" in GRAPH["precsim.lawcore.base"]


def test_the_cycle_finder_sees_a_cycle():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_import_cycle_even_through_lazy_imports():
    assert _cycles(GRAPH) == []


def _package(module: str) -> str:
    """simulator, lawcore, codesign or validation; "api" for precsim and precsim.api."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "api"


@pytest.mark.parametrize("package, forbidden", [
    ("lawcore", {"simulator", "codesign", "validation"}),
    ("simulator", {"lawcore", "codesign", "validation"}),
    ("validation", {"codesign"}),
])
def test_package_boundaries(package, forbidden):
    crossings = [(mod, dep) for mod, deps in GRAPH.items() if _package(mod) == package
                 for dep in deps if _package(dep) in forbidden]
    assert crossings == []


#: the only codesign modules that import validation: the commands that run it
VALIDATION_COMMANDS = {"precsim.codesign.commands.validate",
                       "precsim.codesign.commands.law_validate"}


def test_validation_is_imported_only_by_the_commands_that_run_it():
    users = {mod for mod, deps in GRAPH.items() if _package(mod) != "validation"
             and any(_package(dep) == "validation" for dep in deps)}
    assert users <= VALIDATION_COMMANDS


def test_no_module_is_longer_than_the_limit():
    long = {mod: n for mod, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= set(LONG_MODULES), long


# ---- the CLI imports lazily ------------------------------------------------------------

_REPORT = ("import atexit, runpy, sys\n{preamble}\n"
           "atexit.register(lambda: print('LOADED', ' '.join(sorted({m.split('.')[0] "
           "for m in sys.modules})), file=sys.stderr))\n"
           "sys.argv = ['precsim'] + sys.argv[1:]\n"
           "runpy.run_module('precsim.codesign.cli', run_name='__main__')\n")


def _loaded_by(*args: str, preamble: str = "") -> tuple[set[str], subprocess.CompletedProcess]:
    """Top-level modules loaded by a real `python -m precsim.codesign.cli ARGS` run."""
    done = subprocess.run([sys.executable, "-c", _REPORT.replace("{preamble}", preamble), *args],
                          capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("LOADED ")][-1]
    return set(line.split()[1:]), done


@pytest.mark.parametrize("args", [
    ("--help",),
    ("simulate", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant", "W4A16-g128",
     "--json"),
])
def test_help_and_simulate_load_no_heavy_library(args):
    loaded, done = _loaded_by(*args)
    assert done.returncode == 0, done.stderr
    assert "precsim" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    if args[0] == "--help":
        assert all(name in done.stdout for name in cli.COMMANDS)


def test_simulate_loads_no_pandas_and_law_errors_still_exit_2():
    """`simulate` (--json or its text table) needs neither pandas nor pyarrow (the
    DataFrame `.ops` imports pandas, the text table and the totals do not; the CLI checks
    LawInputError only once lawcore is loaded): about half the command's wall time
    (benchmarks/cli_speed.py). A law command, which does load lawcore, still maps its
    bad input to exit 2."""
    for tail in (("--json",), ()):
        loaded, done = _loaded_by("simulate", "--profile", "a100-sxm-80gb", "--model",
                                  "llama-2-7b", *tail)
        assert done.returncode == 0, done.stderr
        assert not loaded & {"pandas", "pyarrow"}, (tail, loaded & {"pandas", "pyarrow"})
    assert "per op" in done.stdout and "qkv_proj" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "precsim.codesign.cli", "law", "predict",
                          "--N", "-1", "--D", "1e9"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_report_sees_a_heavy_import():
    """The check above can fail: a command that does load scipy is reported."""
    loaded, done = _loaded_by("--help", preamble="import scipy.optimize")
    assert done.returncode == 0 and "scipy" in loaded


def _registered() -> dict[str, tuple[str, str]]:
    """command -> (help, module) from registering every command module for real."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    out: dict[str, tuple[str, str]] = {}
    for module in cli.COMMAND_MODULES:
        before = len(sub._choices_actions)
        importlib.import_module(module).register(sub)
        for action in sub._choices_actions[before:]:
            out[action.dest] = (action.help, module)
    return out


def test_the_lazy_command_table_matches_what_the_modules_register():
    registered = _registered()
    assert list(cli.COMMANDS) == list(registered)
    for name, (help_text, modules) in cli.COMMANDS.items():
        assert help_text == registered[name][0], name
        assert modules[0] == registered[name][1], name
        assert list(modules) == [m for m in cli.COMMAND_MODULES if m in modules], name


def test_the_lazy_parser_loads_only_the_chosen_command():
    parser = cli.build_parser("simulate")
    args = parser.parse_args(["simulate", "--profile", "x", "--model", "y"])
    assert args.batch == 1 and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["bogus"])


def test_lawcore_and_the_planner_load_scipy_only_when_a_fit_runs():
    code = ("import sys, precsim.codesign.planner; from precsim import lawcore; "
            "assert 'scipy' not in sys.modules, 'eager'; "
            "import precsim.lawcore.fitting as f; assert lawcore.heldout_check is "
            "f.heldout_check and 'heldout_check' in dir(lawcore); print('scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "True", done.stderr
