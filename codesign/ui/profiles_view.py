"""Profiles tab: compare profiles side by side with every number's source; upload a
YAML profile to check it (bounded safe loader, written only to a temporary folder)."""
from __future__ import annotations

from dash import Input, Output, State, dash_table, dcc, html

from precsim.codesign.ui.widgets import attempt, error_box
from precsim.codesign.ui.compute import (check_uploaded_profile, compare_profiles,
                                         profile_names)
from precsim.simulator.io import MAX_YAML_BYTES
from precsim.simulator.profile_loader import load_profile


def layout(ctx) -> html.Div:
    names = profile_names(ctx.profile_dirs)
    chosen = [n for n in ("h100-sxm", "l4") if n in names] or names[:2]
    return html.Div([
        html.Label(["profiles to compare", dcc.Dropdown(names, chosen, multi=True,
                                                        id="prof-names")]),
        dcc.Upload(html.Button("upload a profile YAML to check"), id="prof-upload",
                   max_size=MAX_YAML_BYTES, accept=".yaml,.yml", style={"margin": "0.6em 0"}),
        html.Div(id="prof-check"),
        error_box(None, "prof-error"),
        dcc.Loading(html.Div(id="prof-table")),
    ])


def register(app, ctx) -> None:
    @app.callback(Output("prof-table", "children"), Output("prof-check", "children"),
                  Output("prof-error", "children"), Output("prof-error", "style"),
                  Input("prof-names", "value"), Input("prof-upload", "contents"),
                  State("prof-upload", "filename"))
    def _update(names, contents, filename):
        profiles, err = attempt(lambda: [load_profile(n, list(ctx.profile_dirs))
                                         for n in names or []])
        check = html.Div()
        if contents:
            entry, up_err = attempt(check_uploaded_profile, contents, filename or "upload",
                                    ctx.upload_dir.name)
            entry = entry or {"ok": False, "error": up_err, "file": filename}
            if entry["ok"]:
                profiles = (profiles or []) + [entry["profile"]]
                text = f"ok: {entry['file']} is a valid profile ({entry['name']})" + (
                    f"; warning: {entry['warning']}" if entry["warning"] else "")
            else:
                text = entry["error"]
            check = html.P(text, id="prof-check-result",
                           style={"color": "#1b5e20" if entry["ok"] else "#b00020"})
        table = compare_profiles(profiles or [])
        style = {"color": "#b00020", "display": "block" if err else "none"}
        sources = [html.Details([html.Summary(f"{p.name}: sources (the [tags] above)"),
                                 html.Ul([html.Li(str(src)) for src in
                                          p.raw().get("sources", [])])])
                   for p in profiles or []]
        return (html.Div([dash_table.DataTable(
            table.to_dict("records"), [{"name": c, "id": c} for c in table.columns],
            id="prof-compare", sort_action="native", filter_action="native", page_action="none",
            style_table={"overflowX": "auto"},
            style_cell={"textAlign": "left", "whiteSpace": "normal", "fontSize": "12px",
                        "maxWidth": "28em"}), *sources]), check, err or "", style)
