"""Pure renderers (no streamlit): token heatmaps as HTML / LaTeX / CSV, attribution graphs as pyvis HTML.

Every string that comes from a user or a tokenizer (prompts, token texts, model names) is untrusted: it is
HTML-escaped, LaTeX-escaped, or embedded as script-safe JSON, never pasted into markup as is.
Colours: red supports the target (the wrong token), blue supports the contrast (the correct one).
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from engine.graph.types import AttributionGraph, PrunedGraph
from engine.present.text import csv_text, frame_csv, visible  # noqa: F401 (frame_csv: pages export through render)

RED = (214, 39, 40)  # supports the target
BLUE = (31, 119, 180)  # supports the contrast
NORMS = {"max": "max |R| over shown tokens", "sign": "per sign (max of each sign)",
         "none": "none (raw R, clipped to ±1)"}


# ---------------------------------------------------------------- heatmap values and colours
def shown_mask(n: int, special: Sequence[bool], hide_first: bool, hide_special: bool) -> list[bool]:
    """[tokens] True for tokens drawn in the heatmap."""
    special = list(special) or [False] * n
    return [not ((hide_first and i == 0) or (hide_special and special[i])) for i in range(n)]


def normalise(relevance: Sequence[float], shown: Sequence[bool], norm: str = "max",
              scale_by: Optional[Sequence[bool]] = None) -> list[float]:
    """[tokens] colour values in [-1, 1]; hidden tokens get 0. `scale_by` (default: `shown`) names the entries the
    maxima below are taken over; entries beyond them are clipped to ±1 (e.g. a sink token that would wash out the rest).

    "max": R / max|R| over shown tokens. "sign": R > 0 divided by the largest positive R, R < 0 by the largest
    |negative| R (each sign uses its full colour range). "none": R clipped to [-1, 1] (raw units of the objective).
    """
    r = np.asarray(relevance, dtype=np.float64)
    on = np.asarray(shown, dtype=bool)
    vis = np.where(on, r, 0.0)
    ref = vis if scale_by is None else np.where(on & np.asarray(scale_by, dtype=bool), r, 0.0)
    if norm == "max":
        m = np.abs(ref).max(initial=0.0)
        out = (vis / m).clip(-1.0, 1.0) if m > 0 else vis * 0
    elif norm == "sign":
        pos, neg = ref.clip(min=0).max(initial=0.0), (-ref).clip(min=0).max(initial=0.0)
        out = np.where(vis > 0, vis / (pos or 1.0), np.where(vis < 0, vis / (neg or 1.0), 0.0)).clip(-1.0, 1.0)
    elif norm == "none":
        out = vis.clip(-1.0, 1.0)
    else:
        raise ValueError(f"unknown normalisation {norm!r}; use one of {', '.join(NORMS)}")
    return [float(v) for v in out]


def colour(value: float) -> tuple[int, int, int]:
    """White blended towards red (value > 0) or blue (value < 0) by |value| in [0, 1]."""
    a = min(abs(float(value)), 1.0)
    base = RED if value > 0 else BLUE
    return tuple(round(255 + (c - 255) * a) for c in base)


def _text_colour(value: float) -> str:
    return "#ffffff" if abs(value) > 0.6 else "#111111"


# ---------------------------------------------------------------- HTML
def legend_html(target: str, contrast: Optional[str], norm: str) -> str:
    """A colour bar: blue = supports the contrast, red = supports the target."""
    t, c = html.escape(repr(target)), html.escape(repr(contrast) if contrast is not None else "the rest")
    bar = ("background:linear-gradient(to right,rgb(%d,%d,%d),#fff,rgb(%d,%d,%d));" % (BLUE + RED))
    return (
        '<div class="fl-legend" style="display:flex;align-items:center;gap:.6em;font-size:.85em;margin:.4em 0">'
        f'<span>supports contrast {c}</span>'
        f'<span style="display:inline-block;width:12em;height:.9em;border:1px solid #ccc;{bar}"></span>'
        f'<span>supports target {t}</span>'
        f'<span style="color:#666">· colour scale: {html.escape(NORMS.get(norm, norm))}</span></div>'
    )


def heatmap_fragment(tokens: Sequence[str], values: Sequence[float], relevance: Sequence[float],
                     shown: Sequence[bool], font_scale: float = 1.0) -> str:
    """A <div> of coloured token boxes (inline styles only, so it survives HTML sanitisers)."""
    spans = []
    for i, (tok, v, r, on) in enumerate(zip(tokens, values, relevance, shown)):
        if not on:
            continue
        rgb = "rgb(%d,%d,%d)" % colour(v)
        tip = html.escape(f"#{i} {tok!r}  R = {r:+.4f}", quote=True)
        text = html.escape(visible(tok))
        spans.append(
            f'<span title="{tip}" style="background:{rgb};color:{_text_colour(v)};white-space:pre;'
            f'padding:.1em .05em;margin:0 1px 2px 0;border-radius:3px;display:inline-block;'
            f'line-height:1.5">{text}</span>'
        )
        if "\n" in tok:
            spans.append("<br>")
    size = f"{1.05 * font_scale:.2f}em"
    return (f'<div class="fl-heatmap" style="font-family:ui-monospace,Menlo,Consolas,monospace;font-size:{size};'
            f'line-height:1.9">{"".join(spans)}</div>')


def heatmap_html(tokens: Sequence[str], values: Sequence[float], relevance: Sequence[float], shown: Sequence[bool],
                 *, title: str, target: str, contrast: Optional[str], norm: str, notes: Sequence[str] = ()) -> str:
    """A standalone HTML page (no scripts, no external resources) with the heatmap and its legend."""
    info = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title></head>"
        "<body style=\"font-family:system-ui,sans-serif;margin:2em;max-width:70em\">"
        f"<h2>{html.escape(title)}</h2>{info}{legend_html(target, contrast, norm)}"
        f"{heatmap_fragment(tokens, values, relevance, shown)}</body></html>\n"
    )


# ---------------------------------------------------------------- LaTeX
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "_": r"\_",
          "%": r"\%", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}", '"': r"\textquotedbl{}", " ": r"\ "}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX argument: specials escaped, spaces kept (control spaces), controls as \\n etc."""
    return "".join(_LATEX.get(ch, ch) for ch in visible(text))


