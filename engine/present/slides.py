"""Slide plumbing shared by every deck (case, comparison, set view, study): a 16:9 presentation, the cover, a
title-only slide, a centred 16:9 picture and the table of models or checkpoints in their colours."""
from __future__ import annotations

import io
from typing import Any, Sequence


def widescreen() -> Any:
    """An empty python-pptx Presentation at 13.333 × 7.5 inches (16:9)."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    return prs


def titled_slide(prs: Any, title: str, *, size: int = 30,
                 box: tuple[float, float, float, float] = (0.5, 0.25, 12.3, 0.95), notes: str = "") -> Any:
    """A title-only slide; `title` and `notes` are untrusted text (made plain); box = left, top, width, height (in)."""
    from pptx.util import Inches, Pt

    from engine.present.deck import plain

    sl = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    t = sl.shapes.title
    t.text = plain(title)
    t.left, t.top, t.width, t.height = (Inches(v) for v in box)
    for p in t.text_frame.paragraphs:
        for r in p.runs:
            r.font.size = Pt(size)
    if notes:
        sl.notes_slide.notes_text_frame.text = plain(notes)
    return sl


def rgb(colour: str) -> Any:
    """python-pptx colour of "#rrggbb" (grey for anything else)."""
    from pptx.dml.color import RGBColor

    c = colour.lstrip("#")
    return RGBColor(int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) if len(c) == 6 else RGBColor(0x88, 0x88, 0x88)


def cover(prs: Any, title: str, lines: Sequence[str]) -> Any:
    """The opening slide: `title`, then `lines` as paragraphs below it (untrusted text, made plain)."""
    from engine.present.deck import plain

    sl = prs.slides.add_slide(prs.slide_layouts[0])
    sl.shapes.title.text = plain(title)
    frame = sl.placeholders[1].text_frame
    frame.word_wrap = True
    frame.text = plain(lines[0])
    for line in lines[1:]:
        frame.add_paragraph().text = plain(line)
    return sl


def picture(prs: Any, sl: Any, png: bytes, top: int, height: int) -> None:
    """A 16:9 picture `height` tall (EMU), centred on the slide at `top`, at most 12.3 inches wide."""
    from pptx.util import Inches

    width = min(Inches(12.3), int(height * 16 / 9))
    sl.shapes.add_picture(io.BytesIO(png), int((prs.slide_width - width) / 2), top, width=width)


def coloured_table(sl: Any, heads: Sequence[tuple[str, float]], rows: Sequence[Sequence[str]],
                   colours: Sequence[str], top: int, row_height: int) -> Any:
    """A table of one row per model or checkpoint: `heads` = (column title, width in inches); each row's first
    cell filled with its colour (white text), the second in bold, 16 pt; cell text made plain."""
    from pptx.util import Inches, Pt

    from engine.present.deck import plain

    table = sl.shapes.add_table(len(rows) + 1, len(heads), Inches(0.6), top, Inches(12.1),
                                row_height * (len(rows) + 1)).table
    for j, (head, width) in enumerate(heads):
        table.columns[j].width = Inches(width)
        table.cell(0, j).text = head
    for i, (row, colour) in enumerate(zip(rows, colours), start=1):
        for j, text in enumerate(row):
            cell = table.cell(i, j)
            cell.text = plain(text)
            for run in (r for p in cell.text_frame.paragraphs for r in p.runs):
                run.font.size = Pt(16)
                run.font.bold = j == 1
                if j == 0:
                    run.font.color.rgb = rgb("#ffffff")
        first = table.cell(i, 0)
        first.fill.solid()
        first.fill.fore_color.rgb = rgb(colour)
    return table
