"""The Scaling / Evolution deck: verdicts in the page's order with palette colours, the row-over-row heatmap."""
from __future__ import annotations

import io

from engine.compare.verdicts import ModelVerdict
from engine.present import palette
from engine.present.aligned import Strip
from engine.present.compare_deck import compare_deck
from engine.records import TokenChoice

LABELS = ["zoo:xs", "zoo:s", "zoo:<b>l</b>"]


def _row(model, verdict, top, delta):
    return ModelVerdict("c1", "math", model, verdict, TokenChoice(1, top), 0.7, TokenChoice(2, "2"), 0.7,
                        TokenChoice(3, "3"), 0.2, delta)


def test_deck_lists_every_model_in_order_with_its_verdict_and_colour():
    from pptx import Presentation

    rows = [_row("zoo:<b>l</b>", "fixed", "3", -1.0), _row("zoo:xs", "still wrong", "2", 2.0),
            _row("zoo:s", "different wrong answer", "=1+1", 0.5)]
    strip = Strip("c1: '2' vs '3'", ("<bos>", "what", "is"), tuple(LABELS), ((0.0, 0.5, -0.5),) * 3,
                  ((0.0, 1.0, -1.0),) * 3, ("#111111",) * 3)
    data = compare_deck("Does a bigger model fix this failure?", "c1 · says '2', should say '3'", rows, LABELS,
                        strip, series=False, shifts=["zoo:s moves relevance to the query."])
    prs = Presentation(io.BytesIO(data))
    slides = list(prs.slides)
    assert [s.shapes.title.text for s in slides][0] == "Does a bigger model fix this failure?"
    assert len(slides) == 4  # title, verdicts, row over row, where the relevance moved
    table = next(sh.table for sh in slides[1].shapes if sh.has_table)
    got = [[table.cell(i, j).text for j in range(5)] for i in range(1, 4)]
    assert [g[0] for g in got] == LABELS  # the page's (size) order, not the order the rows came in
    assert [g[1] for g in got] == ["still wrong", "different wrong answer", "fixed"]
    assert got[1][2] == "'=1+1'" and got[2][4] == "-1.00"
    colours = palette.colours(LABELS)
    for i, label in enumerate(LABELS, start=1):
        assert str(table.cell(i, 0).fill.fore_color.rgb) == colours[label].lstrip("#").upper()
    assert sum(1 for sh in slides[2].shapes if sh.shape_type == 13) == 1  # the heatmap picture
    xml = b"".join(p.blob for p in prs.part.package.iter_parts() if "slides/slide" in str(p.partname))
    assert b"<b>l</b>" not in xml and b"&lt;b&gt;l&lt;/b&gt;" in xml
