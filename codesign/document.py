"""The report's document model: one list of blocks rendered as Markdown and as HTML
(figures embedded as base64 PNG), so both renderings always say the same thing."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Document:
    blocks: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)   # file name -> PNG bytes

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def figure(self, name: str, fig, caption: str) -> None:
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        self.add_png(name, buf.getvalue(), caption)

    def add_png(self, name: str, png: bytes, caption: str) -> None:
        self.figures[name] = png
        self.blocks.append(("img", name, caption))

    def markdown(self) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "p":
                out.append(block[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                out.append(_md_table(block[1]))
            elif kind == "pre":
                out.append("```\n" + block[1].rstrip() + "\n```")
            elif kind == "img":
                out.append(f"![{block[2]}](figures/{block[1]})\n\n*{block[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1])
                            + "</ul>")
            elif kind == "table":
                body.append(block[1].to_html(index=False, border=0, classes="t",
                                             na_rep="-", escape=True))
            elif kind == "pre":
                body.append(f"<pre>{html.escape(block[1])}</pre>")
            elif kind == "img":
                data = base64.b64encode(self.figures[block[1]]).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(block[2])}" '
                            f'src="data:image/png;base64,{data}"><figcaption>'
                            f"{html.escape(block[2])}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
                 "padding:0 1em;line-height:1.45}table.t{border-collapse:collapse;"
                 "font-size:0.85em;margin:1em 0}table.t td,table.t th{border:1px solid #ccc;"
                 "padding:3px 7px;text-align:right}figure{margin:1.5em 0}img{max-width:100%}"
                 "figcaption{font-size:0.9em;color:#444}pre{background:#f6f6f6;padding:1em;"
                 "overflow-x:auto;font-size:0.85em}code{background:#f3f3f3}")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _md_table(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        return str(v).replace("|", "\\|")
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])
