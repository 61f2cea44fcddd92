"""Pieces every tab uses: error handling, the error box, the command-line/JSON panel."""
from __future__ import annotations

import shlex

from dash import html

from precsim.lawcore.errors import LawInputError
from precsim.simulator.errors import InputError
from precsim.simulator.io import json_text


def attempt(fn, *args, **kwargs):
    """(value, None) or (None, message): input errors as they are, others labelled."""
    try:
        return fn(*args, **kwargs), None
    except (InputError, LawInputError) as exc:
        return None, f"error: {exc}"
    except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
        return None, f"internal error: {type(exc).__name__}: {exc}"


def error_box(message: str | None, id_: str) -> html.Div:
    return html.Div(message or "", id=id_, role="alert",
                    style={"color": "#b00020", "whiteSpace": "pre-wrap",
                           "display": "block" if message else "none"})


def json_panel(view: dict | None, id_: str) -> html.Details:
    """The command line and its `--json` object, as the page computed it."""
    cmd = "precsim " + shlex.join(view["argv"]) if view else ""
    text = json_text(view["json"]) if view else ""
    return html.Details([html.Summary("same as the command line (JSON)"),
                         html.Code(cmd, id=f"{id_}-cmd"),
                         html.Pre(text, id=id_, style={"maxHeight": "24em",
                                                       "overflow": "auto"})])
