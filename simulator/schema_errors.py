"""The one formatter of schema (pydantic) validation errors, for every YAML PrecSim reads:
hardware profiles, studies and sweeps. One line per error, `<file>: <field path>: <what
is wrong>`; list items are shown by their `name` where they have one (``memory[hbm]``),
else by index (``batch[0]``); an unknown field suggests the nearest known name."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

#: errors shown per file; the rest are counted
MAX_ERRORS = 12


def field_path(loc: tuple, doc: Any = None) -> str:
    """Dotted field path; list items by their `name` in `doc` where they have one."""
    text, node = "", doc
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("name") if isinstance(item, dict) else None
            text += f"[{str(label)[:40] if isinstance(label, str) and label else part}]"
            node = item
        else:
            text += ("." if text else "") + str(part)[:40]
            node = node.get(part) if isinstance(node, dict) else None
    return text


def format_validation_error(exc: ValidationError, source: str, doc: Any = None,
                            fields: Iterable[str] | Callable[[tuple], Iterable[str]] = (),
                            list_expected: bool = False) -> str:
    """The message of `exc` for the document `doc` read from `source`. `fields`: the
    known field names (or a function of the error's location giving them), for "did you
    mean"; `list_expected` also lists them after an unknown field."""
    lines = []
    for err in exc.errors():
        loc = field_path(err["loc"], doc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            names = list(fields(err["loc"]) if callable(fields) else fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), names, n=1)
            msg = "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
            if list_expected:
                msg += f"; expected one of {', '.join(names)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}")
    shown = lines[:MAX_ERRORS]
    if len(lines) > MAX_ERRORS:
        shown.append(f"{source}: ... and {len(lines) - MAX_ERRORS} more errors")
    return "\n".join(shown)
