"""PrecSim: a hardware cost simulator coupled to precision-aware scaling laws.

One import name. The subpackages live in folders at the repository root and are
mapped into this package by the build (setup.py):

- `precsim.simulator` — hardware profiles, bytes moved, time, energy (no loss);
- `precsim.lawcore` — the scaling laws (no hardware);
- `precsim.codesign` — the coupling: planner, what-if, report, CLI;
- `precsim.validation` — PyTorch measurements that check the other two.

The small public API (see docs/api.md) is loaded on first use, so `import precsim`
stays cheap::

    import precsim
    h100 = precsim.load_profile("h100-sxm")
    result = precsim.simulate(h100, "llama-3-8b", "W4A16-g128", batch=8)
    result.totals["tpot_s"]
"""
from __future__ import annotations

import os as _os

# In a source checkout this folder holds only the API; the subpackages sit beside it
# at the repository root. An installed wheel has them inside this folder.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if (not _os.path.isdir(_os.path.join(_here, "simulator"))
        and _os.path.isfile(_os.path.join(_root, "simulator", "__init__.py"))):
    __path__.append(_root)  # noqa: F821 - the package's own search path

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first attribute access).
_API = {
    "load_profile": "precsim.api", "list_profiles": "precsim.api",
    "get_model": "precsim.api", "list_models": "precsim.api",
    "parse_quant": "precsim.api", "simulate": "precsim.api", "plan": "precsim.api",
    "simulate_grid": "precsim.api",
    "get_law": "precsim.api", "list_laws": "precsim.api",
    "compute_optimal": "precsim.api", "InputError": "precsim.api",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    """A public name, imported on first access and kept in this module's namespace (later
    accesses find it there, without this hook)."""
    if name in _API:
        import importlib
        value = globals()[name] = getattr(importlib.import_module(_API[name]), name)
        return value
    raise AttributeError(f"module 'precsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
