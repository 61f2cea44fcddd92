"""What-if overrides of a profile document: a dotted path set to a value
(`HardwareProfile.with_overrides`); a cited number set to a plain value becomes a
what-if assumption."""
from __future__ import annotations

from typing import Any

from precsim.simulator.errors import InputError

_PROVENANCE = ("source", "derived", "measured", "assumed")


def set_path(doc: dict, dotted: str, value: Any, profile_name: str) -> None:
    """Write `value` at the dotted path of a profile document
    (`HardwareProfile.with_overrides` says how paths and values are read)."""
    parts = dotted.split(".")
    node: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "top level"
        if isinstance(node, list):
            index = next((k for k, item in enumerate(node)
                          if isinstance(item, dict) and item.get("name") == part), None)
            if index is None and part.isdigit() and int(part) < len(node):
                index = int(part)
            if index is None:
                raise InputError(f"profile {profile_name}: override {dotted}: no item "
                                 f"{part!r} in {where}")
            key: Any = index
        elif isinstance(node, dict):
            if not last and node.get(part) is None:
                node[part] = {}
            key = part
        else:
            raise InputError(f"profile {profile_name}: override {dotted}: {where} is not "
                             "a mapping or list")
        if not last:
            node = node[key]
            continue
        current = node[key] if isinstance(node, list) or key in node else None
        if value is None:
            if isinstance(node, list):
                raise InputError(f"profile {profile_name}: override {dotted}: cannot "
                                 "remove a list item")
            node.pop(key, None)
        elif isinstance(current, dict) and "value" in current and not isinstance(value, dict):
            _override_cited(current, value)  # "memory.hbm.bandwidth": "6.7 TB/s"
        elif key == "value" and isinstance(node, dict) and not isinstance(value, dict):
            _override_cited(node, value)  # "memory.hbm.bandwidth.value": "6.7 TB/s"
        else:
            node[key] = value


def _override_cited(cited: dict, value: Any) -> None:
    """Set a cited quantity's value and mark it as a what-if assumption."""
    was = f"was {cited['value']}" if "value" in cited else "not in the profile"
    old = "; ".join(f"{k}: {cited[k]}" for k in _PROVENANCE if cited.get(k))
    for key in _PROVENANCE:
        cited.pop(key, None)
    cited["value"] = value
    cited["assumed"] = f"what-if override ({was}" + (f"; {old})" if old else ")")
