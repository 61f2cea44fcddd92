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


def _idle_jiffies(stat: Path) -> tuple[int, int]:
    """(idle + iowait, total) jiffies of /proc/stat's aggregate `cpu` line."""
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def free_cpus(sample_s: float = 1.0, stat: str | os.PathLike = "/proc/stat") -> float | None:
    """CPUs other processes left idle over the next `sample_s` seconds (the idle share
    of /proc/stat's jiffies x the CPU count); None where /proc/stat is missing."""
    import time
    path = Path(stat)
    try:
        idle0, total0 = _idle_jiffies(path)
        time.sleep(sample_s)
        idle1, total1 = _idle_jiffies(path)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


def threads_for_free_cpus(threads: int, free: float | None, load: float | None
                          ) -> tuple[int, str | None]:
    """The CPU threads to measure with when `threads` were planned: 1 (and the note
    saying why) when other processes hold a core — fewer than `threads` - 0.5 CPUs
    `free` right now, or a 1-minute `load` average above 0.75 + the CPUs beyond
    `threads`. On a core shared with another process a parallel kernel waits for its
    descheduled partner at every barrier, so the fastest of one and `threads` threads
    mixed one-core and all-core rates between a fit and the cases it predicts (a
    one-token fp32 matmul streamed at 11 GB/s on one thread and 21 GB/s on two in one
    run); one thread, timed in its CPU time, measures one core consistently."""
    cpus = os.cpu_count() or 1
    busy = (free is not None and free < threads - 0.5) or \
        (load is not None and load > 0.75 + cpus - threads)
    if threads <= 1 or not busy:
        return threads, None
    seen = ", ".join(part for part in (
        f"{free:.1f} of {cpus} CPUs free" if free is not None else "",
        f"1-minute load average {load:.1f}" if load is not None else "") if part)
    return 1, (f"measured on 1 thread instead of {threads}: other processes hold a core "
               f"({seen}); the calibrated profile describes one core (--threads N to "
               "insist on N)")


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
