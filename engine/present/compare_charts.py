"""Altair charts of model comparisons (scaling, checkpoints) and sweep results; no streamlit.

Inputs are the tables of engine.compare.deltas / engine.runs.store / engine.cases.categories. Δℓ = ℓ(target) − ℓ(contrast):
positive means the model still prefers the wrong token.
"""
from __future__ import annotations

import math
from typing import Sequence

import altair as alt
import pandas as pd

from engine.compare.deltas import SEGMENT_COLUMNS

DELTA = "Δℓ = ℓ(target) − ℓ(contrast)"


def _span(values: Sequence[float], *extra: float) -> tuple[float, float]:
    """(lo, hi) covering the finite values and the extra points, with a margin."""
    finite = [float(v) for v in list(values) + list(extra) if v is not None and math.isfinite(float(v))]
    lo, hi = (min(finite), max(finite)) if finite else (-1.0, 1.0)
    pad = 0.05 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def scaling_scatter(table: pd.DataFrame, reference: str, corrected: tuple[float, float],
                    scale: float = 1.0) -> alt.LayerChart:
    """Δℓ in the reference (x) vs each other model (y), the y = x line and the shaded "corrected" region
    (x > corrected[0], y < corrected[1]). table: engine.compare.deltas.scaling_table."""
    x_min, y_max = corrected
    df = table.dropna(subset=["delta_ref", "delta"])
    lo, hi = _span(list(df["delta_ref"]) + list(df["delta"]), x_min, y_max)
    scale_xy = alt.Scale(domain=[lo, hi], nice=False)
    region = alt.Chart(pd.DataFrame([{"x": x_min, "x2": hi, "y": lo, "y2": y_max, "what": "corrected"}])).mark_rect(
        opacity=0.12, color="#2ca02c").encode(x=alt.X("x:Q", scale=scale_xy), x2="x2", y=alt.Y("y:Q", scale=scale_xy),
                                              y2="y2", tooltip=["what"])
    diagonal = alt.Chart(pd.DataFrame({"v": [lo, hi]})).mark_line(color="#888", strokeDash=[4, 4]).encode(
        x=alt.X("v:Q", scale=scale_xy), y=alt.Y("v:Q", scale=scale_xy))
    points = alt.Chart(df).mark_point(size=round(60 * scale), opacity=0.85, filled=True).encode(
        x=alt.X("delta_ref:Q", scale=scale_xy, title=f"Δℓ in {reference}"),
        y=alt.Y("delta:Q", scale=scale_xy, title="Δℓ in the other model"),
        color=alt.Color("model:N", title="model"), shape=alt.Shape("corrected:N", title="corrected"),
        tooltip=["case_id", "family", "model", alt.Tooltip("delta_ref:Q", format="+.3f"),
                 alt.Tooltip("delta:Q", format="+.3f"), "corrected"])
    return alt.layer(region, diagonal, points).properties(width=round(420 * scale), height=round(420 * scale))


def ecdf_chart(ecdfs: pd.DataFrame, scale: float = 1.0) -> alt.LayerChart:
    """Cumulative distribution of Δℓ, one step line per model. ecdfs: model, value, fraction."""
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#888", strokeDash=[4, 4]).encode(x="x:Q")
    lines = alt.Chart(ecdfs).mark_line(interpolate="step-after", strokeWidth=2).encode(
        x=alt.X("value:Q", title=DELTA),
        y=alt.Y("fraction:Q", title="share of cases ≤ Δℓ", axis=alt.Axis(format="%")),
        color=alt.Color("model:N", title="model", sort=None),
        tooltip=["model", alt.Tooltip("value:Q", format="+.3f"), alt.Tooltip("fraction:Q", format=".0%")])
    return alt.layer(zero, lines).properties(width=round(420 * scale), height=round(300 * scale))


