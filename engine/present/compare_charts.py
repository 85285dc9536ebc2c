"""Altair charts of model comparisons (scaling, checkpoints) and sweep results; no streamlit.

Inputs are the tables of engine.compare.deltas / engine.compare.verdicts / engine.runs.store /
engine.cases.categories. Δℓ = ℓ(target) − ℓ(contrast): positive means the model still prefers the wrong token.
Models and checkpoints are coloured by engine.present.palette (one fixed colour per model, never the red / blue
of the target / contrast); y_scale "symlog" / "clip" (engine.compare.robust) keeps one outlier from
flattening a chart.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import altair as alt
import pandas as pd

from engine.compare.deltas import SEGMENT_COLUMNS
from engine.compare.robust import fences
from engine.compare.verdicts import VERDICTS
from engine.present import palette

DELTA = "Δℓ = ℓ(target) − ℓ(contrast)"
# counts are whole numbers: no "0.5" label (tickMinStep alone is not always honoured by the renderer)
COUNT_AXIS = alt.Axis(format="d", tickMinStep=1, labelExpr="datum.value % 1 ? '' : datum.label")


def binned_axis() -> alt.Axis:
    """A histogram's value axis: a few rounded, level labels that never run into each other ("0.200.40")."""
    return alt.Axis(format="~g", labelAngle=0, labelOverlap="greedy", labelSeparation=6, tickCount=8)


def _span(values: Sequence[float], *extra: float) -> tuple[float, float]:
    """(lo, hi) covering the finite values and the extra points, with a margin."""
    finite = [float(v) for v in list(values) + list(extra) if v is not None and math.isfinite(float(v))]
    lo, hi = (min(finite), max(finite)) if finite else (-1.0, 1.0)
    pad = 0.05 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def _clip_span(values: Sequence[float]) -> Optional[tuple[float, float]]:
    """The range a "clip" chart shows: the fences' range and 0, with a margin; None without finite values."""
    lo, hi = fences(values)
    return _span([lo, hi], 0.0) if math.isfinite(lo) else None


def _models(df: pd.DataFrame, column: str) -> list[str]:
    return [str(m) for m in dict.fromkeys(df[column])]


def _y(mode: str, values: Sequence[float], title: str, field: str = "delta:Q") -> tuple[alt.Y, bool]:
    """(y encoding, clip marks?) for y_scale "linear" | "symlog" | "clip" (the fences' range and 0)."""
    if mode == "symlog":
        return alt.Y(field, title=f"{title} (symmetric log)", scale=alt.Scale(type="symlog")), False
    span = _clip_span(values) if mode == "clip" else None
    if span is not None:
        return alt.Y(field, title=f"{title} (clipped)", scale=alt.Scale(domain=list(span), nice=False)), True
    return alt.Y(field, title=title), False


def scaling_scatter(table: pd.DataFrame, reference: str, corrected: Optional[tuple[float, float]] = None,
                    scale: float = 1.0, y_scale: str = "linear") -> alt.LayerChart:
    """Δℓ in the reference (x) vs each other model (y) and the y = x line; colour: model (palette), shape: the
    verdict when the table has one (engine.compare.verdicts). corrected=(x_min, y_max): also shade the old
    threshold region (x > x_min, y < y_max), an optional overlay. table: engine.compare.deltas.scaling_table.
    y_scale (both axes, engine.compare.robust): "linear"; "symlog" keeps every point; "clip" shows the fences'
    range of both columns (points outside are left out: list them with `scatter_outliers`)."""
    df = table.dropna(subset=["delta_ref", "delta"])
    extra = corrected or ()
    both = list(df["delta_ref"]) + list(df["delta"])
    suffix = ""
    span = _clip_span(both) if y_scale == "clip" else None
    if span is not None:
        lo, hi = span
        df = df[df["delta_ref"].between(lo, hi) & df["delta"].between(lo, hi)]
        suffix = " (clipped)"
    else:
        lo, hi = _span(both, *extra)
    if y_scale == "symlog":
        scale_xy, suffix = alt.Scale(type="symlog", domain=[lo, hi], nice=False), " (symmetric log)"
    else:
        scale_xy = alt.Scale(domain=[lo, hi], nice=False, clamp=y_scale == "clip")
    layers = []
    if corrected is not None:
        x_min, y_max = corrected
        layers.append(alt.Chart(pd.DataFrame([{"x": x_min, "x2": hi, "y": lo, "y2": y_max,
                                               "what": "threshold region"}])).mark_rect(
            opacity=0.10, color="#777777").encode(x=alt.X("x:Q", scale=scale_xy), x2="x2",
                                                   y=alt.Y("y:Q", scale=scale_xy), y2="y2", tooltip=["what"]))
    layers.append(alt.Chart(pd.DataFrame({"v": [lo, hi]})).mark_line(color="#888", strokeDash=[4, 4]).encode(
        x=alt.X("v:Q", scale=scale_xy), y=alt.Y("v:Q", scale=scale_xy)))
    shape = "verdict" if "verdict" in df.columns else "corrected"
    shapes = alt.Shape(f"{shape}:N", title=shape, scale=alt.Scale(domain=list(VERDICTS)) if shape == "verdict"
                       else alt.Undefined)
    layers.append(alt.Chart(df).mark_point(size=round(70 * scale), opacity=0.9, filled=True).encode(
        x=alt.X("delta_ref:Q", scale=scale_xy, title=f"Δℓ in {reference}{suffix}"),
        y=alt.Y("delta:Q", scale=scale_xy, title=f"Δℓ in the other model{suffix}"),
        color=alt.Color("model:N", title="model", scale=palette.scale(_models(df, "model"))), shape=shapes,
        tooltip=["case_id", "family", "model", alt.Tooltip("delta_ref:Q", format="+.3f"),
                 alt.Tooltip("delta:Q", format="+.3f"), shape]))
    return alt.layer(*layers).properties(width=round(420 * scale), height=round(420 * scale))


