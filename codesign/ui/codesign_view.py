"""Co-design tab: the study's deployments, a target loss and hardware/economic what-ifs →
the optimum per profile, cost vs precision and the Pareto frontier of the focused one."""
from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, dash_table, dcc, html

from precsim.codesign.problem import cost_text
from precsim.codesign.ui.compute import WhatIf, plan_view, study_deployments
from precsim.codesign.ui.widgets import attempt, error_box, json_panel
from precsim.simulator.io import json_text
from precsim.simulator.profiles import DTYPES

_CONTROLS = ("cd-deploy", "cd-target", "cd-bw", "cd-sram", "cd-native", "cd-emulate",
             "cd-dollars", "cd-tokens")


def _num(id_, label, value=None, placeholder=None, step="any"):
    return html.Label([label, dcc.Input(id=id_, type="number", value=value, step=step,
                                        placeholder=placeholder, debounce=True,
                                        style={"width": "11em"})],
                      style={"marginRight": "1em"})


def layout(ctx) -> html.Div:
    info, err = attempt(study_deployments, ctx.study, ctx.profile_dirs)
    if err:
        return error_box(err, "cd-error")
    deps = [d["name"] for d in info["deployments"]]
    return html.Div([
        html.P(f"study: {ctx.study or 'built-in default'}; objective {info['objective']}; "
               f"deployments: {', '.join(deps)}"),
        html.Div([
            html.Label(["focused deployment", dcc.Dropdown(deps, deps[0], id="cd-deploy",
                                                           clearable=False)],
                       style={"width": "16em", "marginRight": "1em"}),
            _num("cd-target", "target loss ",
                 placeholder=f"study's: {info['target_loss']:.6g}"),
            _num("cd-dollars", "$/device-hour (focused) ",
                 placeholder="study's value"),
            _num("cd-tokens", "lifetime tokens ", placeholder="study's value"),
        ], style={"display": "flex", "alignItems": "end", "flexWrap": "wrap"}),
        html.Div([
            html.Label(["memory bandwidth × ", dcc.Slider(0.25, 4, value=1, id="cd-bw",
                                                          marks={0.5: "0.5", 1: "1", 2: "2",
                                                                 4: "4"}, step=0.25)],
                       style={"width": "22em"}),
            html.Label(["on-chip SRAM size × ", dcc.Slider(0.25, 4, value=1, id="cd-sram",
                                                           marks={0.5: "0.5", 1: "1",
                                                                  2: "2", 4: "4"},
                                                           step=0.25)],
                       style={"width": "22em"}),
            html.Label(["native formats on (added where missing) ",
                        dcc.Checklist([d for d in DTYPES if d in (
                            "fp8_e4m3", "int8", "int4", "fp4_e2m1", "ternary")], [],
                            id="cd-native", inline=True)]),
            html.Label(["native formats off (emulated on a wider type) ",
                        dcc.Checklist([d for d in DTYPES if d in (
                            "fp8_e4m3", "int8", "int4", "fp4_e2m1", "bf16")], [],
                            id="cd-emulate", inline=True)]),
        ], style={"display": "flex", "gap": "2em", "margin": "0.8em 0", "flexWrap": "wrap"}),
        html.P("Hardware what-ifs and lifetime tokens apply to every deployment; "
               "$/device-hour to the focused one. Formats on and off are `--vary "
               "compute.DTYPE=native|emulated` what-ifs; on a SoC, per unit "
               "(compute_units.UNIT.compute.DTYPE): on adds the engine to every unit "
               "that lacks it and whose runtimes take the type, off removes it from "
               "every unit that has it.",
               style={"color": "#666", "fontSize": "13px"}),
        error_box(None, "cd-error"),
        dcc.Store(id="cd-focus-done"),
        dcc.Loading(html.Div(id="cd-focus")),
        html.H4("optimum per profile"),
        dcc.Loading(html.Div(id="cd-table")),
    ])


def _whatif(bw, sram, native, emulate) -> WhatIf:
    return WhatIf(float(bw or 1), float(sram or 1), tuple(sorted(native or ())),
                  tuple(sorted(emulate or ())))


