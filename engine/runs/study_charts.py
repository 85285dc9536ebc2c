"""Altair charts of a study's figures (engine.runs.study_figures tables in, charts out; no Streamlit).

Colours keep their one meaning: red / blue only for relevance towards the wrong / right token; models and
checkpoints keep their fixed palette (engine.present.palette); outcomes get their own neutral set.
"""
from __future__ import annotations

from typing import Any, Optional

import altair as alt
import pandas as pd

from engine.present import palette
from engine.present.charts import SEGMENT_ORDER

OUTCOME_SCALE = alt.Scale(domain=["fixed", "by input", "by graph", "no clue"],
                          range=["#d9d9d9", "#44AA99", "#DDCC77", "#555555"])
PATTERN_SCALE = alt.Scale(domain=["URT", "OIT", "URT+OIT", "none"], range=["#AA4499", "#999933", "#CC79A7", "#d9d9d9"])


def headline_chart(h: pd.DataFrame, scale: float = 1.0) -> alt.VConcatChart:
    """The meeting's question: per size and per checkpoint, how the reference's failures end there (with counts).
    Compact (15 px a bar) so both panels fit the first screen of a 1280 x 720 projector."""
    groups = [(g, t) for g, t in (("size", "per model size"), ("checkpoint", "per checkpoint"))
              if not h[h["group"] == g].empty]
    parts = []
    for i, (group, title) in enumerate(groups):
        d = h[h["group"] == group]
        order = list(dict.fromkeys(d.sort_values("order")["model"]))
        d = d.assign(rank=d["outcome"].map({"fixed": 3, "by input": 0, "by graph": 1, "no clue": 2}))
        last = i == len(groups) - 1
        x = alt.X("count:Q", stack="normalize", axis=alt.Axis(format="%", title="share of the reference's failures"
                                                             if last else None, labels=last, ticks=last))
        axis = alt.Axis(labelLimit=0, labelOverlap=False, labelFontSize=round(11 * scale), ticks=False)
        base = alt.Chart(d).encode(y=alt.Y("model:N", sort=order, title=None, axis=axis), x=x,
                                   order=alt.Order("rank:Q"))
        bars = base.mark_bar().encode(color=alt.Color("outcome:N", scale=OUTCOME_SCALE, title="outcome"),
                                      tooltip=["model", "outcome", "count", alt.Tooltip("share:Q", format=".0%"),
                                               "of", alt.Tooltip("on_heuristic:Q", title="on heuristic")])
        text = base.transform_filter("datum.share >= 0.04").mark_text(dx=-3, align="right",
                                                                       fontSize=round(10 * scale)).encode(
            x=alt.X("count:Q", stack="normalize", bandPosition=1), text="count:Q",
            color=alt.condition("datum.outcome == 'no clue'", alt.value("white"), alt.value("#111")))
        parts.append((bars + text).properties(title=alt.TitleParams(title, anchor="start", fontSize=round(12 * scale)),
                                              width=round(520 * scale), height=round(15 * len(order) * scale)))
    return alt.vconcat(*parts, spacing=6).resolve_scale(color="shared")


def _stack(df: pd.DataFrame, column: str, sc: alt.Scale, title: str, scale: float) -> alt.Chart:
    d = df.assign(label=df["family"] + df["paper"].map(lambda p: f" ({p})" if p else ""))
    return alt.Chart(d).mark_bar().encode(
        y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=0)),
        x=alt.X("count:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
        color=alt.Color(f"{column}:N", scale=sc, title=column),
        tooltip=["family", column, "count", "of", alt.Tooltip("share:Q", format=".0%"), "on_check", "on_person",
                 "on_heuristic"],
    ).properties(title=title, width=round(480 * scale), height=round(26 * d["label"].nunique() * scale))


def fig1_chart(outcomes: pd.DataFrame, patterns: pd.DataFrame, scale: float = 1.0) -> alt.VConcatChart:
    return alt.vconcat(
        _stack(outcomes, "outcome", OUTCOME_SCALE, "Outcome of each failure", scale),
        _stack(patterns, "pattern", PATTERN_SCALE, "Pattern of the failures explained by input", scale),
    ).resolve_scale(color="independent")


def fig4_chart(sc: pd.DataFrame, scale: float = 1.0) -> alt.LayerChart:
    models = list(dict.fromkeys(sc.sort_values("order")["model"]))
    lo = float(min(sc["delta_ref"].min(), sc["delta"].min(), 0))
    hi = float(max(sc["delta_ref"].max(), sc["delta"].max(), 0))
    line = alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(strokeDash=[5, 4], color="#333").encode(
        x="x:Q", y="y:Q")
    dots = alt.Chart(sc).mark_circle(size=38, opacity=0.75).encode(
        x=alt.X("delta_ref:Q", title="Δℓ in the reference model"),
        y=alt.Y("delta:Q", title="Δℓ in the larger model (same token pair)"),
        color=alt.Color("model:N", scale=palette.scale(models), title="model"),
        tooltip=["case_id", "family", "model", alt.Tooltip("delta_ref:Q", format="+.2f"),
                 alt.Tooltip("delta:Q", format="+.2f")])
    return (line + dots).properties(width=round(460 * scale), height=round(360 * scale))


