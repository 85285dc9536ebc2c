"""Aligned heatmaps row over row (one row per model or checkpoint: a "film strip"), as HTML, LaTeX, CSV and an
altair chart for PNG / SVG. Columns come from engine.compare.align.align_rows, so they line up across tokenizers.

Colour: red supports the target, blue the contrast (engine.present.render.colour); a row name carries its model
colour (engine.present.palette) as a swatch. A difference row (A − B) is scaled by its own max |value| and
reads: red = A leans more towards the target than B.
Every token text and name is untrusted: HTML- and LaTeX-escaped, CSV-guarded.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Optional, Sequence

import altair as alt
import pandas as pd

from engine.compare.align import RowAlignment
from engine.present import palette
from engine.present.render import _comment, _text_colour, colour, frame_csv, latex_escape, legend_html
from engine.present.text import visible

PER_BLOCK = 16  # columns per block in the PNG / SVG chart
BLOCK_CHARS = 90  # about this many characters of text per block in HTML and LaTeX


@dataclass(frozen=True)
class Strip:
    """What the renderers draw: rows over shared columns."""

    title: str
    columns: tuple[str, ...]  # [columns] the text each column covers (one '<bos>' for the shared BOS column)
    names: tuple[str, ...]  # [rows] row names (models, checkpoints, "A − B")
    values: tuple[tuple[float, ...], ...]  # [rows][columns] colour values in [-1, 1]
    raw: tuple[tuple[float, ...], ...]  # [rows][columns] summed relevance (difference row: the value difference)
    colours: tuple[str, ...]  # [rows] swatch colour; "" for a difference row
    notes: tuple[str, ...] = ()


def build_strip(al: RowAlignment, names: Sequence[str], scale: str = "row", diff: Optional[tuple[int, int]] = None,
                title: str = "", notes: Sequence[str] = (), series: bool = False) -> Strip:
    """A strip from a row alignment: one row per name (colour scale "row" or "shared", see RowAlignment.values),
    plus the difference row names[a] − names[b] when diff=(a, b). series: rows are one training series
    (palette.ordered shades) rather than separate models."""
    if len(names) != len(al.labels):
        raise ValueError(f"{len(al.labels)} aligned rows but {len(names)} names")
    values = al.values(scale)
    raw = [[g.sums[r] for g in al.groups] for r in range(len(names))]
    mapping = palette.ordered(list(names)) if series else palette.colours(list(names))
    rows, cols = list(names), [mapping[n] for n in names]
    if diff is not None:
        a, b = diff
        d = al.diff(a, b, scale)
        m = max((abs(x) for x, g in zip(d, al.groups) if not g.empty), default=0.0)
        values.append([x / m if m > 0 else 0.0 for x in d])
        raw.append(d)
        rows.append(f"{names[a]} − {names[b]}")
        cols.append("")
    clipped = tuple(tuple(max(-1.0, min(1.0, x)) for x in v) for v in values)  # a BOS sink saturates
    return Strip(title, tuple(g.label for g in al.groups), tuple(rows), clipped,
                 tuple(tuple(r) for r in raw), tuple(cols), tuple(notes))


def _blocks(columns: Sequence[str], chars: int) -> list[range]:
    """Consecutive column ranges of about `chars` characters each (a column is never split)."""
    out, start, width = [], 0, 0
    for i, c in enumerate(columns):
        w = len(visible(c)) + 1
        if i > start and width + w > chars:
            out.append(range(start, i))
            start, width = i, 0
        width += w
    out.append(range(start, len(columns)))
    return [b for b in out if len(b)]


# ---------------------------------------------------------------- HTML
def _swatch(c: str) -> str:
    if not c:
        return '<span style="display:inline-block;width:.8em"></span>'
    return (f'<span style="display:inline-block;width:.8em;height:.8em;border-radius:2px;'
            f'background:{html.escape(c)}"></span>')


def strip_fragment(strip: Strip, font_scale: float = 1.0, chars: int = BLOCK_CHARS) -> str:
    """Blocks of aligned rows as <table>s (inline styles only); one block per ~`chars` characters of text."""
    out = []
    for block in _blocks(strip.columns, chars):
        trs = []
        for r, name in enumerate(strip.names):
            cells = []
            for j in block:
                v = strip.values[r][j]
                tip = html.escape(f"{strip.names[r]} · {strip.columns[j]!r}  R = {strip.raw[r][j]:+.4f}", quote=True)
                cells.append(f'<td title="{tip}" style="background:rgb{colour(v)};color:{_text_colour(v)};'
                             f'padding:.1em .25em;white-space:pre;border:1px solid #fff;text-align:center">'
                             f'{html.escape(visible(strip.columns[j]))}</td>')
            style = "font-style:italic;" if not strip.colours[r] else ""
            trs.append(f'<tr><th style="text-align:right;padding-right:.5em;font-weight:600;white-space:nowrap;'
                       f'{style}font-family:system-ui,sans-serif">{_swatch(strip.colours[r])} '
                       f'{html.escape(name)}</th>{"".join(cells)}</tr>')
        out.append(f'<table style="border-collapse:collapse;margin:0 0 .8em 0">{"".join(trs)}</table>')
    size = f"{1.0 * font_scale:.2f}em"
    return (f'<div class="fl-heatmap fl-strip" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
            f'font-size:{size};overflow-x:auto">{"".join(out)}</div>')


def strip_html(strip: Strip, target: str, contrast: str, scale_name: str) -> str:
    """A standalone HTML page (no scripts, no external resources) with the strip, its legend and notes."""
    info = "".join(f"<p>{html.escape(n)}</p>" for n in strip.notes)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{html.escape(strip.title)}</title></head>"
            "<body style=\"font-family:system-ui,sans-serif;margin:2em\">"
            f"<h2>{html.escape(strip.title)}</h2>{info}{legend_html(target, contrast, scale_name)}"
            f"{strip_fragment(strip)}</body></html>\n")


# ---------------------------------------------------------------- LaTeX, CSV
def strip_latex(strip: Strip, chars: int = 60) -> str:
    """One tabular per block: a row name, then one \\colorbox per column (needs \\usepackage{xcolor})."""
    lines = [_comment(strip.title)] if strip.title else []
    lines += ["% Needs \\usepackage{xcolor}. Red supports the target, blue the contrast.",
              "{\\setlength{\\fboxsep}{1pt}\\setlength{\\tabcolsep}{1pt}\\ttfamily%"]
    for block in _blocks(strip.columns, chars):
        lines.append(f"\\begin{{tabular}}{{r{'c' * len(block)}}}")
        for r, name in enumerate(strip.names):
            cells = []
            for j in block:
                red, green, blue = colour(strip.values[r][j])
                cells.append(f"\\colorbox[RGB]{{{red},{green},{blue}}}{{\\strut {latex_escape(strip.columns[j])}}}")
            lines.append(f"{{\\rmfamily {latex_escape(name)}}} & " + " & ".join(cells) + " \\\\")
        lines.append("\\end{tabular}\\par\\medskip%")
    lines.append("}")
    return "\n".join(lines) + "\n"


def strip_frame(strip: Strip) -> pd.DataFrame:
    """One row per (row, column): row, column, text, relevance, colour_value."""
    return pd.DataFrame([{"row": name, "column": j, "text": strip.columns[j], "relevance": strip.raw[r][j],
                          "colour_value": strip.values[r][j]} for r, name in enumerate(strip.names)
                         for j in range(len(strip.columns))],
                        columns=["row", "column", "text", "relevance", "colour_value"])


def strip_csv(strip: Strip) -> str:
    return frame_csv(strip_frame(strip))


# ---------------------------------------------------------------- altair (PNG / SVG)
def strip_chart(strip: Strip, scale: float = 1.0, per_block: int = PER_BLOCK) -> alt.VConcatChart:
    """Blocks of `per_block` columns stacked vertically; each block: one line of cells per row, the row name on the
    left with its model colour as a swatch (the same palette as every comparison chart)."""
    from engine.present.charts import SCHEME

    models = [n for n, c in zip(strip.names, strip.colours) if c]
    swatch_scale = alt.Scale(domain=models, range=[c for c in strip.colours if c])
    blocks = []
    for start in range(0, max(len(strip.columns), 1), per_block):
        rows = [{"row": name, "col": j - start, "token": visible(strip.columns[j])[:10],
                 "value": max(-1.0, min(1.0, strip.values[r][j])), "R": strip.raw[r][j]}
                for r, name in enumerate(strip.names) for j in range(start, min(start + per_block, len(strip.columns)))]
        df = pd.DataFrame(rows, columns=["row", "col", "token", "value", "R"])
        y = alt.Y("row:N", sort=list(strip.names), scale=alt.Scale(domain=list(strip.names)), title=None,
                  axis=alt.Axis(labelFontSize=round(12 * scale), ticks=False, domain=False))
        base = alt.Chart(df).encode(x=alt.X("col:O", axis=None), y=alt.Y("row:N", sort=list(strip.names), axis=None),
                                    tooltip=["row", "token", alt.Tooltip("R:Q", format="+.4f")])
        cells = base.mark_rect(stroke="#ffffff", strokeWidth=2).encode(
            color=alt.Color("value:Q", scale=SCHEME, legend=alt.Legend(title="R (scaled)") if start == 0 else None))
        text = base.mark_text(font="monospace", fontSize=round(12 * scale)).encode(
            text="token:N", color=alt.condition("abs(datum.value) > 0.6", alt.value("white"), alt.value("#111")))
        swatches = alt.Chart(pd.DataFrame({"row": models})).mark_square(size=round(120 * scale), opacity=1).encode(
            y=y, color=alt.Color("row:N", scale=swatch_scale, legend=None))
        n_cols = min(per_block, len(strip.columns) - start) if strip.columns else 1
        grid = (cells + text).properties(width=round(n_cols * 62 * scale), height=round(len(strip.names) * 26 * scale))
        blocks.append(alt.hconcat(swatches.properties(width=round(12 * scale),
                                                      height=round(len(strip.names) * 26 * scale)),
                                  grid, spacing=2))
    return alt.vconcat(*blocks, spacing=round(14 * scale), title=strip.title or "").resolve_scale(
        color="independent").configure_view(stroke=None)
