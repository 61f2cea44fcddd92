"""The explorer's Dash app: four tabs (Simulate, Co-design, Laws, Profiles).

`create_app` builds it; `serve` runs it on 127.0.0.1 unless another host is asked for.
Callbacks call `precsim.codesign.ui.compute`, i.e. the functions the CLI commands call,
and show the command's JSON with the equivalent command line. Errors show as a message
naming the field (never a traceback page: Dash debug stays off).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import dash
from dash import dcc, html

from precsim.codesign.ui import codesign_view, laws_view, profiles_view, simulate_view
from precsim.codesign.ui.widgets import attempt, error_box

#: Largest request body the server accepts (uploads are limited again per file).
MAX_REQUEST_BYTES = 4 << 20


@dataclass
class Context:
    """What every view needs: the study, extra profile folders, the upload folder."""
    study: str | None = None
    profile_dirs: tuple[str, ...] = ()
    upload_dir: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="precsim-ui-"))


def page_error(exc: Exception) -> None:
    """Any exception a callback lets out: a message at the top of the page (the
    callback's outputs keep their last values), never a traceback."""
    _, message = attempt(_raise, exc)
    dash.set_props("page-error", {"children": message,
                                  "style": {"color": "#b00020", "display": "block"}})


def _raise(exc: Exception):
    raise exc


def create_app(ctx: Context | None = None) -> dash.Dash:
    ctx = ctx or Context()
    app = dash.Dash(__name__, title="PrecSim explorer", update_title=None,
                    suppress_callback_exceptions=True, on_error=page_error)
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    views = (("simulate", "Simulate", simulate_view), ("codesign", "Co-design", codesign_view),
             ("laws", "Laws", laws_view), ("profiles", "Profiles", profiles_view))
    app.layout = html.Div([
        html.H2("PrecSim explorer"),
        error_box(None, "page-error"),
        dcc.Tabs(id="tabs", value="simulate", children=[
            dcc.Tab(label=label, value=key, id=f"tab-{key}", children=module.layout(ctx))
            for key, label, module in views]),
    ], style={"fontFamily": "sans-serif", "margin": "0 1.5em"})
    for _, _, module in views:
        module.register(app, ctx)
    return app


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Run the app until interrupted (Flask's threaded server, debug off)."""
    app = create_app(ctx)
    app.run(host=host, port=port, debug=False)
