"""Altair charts of attribution results (no streamlit) and their PNG / SVG export through vl-convert.

Colour convention everywhere: red supports the target (wrong token), blue supports the contrast (correct one).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from engine.graph.types import AttributionGraph, PrunedGraph
from engine.present import glossary
from engine.present.render import BLUE, RED
from engine.present.text import visible

SCHEME = alt.Scale(domain=[-1, 0, 1], range=["rgb(%d,%d,%d)" % BLUE, "#ffffff", "rgb(%d,%d,%d)" % RED],
                  interpolate="rgb")
SEGMENT_ORDER = ["instruction", "query", "answer", "special"]
# colour legends in words: -1 is the right answer (blue), +1 the wrong one (red); constant text, no token strings
WORDS_LEGEND = dict(title="supports", values=[-1, 0, 1],
                    labelExpr="datum.value > 0 ? 'wrong answer' : datum.value < 0 ? 'right answer' : 'neither'")
SIDES = alt.Scale(domain=["wrong answer", "right answer"], range=["rgb(%d,%d,%d)" % RED, "rgb(%d,%d,%d)" % BLUE])


def _labels(tokens: Sequence[str]) -> list[str]:
    """Unique axis labels "position token" (tokens repeat, positions do not)."""
    return [f"{i} {visible(t)}" for i, t in enumerate(tokens)]


def token_chart(tokens: Sequence[str], values: Sequence[float], relevance: Sequence[float], shown: Sequence[bool],
                per_row: int = 16, scale: float = 1.0) -> alt.Chart:
    """The token heatmap as a grid of coloured cells (for PNG / SVG export)."""
    if sum(map(bool, shown)) > TOKEN_CELLS:  # runs of tokens: R summed, colour re-scaled over the runs
        labels, sums, spans = _binned(tokens, np.asarray([relevance], dtype=np.float64), shown, TOKEN_CELLS)
        m = float(np.abs(sums).max(initial=0.0)) or 1.0
        rows = [dict(pos=f"{a}–{b}", token=lab, value=float(r) / m, R=float(r))
                for lab, r, (a, b) in zip(labels, sums[0], spans)]
    else:
        rows = [dict(pos=i, token=visible(t), value=v, R=r) for i, (t, v, r, on)
                in enumerate(zip(tokens, values, relevance, shown)) if on]
    df = pd.DataFrame(rows, columns=["pos", "token", "value", "R"])
    df["col"] = np.arange(len(df)) % per_row
    df["row"] = np.arange(len(df)) // per_row
    n_rows = int(df["row"].max()) + 1 if len(df) else 1
    base = alt.Chart(df).encode(
        x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None),
        tooltip=["pos", "token", alt.Tooltip("R:Q", format="+.4f")])
    cells = base.mark_rect(stroke="#ffffff", strokeWidth=2).encode(
        color=alt.Color("value:Q", scale=SCHEME, legend=alt.Legend(**WORDS_LEGEND)))
    text = base.mark_text(font="monospace", fontSize=round(12 * scale)).encode(
        text="token:N", color=alt.condition("abs(datum.value) > 0.6", alt.value("white"), alt.value("#111")))
    return (cells + text).properties(width=round(min(max(len(df), 1), per_row) * 62 * scale),
                                     height=round(n_rows * 26 * scale))


LAYER_COLUMNS = 120  # above this many shown tokens the layers chart sums runs of tokens into this many columns
TOKEN_CELLS = 1024  # above this many shown tokens the exported token chart sums runs of tokens into cells


def _binned(tokens: Sequence[str], matrix: np.ndarray, shown: Sequence[bool], limit: int
            ) -> tuple[list[str], np.ndarray, list[tuple[int, int]]]:
    """Columns of the shown tokens, or, when there are more than `limit`, runs of consecutive positions summed.

    matrix: [rows, tokens]. Returns (unique column labels, [rows, columns] values, (first, last) position per
    column). Hidden tokens count 0 inside a run. Vega-Lite gets at most `limit` columns whatever the prompt
    length (a 10k-token ordinal axis overflowed the browser's call stack)."""
    keep = [i for i, on in enumerate(shown) if on]
    if len(keep) <= limit:
        labels = _labels(tokens)
        return [labels[i] for i in keep], matrix[:, keep], [(i, i) for i in keep]
    size = -(-len(tokens) // limit)
    starts = list(range(0, len(tokens), size))
    masked = np.where(np.asarray(shown, dtype=bool)[None, :], matrix, 0.0)
    spans = [(s, min(s + size, len(tokens)) - 1) for s in starts]
    return [f"{a}–{b}" for a, b in spans], np.add.reduceat(masked, starts, axis=1), spans


def layer_chart(tokens: Sequence[str], layer_relevance: Sequence[Sequence[float]], shown: Sequence[bool],
                scale: float = 1.0, limit: int = LAYER_COLUMNS) -> alt.Chart:
    """Layers x tokens heatmap of residual-stream relevance; row 0 is the embedding. Colour: R / max|R| shown.
    Long prompts: columns are runs of tokens (R summed), see `_binned`."""
    lr = np.asarray(layer_relevance, dtype=np.float64)  # [layers + 1, tokens]
    labels, sub, spans = _binned(tokens, lr, shown, limit)  # sub: [layers + 1, columns]
    m = float(np.abs(sub).max(initial=0.0)) or 1.0
    df = pd.DataFrame([dict(layer=layer, token=labels[c], R=float(sub[layer, c]), value=float(sub[layer, c]) / m)
                       for layer in range(lr.shape[0]) for c in range(len(labels))],
                      columns=["layer", "token", "R", "value"])
    df["stage"] = df["layer"].map(lambda layer: "embedding" if layer == 0 else f"layer {layer - 1}")
    order = [f"layer {layer - 1}" for layer in range(lr.shape[0] - 1, 0, -1)] + ["embedding"]
    binned = any(a != b for a, b in spans)
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("token:O", sort=labels, title="tokens (runs summed)" if binned else None,
                axis=alt.Axis(labelAngle=-60, labelLimit=120, labelOverlap=True)),
        y=alt.Y("stage:O", sort=order, title="residual stream after"),
        color=alt.Color("value:Q", scale=SCHEME, legend=alt.Legend(**WORDS_LEGEND)),
        tooltip=["stage", "token", alt.Tooltip("R:Q", format="+.4f")],
    ).properties(width=round((640 if binned else max(360, min(len(labels), 100) * 26)) * scale),
                 height=round(max(140, 30 * lr.shape[0]) * scale))


def segment_chart(segments: Mapping[str, float], scale: float = 1.0) -> alt.Chart:
    """Bars of normalised relevance per segment (Instruction / Query / Answer / Special)."""
    df = pd.DataFrame([dict(segment=s.capitalize(), R=float(segments.get(s, 0.0)),
                            supports="wrong answer" if segments.get(s, 0.0) > 0 else "right answer")
                       for s in SEGMENT_ORDER])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("segment:N", sort=[s.capitalize() for s in SEGMENT_ORDER], title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=0)),  # every bar keeps its name
        x=alt.X("R:Q", title="sum of R / max |R| (non-special tokens)"),
        color=alt.Color("supports:N", scale=SIDES, legend=alt.Legend(title="supports")),
        tooltip=["segment", alt.Tooltip("R:Q", format="+.3f")],
    ).properties(width=round(320 * scale), height=round(150 * scale))


