"""Coarse views of long prompts (pure, no streamlit): token groups as a coloured heatmap, a minimap strip of the
whole prompt, and the ranked list of the strongest groups.

Colours as everywhere: red supports the target, blue the contrast. Group texts are untrusted prompt text and are
HTML-escaped here; Vega-Lite receives them only as data (drawn as text, never as markup).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Optional, Sequence

import altair as alt
import numpy as np
import pandas as pd

from engine.present.render import _text_colour, colour, normalise
from engine.present.text import visible
from engine.token_groups import Grouping, group_sum, snippet

MINIMAP_BINS = 200  # the minimap draws at most this many cells, whatever the prompt length


@dataclass(frozen=True)
class GroupView:
    """relevance: [groups] Σ R over the group's shown tokens; shown: [groups] any token shown; values: colours."""

    grouping: Grouping
    relevance: list[float]
    shown: list[bool]
    values: list[float]


def group_view(grouping: Grouping, relevance: Sequence[float], shown: Sequence[bool], norm: str = "max",
               special: Sequence[bool] = ()) -> GroupView:
    """Group sums of the shown tokens' relevance (hidden tokens count 0) and their colour values.

    The colour scale is set by the groups with an ordinary token (a group of special tokens only, such as BOS or
    an answer marker, is clipped to ±1 instead of washing out every other group)."""
    on = np.asarray(shown, dtype=bool)
    r = group_sum(np.where(on, np.asarray(relevance, dtype=np.float64), 0.0), grouping)
    vis = group_sum(on.astype(np.float64), grouping) > 0
    plain = group_sum(~np.asarray(special, dtype=bool), grouping) > 0 if len(special) else vis
    return GroupView(grouping, r.tolist(), vis.tolist(),
                     normalise(r, vis, norm, scale_by=plain if plain.any() else None))


def group_heatmap_fragment(view: GroupView, lo: int, hi: int, selected: Optional[int] = None,
                           font_scale: float = 1.0) -> str:
    """Groups lo..hi-1 as coloured runs of their own text (a group of one token looks like a token box); the
    selected group gets an outline. Inline styles only."""
    g = view.grouping
    out = []
    for i in range(lo, hi):
        if not view.shown[i]:
            continue
        s, e = g.spans[i]
        v, r = view.values[i], view.relevance[i]
        what = f"tokens {s}–{e - 1}" if e - s > 1 else f"token {s}"
        tip = html.escape(f"#{i} · {what} · R = {r:+.4f}", quote=True)
        ring = "outline:2px solid #222;outline-offset:1px;" if i == selected else ""
        text = html.escape(visible(g.texts[i]) if e - s == 1 else g.texts[i])
        out.append(f'<span title="{tip}" style="background:rgb({",".join(map(str, colour(v)))});'
                   f'color:{_text_colour(v)};'
                   f'white-space:pre-wrap;padding:.1em .1em;margin:0 1px 2px 0;border-radius:3px;line-height:1.9;'
                   f'{ring}">{text}</span>')
    size = f"{1.0 * font_scale:.2f}em"
    return (f'<div class="fl-heatmap fl-groups" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
            f'font-size:{size};line-height:1.9">{"".join(out)}</div>')


def minimap_frame(relevance: Sequence[float], shown: Sequence[bool], bins: int = MINIMAP_BINS,
                  special: Sequence[bool] = ()) -> pd.DataFrame:
    """One row per bin of consecutive tokens: start, end (exclusive), R (Σ over shown tokens), value (R / max|R|,
    the max over the bins' ordinary tokens, clipped to ±1: a sink token must not wash out the strip)."""
    r = np.where(np.asarray(shown, dtype=bool), np.asarray(relevance, dtype=np.float64), 0.0)
    n = r.size
    size = max(1, -(-n // bins))
    starts = np.arange(0, n, size)
    sums = np.add.reduceat(r, starts) if n else np.zeros(0)
    plain = np.where(np.asarray(special, dtype=bool), 0.0, r) if len(special) else r
    m = float(np.abs(np.add.reduceat(plain, starts) if n else plain).max(initial=0.0)) or 1.0
    return pd.DataFrame({"start": starts, "end": np.minimum(starts + size, n), "R": sums,
                         "value": (sums / m).clip(-1.0, 1.0)})


def minimap_chart(relevance: Sequence[float], shown: Sequence[bool], window: tuple[int, int],
                  scale: float = 1.0, bins: int = MINIMAP_BINS, special: Sequence[bool] = ()) -> alt.LayerChart:
    """The whole prompt as one strip of at most `bins` cells (token positions on x), the shown window framed.
    A click on a cell selects it (point selection "pick" on the field "start")."""
    from engine.present.charts import SCHEME

    df = minimap_frame(relevance, shown, bins, special)
    pick = alt.selection_point(name="pick", fields=["start"], on="click")
    x = alt.X("start:Q", title="token position", scale=alt.Scale(domain=[0, int(df["end"].max()) if len(df) else 1],
                                                                   nice=False))
    top, bottom = alt.value(0), alt.value(round(26 * scale))  # full height (no y field)
    cells = alt.Chart(df).mark_rect().encode(
        x=x, x2="end:Q", y=top, y2=bottom, color=alt.Color("value:Q", scale=SCHEME, legend=None),
        tooltip=[alt.Tooltip("start:Q", title="from token"), alt.Tooltip("end:Q", title="to (excl.)"),
                 alt.Tooltip("R:Q", format="+.4f")]).add_params(pick)
    frame = alt.Chart(pd.DataFrame({"start": [window[0]], "end": [window[1]]})).mark_rect(
        fill=None, stroke="#111", strokeWidth=2).encode(x="start:Q", x2="end:Q", y=top, y2=bottom)
    return alt.layer(cells, frame).properties(width=round(760 * scale), height=round(26 * scale))


def ranked_rows(view: GroupView, groups: Sequence[int], limit: int = 70) -> list[dict]:
    """One row per group: index, token range, R, a one-line context snippet."""
    g = view.grouping
    return [{"group": i, "tokens": f"{g.starts[i]}–{g.ends[i] - 1}", "R": view.relevance[i],
             "text": snippet(visible(g.texts[i]) if g.size(i) == 1 else g.texts[i], limit)} for i in groups]
