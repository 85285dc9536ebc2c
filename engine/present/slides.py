"""Slide plumbing shared by every deck (case, comparison, study): a 16:9 presentation and a title-only slide."""
from __future__ import annotations

from typing import Any


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