def _segment_bars(seg: pd.DataFrame, series: bool, scale: float) -> alt.Chart:
    d = seg[seg["segment"].isin(SEGMENT_ORDER)]
    models = list(dict.fromkeys(d.sort_values("order")["model"]))
    return alt.Chart(d).mark_bar().encode(
        x=alt.X("segment:N", sort=SEGMENT_ORDER, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("model:N", sort=models),
        y=alt.Y("mean:Q", title="mean relevance (normalised per case)"),
        color=alt.Color("model:N", sort=models, scale=palette.scale(models, series=series), title="model"),
        tooltip=["model", "segment", alt.Tooltip("mean:Q", format="+.3f"), alt.Tooltip("sem:Q", format=".3f"), "n"],
    ).properties(width=round(520 * scale), height=round(280 * scale))


def fig5_chart(seg: pd.DataFrame, scale: float = 1.0) -> alt.Chart:
    return _segment_bars(seg, False, scale)


def fig6_chart(cases: pd.DataFrame, means: pd.DataFrame, scale: float = 1.0) -> alt.LayerChart:
    order = list(means.sort_values("order")["checkpoint"])
    x = alt.X("checkpoint:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30))
    thin = alt.Chart(cases).mark_line(opacity=0.12, color="#777").encode(x=x, y="delta:Q", detail="case_id:N")
    band = alt.Chart(means.assign(lo=means["mean"] - means["sem"], hi=means["mean"] + means["sem"])).mark_area(
        opacity=0.25, color="#b35806").encode(x=x, y="lo:Q", y2="hi:Q")
    line = alt.Chart(means).mark_line(point=True, color="#7f3b08", strokeWidth=3).encode(
        x=x, y=alt.Y("mean:Q", title="Δℓ (thin: cases; thick: mean ± s.e.m.)"),
        tooltip=["checkpoint", alt.Tooltip("mean:Q", format="+.2f"), "n"])
    zero = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(strokeDash=[2, 3], color="#333").encode(y="y:Q")
    return (thin + band + line + zero).properties(width=round(560 * scale), height=round(300 * scale))


def fig7_chart(seg: pd.DataFrame, scale: float = 1.0) -> alt.Chart:
    d = seg[seg["segment"].isin(SEGMENT_ORDER)]
    order = list(dict.fromkeys(d.sort_values("order")["model"]))
    return alt.Chart(d).mark_line(point=True).encode(
        x=alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("mean:Q", title="mean relevance (normalised per case)"),
        strokeDash=alt.StrokeDash("segment:N", sort=SEGMENT_ORDER, title="segment"),
        color=alt.value("#7f3b08"),
        tooltip=["model", "segment", alt.Tooltip("mean:Q", format="+.3f"), "n"],
    ).properties(width=round(560 * scale), height=round(300 * scale))


def special_chart(sp: pd.DataFrame, scale: float = 1.0) -> alt.Chart:
    models = list(sp.sort_values("order")["model"])
    return alt.Chart(sp).mark_bar().encode(
        y=alt.Y("model:N", sort=models, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=0)),
        x=alt.X("special_share:Q", title="share of |relevance| on special tokens (BOS, template)",
                axis=alt.Axis(format="%")),
        color=alt.Color("model:N", scale=palette.scale(models), legend=None),
        tooltip=["model", alt.Tooltip("special_share:Q", format=".1%"), "cases"],
    ).properties(width=round(420 * scale), height=round(20 * len(models) * scale))


def example_chart(case: Any, scale: float = 1.0) -> tuple[alt.Chart, str]:
    """A stored heatmap as a token chart (long prompts: the window holding the most relevance) and its note."""
    from engine.present.charts import token_chart
    from engine.present.figures import MAX_TOKENS, crop_window
    from engine.present.render import normalise

    shown = [not s for s in case.special_mask]
    rel = case.relevance.tolist()
    note = ""
    if sum(shown) > MAX_TOKENS:
        shown, note = crop_window(rel, shown, MAX_TOKENS)
    return token_chart(case.tokens, normalise(rel, shown, "max"), rel, shown, scale=scale), note


def graph_figure(graph_json: Optional[dict], scale: float = 1.0) -> Optional[alt.LayerChart]:
    """The stored pruned graph of a case (engine.graph.export JSON) as a static chart."""
    if not graph_json:
        return None
    from engine.graph.export import from_json
    from engine.graph.prune import prune
    from engine.graph.types import PruneSettings
    from engine.present.charts import graph_chart

    g = from_json(graph_json)
    pruned = prune(g, PruneSettings(mode="cum_mass", top_p=0.8, hide_first_token=True))
    return graph_chart(g, pruned, scale)
