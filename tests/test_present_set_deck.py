"""The set-view decks of Scaling and Evolution: the verdict counts in the page's order with palette colours, then one
slide per set-view chart titled with the sentence that sums it up (hand-made verdicts with known counts)."""
from __future__ import annotations

import io

import pandas as pd

from engine.compare.deltas import ecdf
from engine.compare.verdicts import DIFFERENT, FIXED, STILL_WRONG, ModelVerdict, training_counts
from engine.present import palette
from engine.present.set_deck import evolution_view, scaling_view, set_deck
from engine.records import TokenChoice

LABELS = ["zoo:xs", "zoo:s", "zoo:<b>l</b>"]  # the last one: untrusted text that must stay text
VERDICT = {  # (case, model) -> (verdict, Δℓ)
    ("c1", "zoo:xs"): (STILL_WRONG, 3.0), ("c2", "zoo:xs"): (STILL_WRONG, 2.0), ("c3", "zoo:xs"): (STILL_WRONG, 1.0),
    ("c1", "zoo:s"): (FIXED, -1.0), ("c2", "zoo:s"): (STILL_WRONG, 2.5), ("c3", "zoo:s"): (DIFFERENT, 0.5),
    ("c1", "zoo:<b>l</b>"): (FIXED, -2.0), ("c2", "zoo:<b>l</b>"): (FIXED, -0.5),
    ("c3", "zoo:<b>l</b>"): (STILL_WRONG, 1.5)}


def _rows(verdicts: dict) -> list[ModelVerdict]:
    return [ModelVerdict(c, "math", m, v, TokenChoice(1, "x"), 0.6, TokenChoice(2, "2"), 0.3, TokenChoice(3, "3"),
                         0.1, d) for (c, m), (v, d) in verdicts.items()]


def _means(by: str, labels) -> pd.DataFrame:
    seg = {"total": 1.0, "instruction": 0.1, "query": 0.4, "answer": -0.2, "special": 0.0}
    rows = [{by: lab, "segment": s, "mean": v * (k + 1) if s != "query" or k < 2 else -0.3, "sem": 0.01, "n": 3}
            for k, lab in enumerate(labels) for s, v in seg.items()]
    return pd.DataFrame(rows).assign(mean=lambda d: d["mean"].where(d[by] != labels[0], -d["mean"].abs()))


def _open(data: bytes):
    from pptx import Presentation

    return Presentation(io.BytesIO(data))


def _titles(prs) -> list[str]:
    return [s.shapes.title.text for s in prs.slides]


def _check_cards(prs, labels, colours, expected):
    table = next(sh.table for sh in list(prs.slides)[1].shapes if sh.has_table)
    assert [table.cell(i, 0).text for i in range(1, len(labels) + 1)] == list(labels)  # the page's order
    for i, lab in enumerate(labels, start=1):
        assert str(table.cell(i, 0).fill.fore_color.rgb) == colours[lab].lstrip("#").upper()
        assert [table.cell(i, j).text for j in range(1, 4)] == [str(x) for x in expected[lab]]
    for s in list(prs.slides)[2:]:  # one picture (the chart) per chart slide
        assert sum(1 for sh in s.shapes if sh.shape_type == 13) == 1
        assert s.has_notes_slide and s.notes_slide.notes_text_frame.text


def test_scaling_set_deck_has_a_slide_per_chart_titled_by_its_sentence():
    rows = _rows(VERDICT)
    table = pd.DataFrame([{"case_id": c, "family": "math", "model": m, "delta_ref": VERDICT[(c, "zoo:xs")][1],
                           "delta": d, "verdict": v, "notes": ""} for (c, m), (v, d) in VERDICT.items()
                          if m != "zoo:xs"])
    curves = pd.concat([ecdf(d for (c, m), (_, d) in VERDICT.items() if m == lab).assign(model=lab)
                        for lab in LABELS], ignore_index=True)
    prs = _open(set_deck(scaling_view(rows, LABELS, table, curves, _means("model", LABELS))))
    assert _titles(prs) == [
        "Does a bigger model fix these failures?",
        "Of 3 failures of zoo:xs, zoo:s fixes 1 and zoo:<b>l</b> 2.",
        "From zoo:xs to zoo:<b>l</b>: fixed 0 → 2, still wrong 3 → 1.",
        "Δℓ lower than in zoo:xs (below y = x): zoo:s in 2 of 3, zoo:<b>l</b> in 2 of 3.",
        "Median Δℓ: zoo:xs +2.00, zoo:s +0.50, zoo:<b>l</b> −0.50 (below 0 the right token beats the wrong one).",
        "Strongest push toward the wrong answer: zoo:s query (+0.80), zoo:<b>l</b> instruction (+0.30); "
        "none in zoo:xs."]
    _check_cards(prs, LABELS, palette.colours(LABELS), {"zoo:xs": (0, 3, 0), "zoo:s": (1, 1, 1),
                                                         "zoo:<b>l</b>": (2, 1, 0)})
    xml = b"".join(p.blob for p in prs.part.package.iter_parts() if "slides/slide" in str(p.partname))
    assert b"<b>l</b>" not in xml and b"zoo:&lt;b&gt;l&lt;/b&gt;" in xml


def test_evolution_set_deck_follows_training_order_with_the_training_sentence():
    points = ["ck-a", "ck-b", "ck-c"]  # not zoo checkpoints: shades by position (palette.ordered)
    verdicts = {(c, p): VERDICT[(c, m)] for p, m in zip(points, LABELS) for c in ("c1", "c2", "c3")}
    verdicts[("c3", "ck-b")] = (FIXED, -0.1)  # right once, lost again
    rows = _rows(verdicts)
    evolution = pd.DataFrame([{"case_id": c, "family": "math", "checkpoint": p, "order": points.index(p),
                               "delta": d, "notes": ""} for (c, p), (_, d) in verdicts.items()])
    mean = evolution.groupby(["order", "checkpoint"])["delta"].agg(["mean", "sem", "count"]).reset_index()
    mean = mean.rename(columns={"count": "n"})
    assert training_counts(rows, "ck-a", "ck-c").lost_again == 1
    prs = _open(set_deck(evolution_view(rows, points, evolution, mean, _means("checkpoint", points), "symlog",
                                        " of zoo:m")))
    titles = _titles(prs)
    assert titles[0] == "What did training of zoo:m fix and break?"
    assert titles[1] == ("Training fixed 2 and broke 0 of 3 failures (ck-a → ck-c); 1 right once, lost again; "
                         "0 never right.")
    assert titles[2] == "From ck-a to ck-c: fixed 0 → 2, still wrong 3 → 1."
    assert titles[3] == "Mean Δℓ goes from +2.00 at ck-a to −0.33 at ck-c (above 0 the wrong token wins)."
    assert len(titles) == 5
    assert titles[4] == ("Strongest push toward the wrong answer: ck-b query (+0.80), ck-c instruction (+0.30); "
                         "none in ck-a.")
    _check_cards(prs, points, palette.ordered(points), {"ck-a": (0, 3, 0), "ck-b": (2, 1, 0), "ck-c": (2, 1, 0)})
