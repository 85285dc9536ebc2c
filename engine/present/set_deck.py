"""The set views of the Scaling and Evolution pages in one PowerPoint deck: `set_deck(view) -> bytes`.

A set view is the result over a whole set of failure cases in several models (in size order) or checkpoints (in
training order). `scaling_view` / `evolution_view` turn the page's data into a `SetView`: the verdict counts of
every model in its palette colour, then one slide per set-view chart (drawn by engine.present.compare_charts, as on
the page), each titled with the sentence that says what it shows. Untrusted text (model names, case ids) only
becomes plain text runs (engine.present.deck.plain) or Vega title strings.
"""
from __future__ import annotations

import datetime
import io
import math
from dataclasses import dataclass
from typing import Sequence

import altair as alt
import pandas as pd

from engine.compare import verdicts as V
from engine.present import compare_charts, figures, palette
from engine.present.slides import coloured_table, cover, picture, titled_slide, widescreen

TITLE_BOX = (0.5, 0.2, 12.3, 1.15)  # room for a two-line sentence


@dataclass(frozen=True)
class SetSlide:
    """One set-view chart on a slide: `title` says what it shows in a sentence; `caption` names the chart."""

    title: str
    chart: alt.TopLevelMixin
    caption: str


@dataclass(frozen=True)
class SetView:
    """A page's set view: the question, the cases in words, models or checkpoints in order, their verdicts."""

    question: str
    cases_line: str  # "3 failure cases of zoo:xs"
    labels: tuple[str, ...]  # size or training order
    series: bool  # labels are checkpoints of one training run
    rows: tuple[V.ModelVerdict, ...]
    verdict_title: str  # the verdict sentence (title of the counts slide)
    slides: tuple[SetSlide, ...]


def _signed(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.2f}".replace("-", "−")


def _counts(rows: Sequence[V.ModelVerdict], label: str) -> dict[str, int]:
    """{verdict: count} of one model (engine.compare.verdicts.counts, as a dict)."""
    c = V.counts(rows, [label])
    return {v: int(n) for v, n in zip(c["verdict"], c["count"])}


def _few(labels: Sequence[str]) -> list[str]:
    """The labels a title sentence names: all of up to 4, else the first and the last (the ends of the order)."""
    return list(labels) if len(labels) <= 4 else [labels[0], labels[-1]]


def fixed_sentence(rows: Sequence[V.ModelVerdict], labels: Sequence[str], reference: str) -> str:
    """"Of 3 failures of zoo:xs, zoo:s fixes 0, zoo:m 1 and zoo:l 2." (labels without the reference)."""
    n = len({r.case_id for r in rows})
    parts = [f"{lab} {'fixes ' if i == 0 else ''}{_counts(rows, lab)[V.FIXED]}"
             for i, lab in enumerate(_few(labels))]
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"Of {n} failures of {reference}, {listed}."


def training_sentence(rows: Sequence[V.ModelVerdict], first: str, last: str) -> str:
    """"Training fixed 2 and broke 1 of 3 failures (m-step00050 → m-step06000); 1 never right." """
    t = V.training_counts(rows, first, last)
    more = [f"{t.lost_again} right once, lost again" if t.lost_again else "", f"{t.never} never right"]
    return (f"Training fixed {t.fixed_by_training} and broke {t.broken} of {t.cases} failures ({first} → {last}); "
            + "; ".join(m for m in more if m) + ".")


def ends_sentence(rows: Sequence[V.ModelVerdict], first: str, last: str) -> str:
    """"From zoo:xs to zoo:l: fixed 0 → 2, still wrong 3 → 0, different wrong answer 0 → 1." """
    a, b = _counts(rows, first), _counts(rows, last)
    moves = [f"{v} {a[v]} → {b[v]}" for v in V.VERDICTS if a[v] or b[v]]
    return f"From {first} to {last}: {', '.join(moves)}."


def lower_sentence(table: pd.DataFrame, reference: str, labels: Sequence[str]) -> str:
    """Scatter: "Δℓ lower than in zoo:xs (below y = x): zoo:s in 1 of 3 cases, zoo:l in 3 of 3." """
    parts = []
    for lab in _few(labels):
        mine = table[(table["model"] == lab)].dropna(subset=["delta_ref", "delta"])
        parts.append(f"{lab} in {int((mine['delta'] < mine['delta_ref']).sum())} of {len(mine)}")
    return f"Δℓ lower than in {reference} (below y = x): {', '.join(parts)}."


def median_sentence(curves: pd.DataFrame, labels: Sequence[str]) -> str:
    """ECDF: "Median Δℓ: zoo:xs +3.10, zoo:l −0.40 (below 0 the right token beats the wrong one)." """
    def median(lab: str) -> float:
        c = curves[curves["model"] == lab]
        above = c[c["fraction"] >= 0.5]
        return float(above["value"].iloc[0]) if len(above) else math.nan

    return (f"Median Δℓ: {', '.join(f'{lab} {_signed(median(lab))}' for lab in _few(labels))} "
            "(below 0 the right token beats the wrong one).")


def segment_sentence(means: pd.DataFrame, by: str, labels: Sequence[str]) -> str:
    """Segment bars: "Strongest push toward the wrong answer: zoo:xs query (+0.41); none in zoo:s and zoo:l."
    (none: no segment's mean is above 0)."""
    tops, none = [], []
    for lab in _few(labels):
        mine = means[(means[by] == lab) & (means["segment"] != "total")].dropna(subset=["mean"])
        if len(mine):
            top = mine.loc[mine["mean"].idxmax()]
            if top["mean"] > 0:
                tops.append(f"{lab} {top['segment']} ({_signed(float(top['mean']))})")
            else:
                none.append(lab)
    if not tops and not none:
        return "No segment relevance was computed."
    listed = none[0] if len(none) == 1 else f"{', '.join(none[:-1])} and {none[-1]}" if none else ""
    return ("Strongest push toward the wrong answer: " + ", ".join(tops or ["none"])
            + (f"; none in {listed}" if none and tops else f" in {listed}" if none else "") + ".")


