"""Laws tab: iso-loss curves of a law at a compute budget, its fitted domain shaded
(where the law exposes one), and the compute-optimal precision."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from precsim.codesign.ui.widgets import attempt, error_box, json_panel
from precsim.codesign.ui.compute import law_view
from precsim.lawcore import DEFAULT_LAW, LAWS


def layout(ctx) -> html.Div:
    return html.Div([
        html.Div([
            html.Label(["law", dcc.Dropdown(list(LAWS), DEFAULT_LAW, id="law-name",
                                            clearable=False)], style={"width": "14em"}),
            html.Label(["training compute, FLOPs (1e21, 3e23, ...) ",
                        dcc.Input(id="law-compute", value="1e21", debounce=True,
                                  style={"width": "9em"})]),
        ], style={"display": "flex", "gap": "2em", "alignItems": "end"}),
        error_box(None, "law-error"),
        dcc.Loading(html.Div(id="law-out")),
    ])


def _domain_box(domain) -> tuple | None:
    """(P range, N range) of a law's fitted domain, if it gives both as (low, high)."""
    if not isinstance(domain, Mapping):
        domain = getattr(domain, "__dict__", None) or {}
    get = {str(k).lower(): v for k, v in domain.items()}
    p = next((get[k] for k in ("w_bits", "p_w", "p", "precision", "bits") if k in get), None)
    n = next((get[k] for k in ("n", "params") if k in get), None)
    try:
        return (tuple(map(float, p)), tuple(map(float, n))) if p and n else None
    except (TypeError, ValueError):
        return None


def _figure(view: dict) -> go.Figure:
    grid, opt = view["grid"], view["json"]
    fig = go.Figure(go.Contour(x=grid["P"], y=np.log10(grid["N"]), z=grid["loss"],
                               colorscale="Viridis", contours={"showlabels": True},
                               colorbar={"title": "loss"}, name="loss"))
    fig.add_scatter(x=grid["P"], y=np.log10(grid["ridge_N"]), mode="lines", name="N*(P)",
                    line={"dash": "dash", "color": "white"})
    fig.add_scatter(x=[opt["precision"]], y=[np.log10(opt["N"])], mode="markers",
                    name="compute-optimal", marker={"symbol": "star", "size": 16,
                                                    "color": "red"})
    box = _domain_box(view["domain"])
    if box:
        (p0, p1), (n0, n1) = box
        fig.add_shape(type="rect", x0=p0, x1=p1, y0=np.log10(n0), y1=np.log10(n1),
                      fillcolor="white", opacity=0.2, line={"color": "white"})
    fig.update_layout(title=f"{opt['law']}: iso-loss at C = {opt['compute_flops']:.3g} FLOPs "
                            "(D = 16C/(6NP))", xaxis_title="training precision (bits)",
                      yaxis_title="log10 N", height=520, margin={"t": 40},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def register(app, ctx) -> None:
    @app.callback(Output("law-out", "children"), Output("law-error", "children"),
                  Output("law-error", "style"),
                  Input("law-name", "value"), Input("law-compute", "value"))
    def _update(name, compute):
        view, err = attempt(law_view, name, compute)
        style = {"color": "#b00020", "display": "block" if err else "none"}
        if not view:
            return html.Div(), err or "", style
        j = view["json"]
        parts = [html.P(f"compute-optimal: precision {j['precision']:.3f} bits, "
                        f"N = {j['N']:.4g}, D = {j['D']:.4g}, loss {j['loss']:.5g}"
                        + (" (at the search's upper bound)" if j["at_bound"] else ""),
                        id="law-optimum")]
        parts.append(dcc.Graph(figure=_figure(view), id="law-graph"))
        if _domain_box(view["domain"]) is None:
            parts.append(html.P("this law exposes no fitted domain to shade",
                                style={"color": "#666"}))
        parts.append(json_panel(view, "law-json"))
        return html.Div(parts), err or "", style