def scatter_outliers(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the "clip" scatter leaves out: Δℓ in the reference or in the other model beyond the fences."""
    df = table.dropna(subset=["delta_ref", "delta"])
    span = _clip_span(list(df["delta_ref"]) + list(df["delta"]))
    if span is None:
        return df.iloc[:0]
    lo, hi = span
    far = ~(df["delta_ref"].between(lo, hi) & df["delta"].between(lo, hi))
    keep = [c for c in ("case_id", "family", "model", "delta_ref", "delta", "verdict") if c in df.columns]
    return df.loc[far, keep].reset_index(drop=True)


def verdict_bars(counts: pd.DataFrame, scale: float = 1.0, series: bool = False, by: str = "model") -> alt.Chart:
    """Cases per verdict (rows), one bar per model (colour: palette) within each verdict.
    counts: engine.compare.verdicts.counts (model, verdict, count, cases); series: a checkpoint series."""
    models = _models(counts, "model")
    return alt.Chart(counts).mark_bar().encode(
        y=alt.Y("verdict:N", sort=list(VERDICTS), title=None, axis=alt.Axis(labelLimit=220)),
        yOffset=alt.YOffset("model:N", sort=models),
        x=alt.X("count:Q", title="cases", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("model:N", sort=models, title=by, scale=palette.scale(models, series=series)),
        tooltip=[alt.Tooltip("model:N", title=by), "verdict", "count", "cases"],
    ).properties(width=round(520 * scale), height=round(max(200, 13 * len(models) * len(VERDICTS)) * scale))


def ecdf_chart(ecdfs: pd.DataFrame, scale: float = 1.0) -> alt.LayerChart:
    """Cumulative distribution of Δℓ, one step line per model. ecdfs: model, value, fraction."""
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#888", strokeDash=[4, 4]).encode(x="x:Q")
    lines = alt.Chart(ecdfs).mark_line(interpolate="step-after", strokeWidth=2).encode(
        x=alt.X("value:Q", title=DELTA),
        y=alt.Y("fraction:Q", title="share of cases ≤ Δℓ", axis=alt.Axis(format="%")),
        color=alt.Color("model:N", title="model", sort=None, scale=palette.scale(_models(ecdfs, "model"))),
        tooltip=["model", alt.Tooltip("value:Q", format="+.3f"), alt.Tooltip("fraction:Q", format=".0%")])
    return alt.layer(zero, lines).properties(width=round(420 * scale), height=round(300 * scale))


def segment_bars(means: pd.DataFrame, by: str = "model", scale: float = 1.0, y_scale: str = "linear",
                 series: bool = False) -> alt.LayerChart:
    """Mean normalised segment relevance (± standard error) per segment, one bar per `by` group (colour: palette;
    series: ordered shades of a checkpoint series). y_scale: "linear" | "symlog" | "clip" (engine.compare.robust).
    means: engine.compare.deltas.mean_by_model (columns by, segment, mean, sem, n)."""
    df = means.assign(lo=means["mean"] - means["sem"].fillna(0), hi=means["mean"] + means["sem"].fillna(0))
    order = [str(o) for o in dict.fromkeys(df[by])]
    title = "mean R / max |R| (> 0: target)" if y_scale == "linear" else "mean R / max |R|"  # fits the axis
    y, clip = _y(y_scale, list(df["mean"]), title, "mean:Q")
    base = alt.Chart(df).encode(
        x=alt.X("segment:N", sort=list(SEGMENT_COLUMNS), title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset(f"{by}:N", sort=order))
    bars = base.mark_bar(clip=clip).encode(
        y=y, color=alt.Color(f"{by}:N", sort=order, title=by, scale=palette.scale(order, series=series)),
        tooltip=[by, "segment", alt.Tooltip("mean:Q", format="+.3f"), alt.Tooltip("sem:Q", format=".3f"), "n"])
    errors = base.mark_rule(color="#333", clip=clip).encode(y="lo:Q", y2="hi:Q")
    return alt.layer(bars, errors).properties(width=round(max(420, 16 * len(order) * len(SEGMENT_COLUMNS)) * scale),
                                              height=round(260 * scale))


def evolution_chart(evolution: pd.DataFrame, mean: pd.DataFrame, scale: float = 1.0,
                    y_scale: str = "linear") -> alt.LayerChart:
    """Δℓ of every case across checkpoints (thin lines, colour: family) and their mean (bold), with a dot per
    checkpoint in its palette shade. y_scale: "linear" | "symlog" | "clip" (engine.compare.robust).
    evolution: engine.compare.deltas.evolution_table; mean: engine.compare.deltas.mean_line."""
    order = list(mean.sort_values("order")["checkpoint"])
    x = alt.X("checkpoint:N", sort=order, title="checkpoint", axis=alt.Axis(labelAngle=-35, labelOverlap=False))
    y, clip = _y(y_scale, list(evolution["delta"].dropna()), DELTA)
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888", strokeDash=[4, 4]).encode(y="y:Q")
    cases = alt.Chart(evolution.dropna(subset=["delta"])).mark_line(strokeWidth=1.2, opacity=0.55, clip=clip).encode(
        x=x, y=y, detail="case_id:N",
        color=alt.Color("family:N", title="family", scale=palette.family_scale(_models(evolution, "family"))),
        tooltip=["case_id", "family", "checkpoint", alt.Tooltip("delta:Q", format="+.3f")])
    shades = alt.Chart(mean).mark_point(filled=True, size=round(160 * scale), opacity=1, clip=clip).encode(
        x=x, y="mean:Q", fill=alt.Fill("checkpoint:N", sort=order, scale=palette.scale(order, series=True),
                                       legend=None), stroke=alt.value("#111"))
    bold = alt.Chart(mean).mark_line(strokeWidth=4, color="#111", clip=clip).encode(
        x=x, y="mean:Q", tooltip=["checkpoint", alt.Tooltip("mean:Q", format="+.3f", title="mean Δℓ"), "n"])
    return alt.layer(zero, cases, bold, shades).properties(width=round(max(420, 70 * len(order)) * scale),
                                                          height=round(320 * scale))


def delta_histogram(results: pd.DataFrame, scale: float = 1.0) -> alt.Chart:
    """Histogram of Δℓ per model. results: rows of Store.results_frame with a logit_diff."""
    return alt.Chart(results[["model_label", "logit_diff"]].dropna()).mark_bar(opacity=0.65).encode(
        x=alt.X("logit_diff:Q", bin=alt.Bin(maxbins=30), title=DELTA, axis=binned_axis()),
        y=alt.Y("count():Q", stack=None, title="failures", axis=COUNT_AXIS),
        color=alt.Color("model_label:N", title="model", scale=palette.scale(_models(results, "model_label"))),
    ).properties(width=round(420 * scale), height=round(240 * scale))


def share_chart(shares: pd.DataFrame, column: str, scale: float = 1.0) -> alt.Chart:
    """Stacked shares of a category column per (benchmark, model). shares: engine.cases.categories.shares."""
    from engine.cases.categories import Outcome, Pattern
    from engine.present import glossary

    words = shares[column].map(lambda v: glossary.name(v) if isinstance(v, str) else glossary.name("none"))
    df = shares.assign(row=shares["benchmark"].astype(str) + " · " + shares["model_label"].astype(str),
                       category=words)
    codes = [c.value for c in (Outcome if column == "outcome" else Pattern)] + ["none"]
    # a fixed order and colours without red or blue (those mean "supports the wrong / right answer")
    domain = list(dict.fromkeys([glossary.name(c) for c in codes]
                                + sorted(set(words) - {glossary.name(c) for c in codes})))
    colours = [palette.CATEGORICAL[i % len(palette.CATEGORICAL)] for i in range(len(domain))]
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("share:Q", stack="normalize", title="share of failures",
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1])),
        y=alt.Y("row:N", title=None),
        color=alt.Color("category:N", title=glossary.title(column), scale=alt.Scale(domain=domain, range=colours),
                        legend=alt.Legend(orient="bottom", columns=1, labelLimit=0)),
        tooltip=["benchmark", "model_label", alt.Tooltip("category:N", title=glossary.title(column)), "count",
                 alt.Tooltip("share:Q", format=".0%")],
    # the height as a step per row: a fixed height with the legend below made Streamlit's renderer squeeze the
    # rows into a flat line (its exports were fine); a step keeps each row 32 px wherever it is drawn
    ).properties(width=round(360 * scale), height=alt.Step(round(32 * scale)))