def _focus(view: dict, name: str) -> html.Div:
    j = view["json"]
    obj = j["objective"]
    o = j["optimum"]
    head = (html.P(f"{name}: optimum train {o['train_format']} (runs as {o['train_dtype']}), "
                   f"serve {o['serve_format'] or '(as trained)'}, N = {o['N']:.3g}, "
                   f"D = {o['D']:.3g}, cost {cost_text(o['cost'], obj)}", id="cd-optimum")
            if o else html.P(f"{name}: no configuration reaches the target loss under the "
                             "constraints (\"feasible\": false)", id="cd-optimum",
                             style={"color": "#b00020"}))
    rows = [r for r in j["by_format"] if r["feasible"]]
    cost = go.Figure()
    for serve in dict.fromkeys(r["serve_format"] for r in rows):
        sel = [r for r in rows if r["serve_format"] == serve]
        cost.add_scatter(x=[r["weight_bits"] for r in sel], y=[r["cost"] for r in sel],
                         mode="markers+lines", name=f"serve {serve or 'as trained'}",
                         text=[r["train_format"] for r in sel])
    cost.update_layout(title=f"cost ({obj}) vs training weight bits", yaxis_type="log",
                       xaxis_title="training weight bits", height=380, margin={"t": 40})
    pareto = go.Figure(go.Scatter(x=[p["cost"] for p in j["pareto"]],
                                  y=[p["loss"] for p in j["pareto"]], mode="lines+markers",
                                  text=[f"{p['train_format']} / {p['serve_format']}"
                                        for p in j["pareto"]], name="frontier"))
    if o:
        pareto.add_scatter(x=[o["cost"]], y=[o["loss"]], mode="markers", name="optimum",
                           marker={"size": 14, "symbol": "star", "color": "red"})
    pareto.update_layout(title="Pareto frontier: loss vs cost", xaxis_type="log",
                         xaxis_title=f"cost ({obj})", yaxis_title="loss", height=380,
                         margin={"t": 40})
    robust = j.get("robustness")
    return html.Div([
        head, html.P("what-if: " + (", ".join(view["specs"]) or "none")),
        html.Div([dcc.Graph(figure=cost, style={"flex": 1}),
                  dcc.Graph(figure=pareto, style={"flex": 1})], style={"display": "flex"}),
        html.Div([html.H4("How robust the choice is"),
                  html.P(robust["summary"], id="cd-robust"),
                  html.Details([html.Summary("wins per (training, serving) pair, every law"),
                                html.Pre(json_text({k: robust[k] for k in
                                                    ("wins", "optimal_cost_spread",
                                                     "tie_margin")}))])])
        if robust is not None else
        html.P("robustness: not computed for this plan", style={"color": "#666"}),
        json_panel(view, "cd-json")])


def register(app, ctx) -> None:
    controls = [Input(c, "value") for c in _CONTROLS]

    @app.callback(Output("cd-focus", "children"), Output("cd-error", "children"),
                  Output("cd-error", "style"), Output("cd-focus-done", "data"), *controls)
    def _update_focus(deploy, target, bw, sram, native, emulate, dollars, tokens):
        view, err = attempt(plan_view, ctx.study, ctx.profile_dirs, deploy, target, dollars,
                            tokens, _whatif(bw, sram, native, emulate))
        style = {"color": "#b00020", "display": "block" if err else "none"}
        done = [deploy, target, bw, sram, native, emulate, dollars, tokens]
        return (_focus(view, deploy) if view else html.Div()), err or "", style, done

    # after the focused plan (cached by then): two cores do not plan it twice at once
    @app.callback(Output("cd-table", "children"), Input("cd-focus-done", "data"),
                  prevent_initial_call=True)
    def _update_table(done):
        deploy, target, bw, sram, native, emulate, dollars, tokens = done
        info, err = attempt(study_deployments, ctx.study, ctx.profile_dirs)
        rows = []
        for dep in (info or {}).get("deployments", []):
            name = dep["name"]
            view, err = attempt(plan_view, ctx.study, ctx.profile_dirs, name, target,
                                dollars if name == deploy else None, tokens,
                                _whatif(bw, sram, native, emulate))
            o = view["json"]["optimum"] if view else None
            obj = view["json"]["objective"] if view else ""
            rows.append({"profile": name, "train": o and o["train_format"],
                         "serve": o and (o["serve_format"] or "(as trained)"),
                         "N": o and f"{o['N']:.3g}", "D": o and f"{o['D']:.3g}",
                         "cost": cost_text(o["cost"], obj) if o else (err or "infeasible"),
                         "cost_json": json_text(o["cost"] if o else None)})
        return dash_table.DataTable(rows, [{"name": k, "id": k} for k in (
            "profile", "train", "serve", "N", "D", "cost", "cost_json")], id="cd-per-profile",
            sort_action="native", style_cell={"textAlign": "left"})
