"""The `precsim` command line.

Exit codes (design.md, README "Exit codes"): 0 answered, 2 bad input (a message, no
traceback), 3 answered but infeasible (does not fit, no configuration meets the SLOs,
target loss unreachable; `--json` prints `"feasible": false` and the `"reason"`),
1 internal error, 130 interrupted (Ctrl-C; a second Ctrl-C ends at once), 143
terminated (SIGTERM: the run unwinds, so temporary outputs are removed and old outputs
stay as they were). Every `--json` object carries `"feasible"`.
Each command group lives in `codesign/commands/<group>.py` and exposes
`register(subparsers)`; every sub-parser sets `func(args) -> int`.

The parser is built lazily: `COMMANDS` names every top-level command with its help and
the modules that register it, so `precsim --help` lists them all and `precsim simulate`
imports only the simulate module (no scipy, matplotlib, torch or dask). A module of
`COMMAND_MODULES` that no `COMMANDS` entry names is imported on every run (correct, only
slower); tests/test_architecture.py checks the table against what the modules register.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback

from precsim.simulator.errors import Infeasible, InputError

# Command-group modules, in the order they appear in `precsim --help`.
COMMAND_MODULES = (
    "precsim.codesign.commands.profiles",
    "precsim.codesign.commands.runtimes",
    "precsim.codesign.commands.law",
    "precsim.codesign.commands.law_validate",
    "precsim.codesign.commands.simulate",
    "precsim.codesign.commands.validate",
    "precsim.codesign.commands.sweep",
    "precsim.codesign.commands.serve",
    "precsim.codesign.commands.train",
    "precsim.codesign.commands.plan",
    "precsim.codesign.commands.whatif",
    "precsim.codesign.commands.report",
    "precsim.codesign.commands.ui",
)

_C = "precsim.codesign.commands."
#: top-level command -> (its help, the modules that register it, in COMMAND_MODULES order)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "profiles": ("list, show and check hardware profiles", (_C + "profiles",)),
    "runtimes": ("list and show runtime profiles (software stacks)", (_C + "runtimes",)),
    "law": ("precision-aware scaling laws: predict, fit, compute-optimal precision, figures",
            (_C + "law", _C + "law_validate")),
    "simulate": ("time, bytes and energy of one request", (_C + "simulate",)),
    "roofline": ("draw the model's ops on the roofline", (_C + "simulate",)),
    "calibrate": ("measure this machine with PyTorch and write a host profile",
                  (_C + "validate",)),
    "validate": ("measure kernels with PyTorch and compare with the simulator",
                 (_C + "validate",)),
    "sweep": ("run a what-if study (profiles x models x formats x workloads)", (_C + "sweep",)),
    "serve": ("simulate serving an LLM on one device or one parallel replica (continuous "
              "batching)", (_C + "serve",)),
    "size": ("fewest devices meeting p99 TTFT/TPOT SLOs, found by simulation", (_C + "serve",)),
    "train": ("time, MFU, energy and memory of a training step", (_C + "train",)),
    "plan": ("cheapest N, D, training precision and serving format at a target loss",
             (_C + "plan",)),
    "whatif": ("vary a hardware profile and see the optimal plan move", (_C + "whatif",)),
    "report": ("write the co-design report (Markdown, HTML, figures, CSV)", (_C + "report",)),
    "ui": ("a local web page: simulate, co-design, laws, profiles", (_C + "ui",)),
}

def input_errors() -> tuple[type[Exception], ...]:
    """The bad-input exceptions (exit 2): InputError, and lawcore's LawInputError once
    lawcore is loaded (a run that never loaded it cannot raise it; importing it here
    would load pandas on every command)."""
    law = sys.modules.get("precsim.lawcore.errors")
    return (InputError,) if law is None else (InputError, law.LawInputError)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command`'s modules registered (every module when None) and a
    help-only stub for each other listed command."""
    parser = argparse.ArgumentParser(
        prog="precsim",
        description="PrecSim: the precision that minimises real-silicon cost at a target loss.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    listed = {m for _, modules in COMMANDS.values() for m in modules}
    load = set(COMMAND_MODULES) if command is None else \
        (set(COMMAND_MODULES) - listed) | set(COMMANDS.get(command, ("", ()))[1])
    stubbed: set[str] = set()
    for module_name in COMMAND_MODULES:
        if module_name in load:
            importlib.import_module(module_name).register(subparsers)
            continue
        for name, (help_text, modules) in COMMANDS.items():
            if modules[0] == module_name and name not in stubbed:
                subparsers.add_parser(name, help=help_text, add_help=False)
                stubbed.add(name)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The command word of `argv` (its first argument not starting with '-'), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


@contextlib.contextmanager
def interrupt_handlers():
    """While a command runs: SIGTERM raises SystemExit(143) and the first SIGINT raises
    KeyboardInterrupt, so `finally` blocks remove temporary files; a second SIGINT ends
    the process at once (exit 130, no traceback, no waiting for workers). Previous
    handlers are restored afterwards; off the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts = 0

    def on_sigint(signum, frame):  # noqa: ANN001 - signal handler signature
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os.write(2, b"precsim: interrupted again, exiting now\n")
            os._exit(130)
        raise KeyboardInterrupt

    def on_sigterm(signum, frame):  # noqa: ANN001 - signal handler signature
        raise SystemExit(143)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint),
                signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if interrupts:  # interrupted: a Ctrl-C while exiting (joining workers) ends at once
            signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv) or "")
    args = parser.parse_args(argv)
    try:
        with interrupt_handlers():
            return int(args.func(args) or 0)
    except Infeasible as exc:       # before input_errors(): it is a subclass
        from precsim.codesign.commands.common import INFEASIBLE_EXIT, print_json
        if getattr(args, "json", False):
            print_json({"feasible": False, "reason": str(exc)})
        else:
            print(f"precsim: infeasible: {exc}")
        return INFEASIBLE_EXIT
    except input_errors() as exc:
        print(f"precsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("precsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - last-resort handler of the CLI
        if os.environ.get("PRECSIM_DEBUG"):
            traceback.print_exc()
        print(f"precsim: internal error: {type(exc).__name__}: {exc} "
              "(set PRECSIM_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
