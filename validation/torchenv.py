"""PyTorch discovery: import it if installed, pick the device, describe the machine.

Everything in `validation` that touches torch gets it from `load_torch()`, so a machine
without PyTorch gets one clear message (`TorchUnavailable`) naming what is skipped,
and the rest of a command (simulation, reports) still runs.
"""
from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


class TorchUnavailable(RuntimeError):
    """PyTorch is not importable here; measurement is skipped."""


def _import_torch() -> ModuleType:
    return importlib.import_module("torch")


def load_torch() -> ModuleType:
    """The `torch` module, or TorchUnavailable saying why measurement cannot run."""
    try:
        return _import_torch()
    except ImportError as exc:
        raise TorchUnavailable(
            f"PyTorch is not installed ({exc}); every measurement (kernels, calibration "
            "microbenchmarks, the small transformer) is skipped. Install it with "
            "`pip install torch` to measure.") from None


def resolve_device(requested: str | None = None) -> str:
    """'cuda' when a GPU is present (or asked for), else 'cpu'."""
    torch = load_torch()
    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from precsim.simulator.errors import InputError
        raise InputError("--device cuda: no CUDA GPU is visible to PyTorch "
                         f"(torch {torch.__version__}); use --device cpu")
    if requested not in ("cpu", "cuda"):
        from precsim.simulator.errors import InputError
        raise InputError(f"--device {requested!r}: expected cpu, cuda or auto")
    return requested


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads in PyTorch (None: leave its default)."""
    if threads is None:
        return
    if threads < 1:
        from precsim.simulator.errors import InputError
        raise InputError(f"--threads {threads}: expected a positive number of threads")
    load_torch().set_num_threads(threads)


@dataclass(frozen=True)
class CacheLevel:
    """One data cache level as the OS reports it (sizes are per instance)."""

    level: int
    size_bytes: int
    instances: int

    @property
    def total_bytes(self) -> int:
        return self.size_bytes * self.instances


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * factor


def cpu_caches(sysfs: str | os.PathLike = "/sys/devices/system/cpu") -> list[CacheLevel]:
    """Data/unified cache levels from sysfs (Linux), nearest first; [] where unknown."""
    root = Path(sysfs)
    levels: dict[int, tuple[int, set[str]]] = {}
    for cpu in sorted(root.glob("cpu[0-9]*")):
        for index in sorted((cpu / "cache").glob("index*")):
            try:
                kind = (index / "type").read_text().strip()
                level = int((index / "level").read_text())
                size = _parse_size((index / "size").read_text())
                shared = (index / "shared_cpu_list").read_text().strip()
            except (OSError, ValueError):
                continue
            if kind == "Instruction":
                continue
            size_seen, groups = levels.setdefault(level, (size, set()))
            groups.add(shared)
    return [CacheLevel(level, size, len(groups)) for level, (size, groups)
            in sorted(levels.items())]


def busy_note(threshold: float = 0.5) -> str | None:
    """A warning when other work is running: the 1-minute load average (Unix) above
    `threshold` x the number of CPUs. Measurements then include interference (threads
    descheduled mid-kernel), which shows up as run-to-run spread."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cpus = os.cpu_count() or 1
    if load <= threshold * cpus:
        return None
    return (f"the machine was busy when measuring (1-minute load average {load:.1f} on "
            f"{cpus} CPUs): other processes share the cores, so timings are slower and "
            "noisier than on an idle machine; re-run when it is idle")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo's first `flags` line (empty where the file
    is missing, e.g. macOS): which matrix extensions (amx_bf16, amx_int8) the host has."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def machine_description(device: str) -> str:
    """A one-line description of the measuring machine (CPU model or GPU name, threads)."""
    torch = load_torch()
    if device == "cuda":
        return (f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
                f"CUDA {torch.version.cuda}")
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return (f"{model}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch "
            f"threads, {capability}, torch {torch.__version__}")