def mean_sentence(mean: pd.DataFrame) -> str:
    """Evolution lines: "Mean Δℓ goes from +3.10 at m-step00050 to +0.20 at m-step06000 (> 0: wrong answer)." """
    m = mean.sort_values("order")
    first, last = m.iloc[0], m.iloc[-1]
    return (f"Mean Δℓ goes from {_signed(float(first['mean']))} at {first['checkpoint']} to "
            f"{_signed(float(last['mean']))} at {last['checkpoint']} (above 0 the wrong token wins).")


def scaling_view(rows: Sequence[V.ModelVerdict], labels: Sequence[str], table: pd.DataFrame, curves: pd.DataFrame,
                 means: pd.DataFrame, y_scale: str = "linear") -> SetView:
    """The Scaling page's set view. labels: the reference first, then the others (the page's order); table:
    engine.compare.deltas.scaling_table; curves: ecdf rows with a model column; means: mean_by_model."""
    ref, others, n = labels[0], list(labels[1:]), len({r.case_id for r in rows})
    counts = V.counts(rows, labels)
    slides = (
        SetSlide(ends_sentence(rows, ref, labels[-1]), compare_charts.verdict_bars(counts),
                 f"What became of {n} failures of {ref} in the other models"),
        SetSlide(lower_sentence(table, ref, others), compare_charts.scaling_scatter(table, ref, None, 1.0, y_scale),
                 f"Δℓ in {ref} vs the other models ({n} failure cases; > 0: wrong answer); shape: verdict"),
        SetSlide(median_sentence(curves, labels), compare_charts.ecdf_chart(curves),
                 f"How far each model prefers the wrong answer ({n} failures of {ref})"),
        SetSlide(segment_sentence(means, "model", labels),
                 compare_charts.segment_bars(means, "model", 1.0, y_scale),
                 "Relevance by segment per model: mean R / max |R| (> 0: toward the wrong answer)"))
    return SetView("Does a bigger model fix these failures?", f"{n} failure cases of {ref}", tuple(labels), False,
                   tuple(rows), fixed_sentence(rows, others, ref), slides)


def evolution_view(rows: Sequence[V.ModelVerdict], labels: Sequence[str], evolution: pd.DataFrame,
                   mean: pd.DataFrame, means: pd.DataFrame, y_scale: str = "linear", whose: str = "") -> SetView:
    """The Evolution page's set view. labels: checkpoints in training order; evolution / mean:
    engine.compare.deltas.evolution_table / mean_line; means: mean_by_model with a checkpoint column; whose:
    " of zoo:m" (the series, when the page knows it)."""
    first, last, n = labels[0], labels[-1], len({r.case_id for r in rows})
    counts = V.counts(rows, labels)
    slides = (
        SetSlide(ends_sentence(rows, first, last),
                 compare_charts.verdict_bars(counts, series=True, by="checkpoint"),
                 f"What became of the failures over training{whose} ({first} → {last})"),
        SetSlide(mean_sentence(mean), compare_charts.evolution_chart(evolution, mean, 1.0, y_scale),
                 f"Δℓ over training{whose}, {first} → {last}: a thin line per case (colour: family), "
                 "bold: the mean"),
        SetSlide(segment_sentence(means, "checkpoint", labels),
                 compare_charts.segment_bars(means, "checkpoint", 1.0, y_scale, series=True),
                 f"Relevance by segment per checkpoint{whose} (> 0: toward the wrong answer)"))
    return SetView(f"What did training{whose} fix and break?", f"{n} failure cases followed over training{whose}",
                   tuple(labels), True, tuple(rows), training_sentence(rows, first, last), slides)


def _size(title: str) -> int:
    """Title font size (pt): two lines of the title box hold ~150 characters at 22 pt, ~200 at 18 pt."""
    return 24 if len(title) <= 120 else 22 if len(title) <= 150 else 18


def set_deck(view: SetView) -> bytes:
    """Title, the verdict counts of every model / checkpoint (in order, palette colours), one slide per chart."""
    from pptx.util import Inches

    prs = widescreen()
    labels = list(view.labels)
    colours = palette.ordered(labels) if view.series else palette.colours(labels)
    who = "checkpoint" if view.series else "model"
    cover(prs, view.question, [view.cases_line,
                               f"{' → '.join(labels)} · Failure Lens · {datetime.date.today().isoformat()}"])

    cards = titled_slide(prs, view.verdict_title, size=_size(view.verdict_title), box=TITLE_BOX)
    counts = {lab: _counts(view.rows, lab) for lab in labels}
    coloured_table(cards, [(who, 3.3)] + [(v, 2.2) for v in V.VERDICTS],
                   [[lab, *(str(counts[lab][v]) for v in V.VERDICTS)] for lab in labels],
                   [colours.get(lab, "#888888") for lab in labels], Inches(1.6), Inches(0.45))

    for s in view.slides:
        sl = titled_slide(prs, s.title, size=_size(s.title), box=TITLE_BOX, notes=s.caption)
        picture(prs, sl, figures.png_16x9(figures.titled(s.chart, s.caption, [f"{view.cases_line} · Failure Lens"])),
                Inches(1.5), Inches(5.8))
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()