def graph_chart(graph: AttributionGraph, pruned: PrunedGraph, scale: float = 1.0) -> alt.LayerChart:
    """A static version of the attribution graph (for PNG export): same layout and colours as the pyvis view."""
    stages = pruned.shown_stages()
    row = {s: i for i, s in enumerate(stages)}
    rel = graph.node_relevance
    nodes = pd.DataFrame([dict(x=t, y=row[s], stage=graph.stages[s].label, token=visible(graph.tokens[t]),
                               R=float(rel[s, t])) for s, t in pruned.visible()],
                         columns=["x", "y", "stage", "token", "R"])
    rmax = float(nodes["R"].abs().max()) if len(nodes) else 1.0
    nodes["value"] = nodes["R"] / (rmax or 1.0)
    nodes["size"] = 30 + 500 * nodes["value"].abs()
    edges = [dict(x=int(a), y=row[tr.src_stage], x2=int(b), y2=row[tr.dst_stage], w=float(w))
             for tr, m in zip(graph.transitions, pruned.edge_masks) if m.any() and tr.src_stage in row
             for a, b, w in zip(tr.src_tok[m].tolist(), tr.dst_tok[m].tolist(), tr.weight[m].tolist())]
    edges = pd.DataFrame(edges, columns=["x", "y", "x2", "y2", "w"])
    wmax = float(edges["w"].abs().max()) if len(edges) else 1.0
    edges["width"] = 0.5 + 6 * edges["w"].abs() / (wmax or 1.0)
    edges["sign"] = np.where(edges["w"] > 0, "wrong answer", "right answer")
    xs = alt.X("x:Q", axis=alt.Axis(values=list(range(graph.n_tokens)), labelExpr="tokenLabels[datum.value]",
                                     title=None, labelAngle=-60, grid=False), scale=alt.Scale(nice=False, padding=20))
    ys = alt.Y("y:Q", axis=alt.Axis(values=list(range(len(stages))), labelExpr="stageLabels[datum.value]", title=None,
                                     grid=False), scale=alt.Scale(nice=False, padding=20))
    lines = alt.Chart(edges).mark_rule(opacity=0.6).encode(
        x=xs, y=ys, x2="x2:Q", y2="y2:Q", strokeWidth=alt.StrokeWidth("width:Q", scale=None, legend=None),
        color=alt.Color("sign:N", scale=SIDES, title="supports"))
    dots = alt.Chart(nodes).mark_circle(opacity=1, stroke="#555", strokeWidth=0.5).encode(
        x=xs, y=ys, size=alt.Size("size:Q", scale=None, legend=None),
        color=alt.Color("value:Q", scale=SCHEME, legend=None),
        tooltip=["stage", "token", alt.Tooltip("R:Q", format="+.4f")])
    width = max(640, 40 * graph.n_tokens)
    height = max(200, min(90 * len(stages), round(0.55 * width)))  # wider than tall: fits a 16:9 slide
    chart = alt.layer(lines, dots).properties(width=round(width * scale), height=round(height * scale))
    return chart.add_params(
        alt.param(name="tokenLabels", value=[visible(t)[:12] for t in graph.tokens]),
        alt.param(name="stageLabels", value=[glossary.stage_label(graph.stages[s].name) for s in stages]))


def metrics_chart(per_stage: pd.DataFrame, columns: Sequence[str] = ("nodes", "edges"),
                  scale: float = 1.0) -> alt.Chart:
    """One line per metric column over the selected stages."""
    df = per_stage.melt(id_vars=["stage", "stage_index"], value_vars=list(columns), var_name="metric")
    df["metric"] = df["metric"].map(glossary.title)  # plain names in the legend and tooltips
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("stage:N", sort=list(per_stage["stage"]), title=None),
        y=alt.Y("value:Q", title=None), color=alt.Color("metric:N"), tooltip=["stage", "metric", "value"],
    ).properties(width=round(420 * scale), height=round(200 * scale))


def to_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart.to_dict(), scale=scale)


def to_svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_dict())

