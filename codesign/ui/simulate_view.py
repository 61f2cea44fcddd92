"""Simulate tab: one request → totals, sortable per-op table, roofline, bytes, energy."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html

from precsim.simulator.io import json_text
from precsim.codesign.ui.widgets import attempt, error_box, json_panel
from precsim.codesign.ui.compute import (MAX_CONFIG_BYTES, model_ref, profile_names,
                                         save_upload, simulate_view)
from precsim.simulator.models import list_models
from precsim.simulator.quant import PRESETS
from precsim.simulator.runtime import list_runtimes
from precsim.simulator.units import format_quantity

FORMATS = ["W16A16", "FP8", "W8A8", "W8A16", "W4A8-g128", "W4A16-g128", "W3A16-g128",
           "W2A16-g64", "W1.58A8", *PRESETS]
#: (totals key, label, units dimension or None) shown in the totals table.
TOTALS = (("ttft_s", "TTFT (prefill)", "time"), ("tpot_s", "TPOT (per decode step)", "time"),
          ("decode_tokens_per_s", "decode tokens/s", None),
          ("e2e_latency_s", "end-to-end latency", "time"), ("energy_j", "energy", "energy"),
          ("energy_per_token_j", "energy per generated token", "energy"),
          ("average_power_w", "average power", "power"),
          ("memory_bytes", "memory needed", "bytes"), ("fits", "fits in memory", None))


def _number(id_, label, value):
    return html.Label([label, dcc.Input(id=id_, type="number", min=1, step=1, value=value,
                                        debounce=True, style={"width": "7em"})],
                      style={"marginRight": "1em"})


def layout(ctx) -> html.Div:
    names = profile_names(ctx.profile_dirs)
    models = [{"label": m, "value": m} for m in list_models()] + [
        {"label": "Hugging Face cache name →", "value": "hf-cache"},
        {"label": "uploaded config.json", "value": "upload"}]
    return html.Div([
        html.Div([
            html.Label(["profile", dcc.Dropdown(names, "h100-sxm" if "h100-sxm" in names
                                                else names[0], id="sim-profile",
                                                clearable=False)],
                       style={"width": "14em"}),
            html.Label(["model", dcc.Dropdown(models, "llama-3-8b", id="sim-model",
                                              clearable=False)], style={"width": "16em"}),
            dcc.Input(id="sim-hf", placeholder="ORG/NAME in the HF cache", debounce=True,
                      style={"width": "16em"}),
            dcc.Upload(html.Button("upload config.json"), id="sim-upload",
                       max_size=MAX_CONFIG_BYTES, accept=".json"),
            html.Label(["format", dcc.Dropdown(list(dict.fromkeys(FORMATS)), "W4A16-g128",
                                               id="sim-quant", clearable=False)],
                       style={"width": "12em"}),
            html.Label(["runtime", dcc.Dropdown([r.name for r in list_runtimes()],
                                                "reference", id="sim-runtime",
                                                clearable=False)],
                       style={"width": "12em"}, title="the software stack on the chip "
                       "(docs/runtimes.md); reference: the profile as it is"),
        ], style={"display": "flex", "gap": "1em", "alignItems": "end", "flexWrap": "wrap"}),
        html.Div([_number("sim-batch", "batch ", 1), _number("sim-prompt", "prompt ", 512),
                  _number("sim-gen", "generated ", 128),
                  _number("sim-tp", "tensor parallel ", 1),
                  _number("sim-pp", "pipeline parallel ", 1),
                  _number("sim-ep", "expert parallel ", 1)],
                 style={"margin": "0.6em 0"}),
        dcc.Store(id="sim-upload-path"),
        error_box(None, "sim-error"),
        dcc.Loading(html.Div(id="sim-out")),
    ])


def _totals_table(totals: dict) -> dash_table.DataTable:
    rows = []
    for key, label, dim in TOTALS:
        value = totals.get(key)
        shown = ("-" if value is None else json_text(value) if dim is None
                 else format_quantity(value, dim))
        rows.append({"quantity": label, "value": shown, "json": json_text(value),
                     "key": key})
    return dash_table.DataTable(rows, [{"name": c, "id": c} for c in ("quantity", "value",
                                                                      "json")],
                                id="sim-totals", style_cell={"textAlign": "left"})




def _roofline_figure(roof: dict) -> go.Figure:
    fig = go.Figure()
    pts = roof["points"]
    intensity = [p["ops_per_byte"] for p in pts] or [1.0]
    peak = max(roof["roofs"]["compute_ops_per_s"].values())
    ridges = [peak / bw for bw in roof["roofs"]["memory_bytes_per_s"].values()]
    xs = np.geomspace(min(min(ridges) / 10, min(intensity) / 3),
                      max(max(ridges) * 10, max(intensity) * 3), 100)
    for name, bw in roof["roofs"]["memory_bytes_per_s"].items():
        fig.add_scatter(x=xs, y=np.minimum(bw * xs, peak), mode="lines",
                        name=f"{name} roof {bw / 1e12:.3g} TB/s")
    for dtype, rate in roof["roofs"]["compute_ops_per_s"].items():
        fig.add_scatter(x=[xs[0], xs[-1]], y=[rate, rate], mode="lines",
                        line={"dash": "dash", "color": "grey"}, name=f"{dtype} {rate / 1e12:.3g} T")
    for level in roof["roofs"]["memory_bytes_per_s"]:
        sel = [p for p in pts if p["level"] == level]
        fig.add_scatter(x=[p["ops_per_byte"] for p in sel],
                        y=[p["achieved_ops_per_s"] for p in sel], mode="markers",
                        name=f"ops at {level}",
                        text=[f"{p['op']} ({p['phase']}, {p['bound']})" for p in sel],
                        marker={"symbol": ["circle" if p["phase"] == "prefill" else "square"
                                           for p in sel]})
    fig.update_layout(title=f"{roof['profile']}: hierarchical roofline (circle prefill, "
                            "square decode)", xaxis_type="log", yaxis_type="log",
                      xaxis_title="ops per byte at each level", yaxis_title="achieved ops/s",
                      height=480, margin={"t": 40})
    return fig


def _output(view: dict) -> html.Div:
    totals = view["json"]["totals"]
    ops = view["ops"]
    fits = totals["fits"]
    head = html.P("fits in memory" if fits else "DOES NOT FIT in memory: timings are not "
                  "reported (\"feasible\": false)", id="sim-fits",
                  style={} if fits else {"color": "#b00020", "fontWeight": "bold"})
    levels = list(totals["bytes_moved"])
    bytes_fig = go.Figure(go.Bar(x=levels, y=[totals["bytes_moved"][k] for k in levels]))
    bytes_fig.update_layout(title="bytes moved per memory level", yaxis_type="log",
                            height=320, margin={"t": 40})
    by_phase = ops.groupby("phase", sort=False)["energy_j"].sum()
    energy_fig = go.Figure(go.Bar(x=list(by_phase.index), y=list(by_phase.values)))
    energy_fig.update_layout(title="energy per phase (J; static power not included)",
                             height=320, margin={"t": 40})
    table = dash_table.DataTable(
        ops.to_dict("records"), [{"name": c, "id": c, "type": "numeric" if c not in (
            "phase", "op", "exec_dtype", "bound") else "text"} for c in ops.columns],
        id="sim-ops", sort_action="native", page_size=30,
        style_table={"overflowX": "auto"}, style_cell={"fontSize": "12px"})
    return html.Div([
        head, _totals_table(totals),
        html.Div([dcc.Graph(figure=bytes_fig, style={"flex": 1}),
                  dcc.Graph(figure=energy_fig, style={"flex": 1})], style={"display": "flex"}),
        dcc.Graph(figure=_roofline_figure(view["roofline"]), id="sim-roofline"),
        html.H4("per operator (decode rows summed over all decode steps; click a header "
                "to sort)"), table,
        json_panel(view, "sim-json")])


def register(app, ctx) -> None:
    @app.callback(Output("sim-upload-path", "data"), Output("sim-model", "value"),
                  Input("sim-upload", "contents"), State("sim-upload", "filename"),
                  prevent_initial_call=True)
    def _upload(contents, filename):
        path, err = attempt(save_upload, contents, ctx.upload_dir.name, "config.json",
                            MAX_CONFIG_BYTES, f"model config {filename!r}")
        return {"path": path and str(path), "error": err}, "upload"

    @app.callback(Output("sim-out", "children"), Output("sim-error", "children"),
                  Output("sim-error", "style"),
                  Input("sim-profile", "value"), Input("sim-model", "value"),
                  Input("sim-hf", "value"), Input("sim-upload-path", "data"),
                  Input("sim-quant", "value"), Input("sim-batch", "value"),
                  Input("sim-prompt", "value"), Input("sim-gen", "value"),
                  Input("sim-tp", "value"), Input("sim-pp", "value"), Input("sim-ep", "value"),
                  Input("sim-runtime", "value"))
    def _simulate(profile, model, hf, upload, quant, batch, prompt, gen, tp, pp, ep,
                  runtime):
        upload = upload or {}
        ref, err = attempt(model_ref, model, hf, upload.get("path"))
        if model == "upload" and upload.get("error"):
            ref, err = None, upload["error"]
        view = None
        if ref:
            view, err = attempt(simulate_view, profile, ref, quant, batch, prompt, gen,
                                ctx.profile_dirs, tp, pp, ep, runtime)
        style = {"color": "#b00020", "display": "block" if err else "none"}
        return (_output(view) if view else html.Div()), err or "", style