def _comment(text: str) -> str:
    """One LaTeX comment line: a newline in untrusted text must not end the comment."""
    return "% " + re.sub(r"[\r\n\x0b\x0c\x85\u2028\u2029]+", " ", text)


def heatmap_latex(tokens: Sequence[str], values: Sequence[float], shown: Sequence[bool], *, title: str = "") -> str:
    """One \\colorbox per shown token, ready to paste into a paper (needs \\usepackage{xcolor})."""
    lines = [_comment(title)] if title else []
    lines += ["% Needs \\usepackage{xcolor}. Red supports the target, blue the contrast.",
              "{\\setlength{\\fboxsep}{1pt}\\ttfamily%"]
    for tok, v, on in zip(tokens, values, shown):
        if on:
            r, g, b = colour(v)
            lines.append(f"\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut {latex_escape(tok)}}}\\allowbreak%")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CSV
def heatmap_csv(tokens: Sequence[str], token_ids: Sequence[int], relevance: Sequence[float],
                values: Sequence[float], shown: Sequence[bool], segments: Optional[Sequence[str]] = None,
                special: Optional[Sequence[bool]] = None) -> str:
    """position, token, token_id, relevance, colour_value, segment, special, shown (one row per token)."""
    n = len(tokens)
    segments = list(segments) if segments else [""] * n
    special = list(special) if special else [False] * n
    header = ["position", "token", "token_id", "relevance", "colour_value", "segment", "special", "shown"]
    return csv_text([header] + [[i, tokens[i], int(token_ids[i]), float(relevance[i]), round(values[i], 6), segments[i],
                                 int(bool(special[i])), int(bool(shown[i]))] for i in range(n)])


