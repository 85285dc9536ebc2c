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
from engine.present.slides import titled_slide, widescreen


def _rgb(colour: str):
    from pptx.dml.color import RGBColor

    c = colour.lstrip("#")
    return RGBColor(int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) if len(c) == 6 else RGBColor(0x88, 0x88, 0x88)


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

    title = prs.slides.add_slide(prs.slide_layouts[0])
    title.shapes.title.text = plain(question)
    sub = title.placeholders[1]
    sub.text_frame.word_wrap = True
    sub.text_frame.text = plain(case_line)
    p = sub.text_frame.add_paragraph()
    p.text = plain(f"{' → '.join(labels)} · Failure Lens · {datetime.date.today().isoformat()}")

    verdicts = slide(f"The verdict of every {who}: {case_line}")
    table = verdicts.shapes.add_table(len(labels) + 1, 5, Inches(0.6), Inches(1.5), Inches(12.1),
                                      Inches(0.5) * (len(labels) + 1)).table
    for j, (head, width) in enumerate(((who, 2.6), ("verdict", 3.4), ("says", 2.4), ("p", 1.5), ("Δℓ", 2.2))):
        table.columns[j].width = Inches(width)
        table.cell(0, j).text = head
    for i, label in enumerate(labels, start=1):
        r = by_label.get(label)
        cells = [label, r.verdict if r else "not scored", repr(r.top1.text) if r and r.top1 else "–",
                 f"{r.p_top1:.2f}" if r and r.p_top1 is not None else "–",
                 f"{r.delta:+.2f}" if r and r.delta is not None else "–"]
        for j, text in enumerate(cells):
            cell = table.cell(i, j)
            cell.text = plain(text)
            for para in cell.text_frame.paragraphs:
                for run in para.runs:
                    run.font.size = Pt(16)
                    run.font.bold = j == 1
        first = table.cell(i, 0)
        first.fill.solid()
        first.fill.fore_color.rgb = _rgb(colours.get(label, "#888888"))
        for para in first.text_frame.paragraphs:
            for run in para.runs:
                run.font.color.rgb = _rgb("#ffffff")

    heat = slide(f"Which tokens push toward the wrong answer, {who} by {who}")
    chart = figures.titled(aligned.strip_chart(strip), strip.title, [f"One row per {who}, in order"])
    width = int(Inches(5.9) * 16 / 9)  # a 16:9 picture 5.9 in tall, below the title
    heat.shapes.add_picture(io.BytesIO(figures.png_16x9(chart)), int((prs.slide_width - width) / 2), Inches(1.3),
                            width=width)
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