def segment_bars(means: pd.DataFrame, by: str = "model", scale: float = 1.0) -> alt.LayerChart:
    """Mean normalised segment relevance (± standard error) per segment, one bar per `by` group.
    means: engine.compare.deltas.mean_by_model (columns by, segment, mean, sem, n)."""
    df = means.assign(lo=means["mean"] - means["sem"].fillna(0), hi=means["mean"] + means["sem"].fillna(0))
    order = list(dict.fromkeys(df[by]))
    base = alt.Chart(df).encode(
        x=alt.X("segment:N", sort=list(SEGMENT_COLUMNS), title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset(f"{by}:N", sort=order))
    bars = base.mark_bar().encode(
        y=alt.Y("mean:Q", title="mean R / max |R| (> 0: target)"),
        color=alt.Color(f"{by}:N", sort=order, title=by),
        tooltip=[by, "segment", alt.Tooltip("mean:Q", format="+.3f"), alt.Tooltip("sem:Q", format=".3f"), "n"])
    errors = base.mark_rule(color="#333").encode(y="lo:Q", y2="hi:Q")
    return alt.layer(bars, errors).properties(width=round(max(420, 30 * len(order) * len(SEGMENT_COLUMNS)) * scale),
                                              height=round(260 * scale))


def evolution_chart(evolution: pd.DataFrame, mean: pd.DataFrame, scale: float = 1.0) -> alt.LayerChart:
    """Δℓ of every case across checkpoints (thin lines) and their mean (bold).
    evolution: engine.compare.deltas.evolution_table; mean: engine.compare.deltas.mean_line."""
    order = list(mean.sort_values("order")["checkpoint"])
    x = alt.X("checkpoint:N", sort=order, title="checkpoint", axis=alt.Axis(labelAngle=-30))
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888", strokeDash=[4, 4]).encode(y="y:Q")
    cases = alt.Chart(evolution.dropna(subset=["delta"])).mark_line(strokeWidth=1.2, opacity=0.55).encode(
        x=x, y=alt.Y("delta:Q", title=DELTA), detail="case_id:N", color=alt.Color("family:N", title="family"),
        tooltip=["case_id", "family", "checkpoint", alt.Tooltip("delta:Q", format="+.3f")])
    dot = alt.OverlayMarkDef(color="#111", size=60)
    bold = alt.Chart(mean).mark_line(strokeWidth=4, color="#111", point=dot).encode(
        x=x, y="mean:Q", tooltip=["checkpoint", alt.Tooltip("mean:Q", format="+.3f", title="mean Δℓ"), "n"])
    return alt.layer(zero, cases, bold).properties(width=round(max(420, 70 * len(order)) * scale),
                                                  height=round(320 * scale))


def delta_histogram(results: pd.DataFrame, scale: float = 1.0) -> alt.Chart:
    """Histogram of Δℓ per model. results: rows of Store.results_frame with a logit_diff."""
    return alt.Chart(results[["model_label", "logit_diff"]].dropna()).mark_bar(opacity=0.65).encode(
        x=alt.X("logit_diff:Q", bin=alt.Bin(maxbins=30), title=DELTA),
        y=alt.Y("count():Q", stack=None, title="failures"), color=alt.Color("model_label:N", title="model"),
    ).properties(width=round(420 * scale), height=round(240 * scale))


def share_chart(shares: pd.DataFrame, column: str, scale: float = 1.0) -> alt.Chart:
    """Stacked shares of a category column per (benchmark, model). shares: engine.cases.categories.shares."""
    df = shares.assign(row=shares["benchmark"].astype(str) + " · " + shares["model_label"].astype(str))
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("share:Q", stack="normalize", title="share of failures", axis=alt.Axis(format="%")),
        y=alt.Y("row:N", title=None), color=alt.Color(f"{column}:N", title=column),
        tooltip=["benchmark", "model_label", column, "count", alt.Tooltip("share:Q", format=".0%")],
    ).properties(width=round(360 * scale), height=round((70 + 32 * df["row"].nunique()) * scale))  # axes included