# ---------------------------------------------------------------- attribution graph (pyvis)
TOOLTIP_CSS = (".vis-tooltip{position:absolute;visibility:hidden;padding:5px 8px;white-space:pre;font:13px "
                "ui-monospace,monospace;color:#111;background:#fffbe6;border:1px solid #999;border-radius:3px;"
                "box-shadow:2px 2px 6px rgba(0,0,0,.2);pointer-events:none;z-index:5}")


def vis_js_path() -> Path:
    """vis-network as shipped inside the pyvis package (no download: everything works offline)."""
    import pyvis

    return Path(pyvis.__file__).parent / "lib" / "vis-9.1.2" / "vis-network.min.js"


@lru_cache(maxsize=1)
def _vis_js() -> str:
    return vis_js_path().read_text(encoding="utf-8")





def script_json(obj) -> str:
    """JSON that is safe inside a <script> element (no '</script>', no HTML comment openers)."""
    return (json.dumps(obj, ensure_ascii=False).replace("&", "\\u0026").replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def graph_network(graph: AttributionGraph, pruned: PrunedGraph, *, dx: int = 90, dy: int = 110,
                  selected: Optional[tuple[int, int]] = None):
    """A pyvis Network of what `pruned` shows: tokens as columns, stages as rows (embedding at the bottom).

    Fixed x/y positions, physics off; node size by |R|, edge width by |w|, colour by sign (red +, blue -).
    Only tokens with a visible node get a column (in prompt order), and rows are spread so that the
    picture keeps a readable aspect ratio whether there are 3 rows or 40.
    """
    from pyvis.network import Network

    net = Network(directed=True)
    stages = pruned.shown_stages()
    row = {s: i for i, s in enumerate(stages)}
    rel = graph.node_relevance
    vis_nodes = pruned.visible()
    rmax = max((abs(float(rel[s, t])) for s, t in vis_nodes), default=0.0) or 1.0
    top = len(stages) - 1
    cols = {int(t): i for i, t in enumerate(sorted({int(t) for _, t in vis_nodes}))}
    dy = max(dy, int(0.45 * dx * max(1, len(cols)) / max(1, top)))  # keep the drawing from going flat
    for s in stages:  # row labels left of the first token
        net.add_node(f"row:{s}", label=graph.stages[s].label, x=-dx * 1.6, y=(top - row[s]) * dy, shape="text",
                     physics=False, font={"size": 14, "color": "#444", "vadjust": 0}, fixed=True)
    # the top node at the last position is where the model speaks: it is labelled with the predicted word
    said = (stages[-1], graph.n_tokens - 1) if graph.target else None
    for s, t in vis_nodes:
        r = float(rel[s, t])
        a = abs(r) / rmax
        tok = graph.tokens[t]
        full = visible(tok)
        extra = {}
        if (s, int(t)) == said:
            full = f"says '{visible(graph.target)}'"
            extra = dict(keep=True, font=_LABEL_FONT | {"size": 15, "color": "#000", "background": "#fff"})
        net.add_node(
            f"{s}:{t}", label=full[:14], x=cols[int(t)] * dx, y=(top - row[s]) * dy, physics=False,
            fixed=True,
            size=6 + 22 * a ** 0.5, shape="dot", color=_hex(colour(r / rmax if a > 0.02 else 0.02 * np.sign(r))),
            borderWidth=3 if selected == (s, int(t)) else 1,
            title=f"{graph.stages[s].label} · {graph.where(int(t))} {tok!r}\nR = {r:+.4f}"
                  + (f"\nthe model says {graph.target!r}" if (s, int(t)) == said else ""),
            full=full, **({"font": _LABEL_FONT} | extra),
        )
    kept = [(tr, m) for tr, m in zip(graph.transitions, pruned.edge_masks) if m.any()]
    wmax = max((float(np.abs(tr.weight[m]).max()) for tr, m in kept), default=0.0) or 1.0
    for tr, m in kept:
        for a, b, w in zip(tr.src_tok[m].tolist(), tr.dst_tok[m].tolist(), tr.weight[m].tolist()):
            net.add_edge(f"{tr.src_stage}:{a}", f"{tr.dst_stage}:{b}", width=0.5 + 7 * abs(w) / wmax,
                         color=_hex(RED if w > 0 else BLUE), title=f"w = {w:+.4f}", arrows="to",
                         smooth=False, physics=False)
    net.toggle_physics(False)
    return net


def graph_data(graph: AttributionGraph, pruned: PrunedGraph, *, selected: Optional[tuple[int, int]] = None) -> dict:
    """What vis-network draws: {"nodes": [...], "edges": [...], "options": {...}} (plain JSON types).

    Token strings only ever reach vis-network as node labels (drawn on a canvas) and tooltip titles, which
    vis-network 9 shows as plain text, never as HTML."""
    net = graph_network(graph, pruned, selected=selected)
    nodes = [_compact(n, _NODE_DEFAULTS) for n in net.nodes]
    edges = [_compact(e, _EDGE_DEFAULTS) for e in net.edges]
    options = {"physics": {"enabled": False}, "interaction": {"hover": True, "tooltipDelay": 80, "dragNodes": False},
               "nodes": _NODE_DEFAULTS,
               "edges": {**_EDGE_DEFAULTS, "arrows": {"to": {"enabled": True, "scaleFactor": 0.4}},
                         "color": {"opacity": 0.7}},
               "layout": {"improvedLayout": False}}
    return {"nodes": nodes, "edges": edges, "options": options}


# what every node / edge of `graph_network` shares, sent once as vis options instead of once per item (a
# 500-token graph has thousands of edges: this halves what a re-draw sends)
_LABEL_FONT = {"size": 12, "color": "#222", "vadjust": -4, "background": "rgba(255,255,255,0.85)"}  # legible on edges
_NODE_DEFAULTS = {"shape": "dot", "physics": False, "fixed": True, "borderWidth": 1, "font": _LABEL_FONT}
_EDGE_DEFAULTS = {"arrows": "to", "smooth": False, "physics": False}


def _compact(item: dict, defaults: dict) -> dict:
    """The item without None values and without values equal to the shared defaults; floats to 2 decimals."""
    out = {}
    for k, v in item.items():
        if v is None or (k in defaults and defaults[k] == v):
            continue
        out[k] = round(v, 2) if isinstance(v, float) else v
    return out


def graph_html(graph: AttributionGraph, pruned: PrunedGraph, *, title: str = "", height: int = 640,
               selected: Optional[tuple[int, int]] = None, intro_html: str = "") -> str:
    """Standalone HTML page of the pyvis graph; vis-network inlined, data embedded as script-safe JSON.
    intro_html: trusted, already escaped HTML shown under the title (e.g. engine.present.summary.to_html)."""
    data = script_json(graph_data(graph, pruned, selected=selected))
    head = (f"<h3 style=\"margin:.2em 0\">{html.escape(title)}</h3>" if title else "") + intro_html
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
        f"{html.escape(title or 'Attribution graph')}</title><style>{TOOLTIP_CSS}"
        "body{margin:0;" + ("" if title else "overflow:hidden;")
        + "font-family:system-ui,sans-serif}#fl-graph{width:100%;height:"
        + str(int(height)) + "px;box-sizing:border-box;border:1px solid #e5e5e5}</style>"
        f"<script>{_vis_js()}</script></head><body>{head}<div id=\"fl-graph\"></div>"
        f"<script>const D = {data};\n"
        "const net = new vis.Network(document.getElementById('fl-graph'),"
        " {nodes: new vis.DataSet(D.nodes), edges: new vis.DataSet(D.edges)}, D.options);"
        "net.once('afterDrawing', () => net.fit());</script></body></html>\n"
    )
