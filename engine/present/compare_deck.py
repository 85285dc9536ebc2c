"""The Scaling and Evolution pages' case in one PowerPoint deck: `compare_deck(...) -> bytes`.

Slides (16:9): title (the question and the case), the verdict of every model or checkpoint in the page's order
(size or training order) with its palette colour, the row-over-row heatmap (engine.present.aligned), and where
the relevance moved. Untrusted text (prompts, tokens, model names) only becomes plain text runs
(engine.present.deck.plain).
"""
from __future__ import annotations

import datetime
import io
from typing import Sequence

from engine.compare.verdicts import ModelVerdict
from engine.present import aligned, figures, palette
from engine.present.deck import plain
from engine.present.slides import coloured_table, cover, picture, titled_slide, widescreen


def compare_deck(question: str, case_line: str, rows: Sequence[ModelVerdict], labels: Sequence[str],
                 strip: aligned.Strip, series: bool, shifts: Sequence[str] = ()) -> bytes:
    """question: the page's question ("Does a bigger model fix this failure?"); case_line: the case in words;
    rows: one verdict per label (engine.compare.verdicts, one case); labels: in the page's order; series: labels
    are checkpoints of one training run (their colours are shades of one hue); shifts: where the relevance moved."""
    from pptx.util import Inches, Pt

    prs = widescreen()
    colours = palette.ordered(list(labels)) if series else palette.colours(list(labels))
    by_label = {r.model: r for r in rows}
    who = "checkpoint" if series else "model"

    def slide(title: str):
        return titled_slide(prs, title, size=28)

    cover(prs, question, [case_line, f"{' → '.join(labels)} · Failure Lens · {datetime.date.today().isoformat()}"])

    verdicts = slide(f"The verdict of every {who}: {case_line}")
    cells = []
    for label in labels:
        r = by_label.get(label)
        cells.append([label, r.verdict if r else "not scored", repr(r.top1.text) if r and r.top1 else "–",
                      f"{r.p_top1:.2f}" if r and r.p_top1 is not None else "–",
                      f"{r.delta:+.2f}" if r and r.delta is not None else "–"])
    coloured_table(verdicts, ((who, 2.6), ("verdict", 3.4), ("says", 2.4), ("p", 1.5), ("Δℓ", 2.2)), cells,
                   [colours.get(label, "#888888") for label in labels], Inches(1.5), Inches(0.5))

    heat = slide(f"Which tokens push toward the wrong answer, {who} by {who}")
    chart = figures.titled(aligned.strip_chart(strip), strip.title, [f"One row per {who}, in order"])
    picture(prs, heat, figures.png_16x9(chart), Inches(1.3), Inches(5.9))
    if shifts:
        moved = slide("Where the relevance moved")
        box = moved.shapes.add_textbox(Inches(0.7), Inches(1.5), Inches(11.9), Inches(5.5)).text_frame
        box.word_wrap = True
        for i, line in enumerate(shifts):
            para = box.paragraphs[0] if i == 0 else box.add_paragraph()
            para.text = plain(line)
            for run in para.runs:
                run.font.size = Pt(18)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()
