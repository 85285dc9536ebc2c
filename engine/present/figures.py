"""Slide-ready figures: a title (model, case, 'wrong' vs 'right'), a legend in words, a 16:9 canvas, a file name.

`FigureContext` says what a figure shows; `slide_chart` puts its words on an altair chart; `png_16x9` / `svg_16x9`
render it onto a 16:9 canvas (white margins, the chart itself is never stretched); `crop_window` keeps long
prompts readable by showing the window of tokens that holds the most relevance, with a note saying so.
Token texts reach Vega only as title / subtitle strings (drawn as text, never parsed as markup or expressions).
"""
from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass
from typing import Optional, Sequence

import altair as alt
import numpy as np

from engine.present.text import visible

ASPECT = 16 / 9
MAX_TOKENS = 96  # token chart: 6 rows of 16
MAX_LAYER_TOKENS = 48  # layers chart columns


@dataclass(frozen=True)
class FigureContext:
    """What a figure shows. model: a label such as "zoo:l"; case: "l/eval-math-00014" or "" (own prompt)."""

    model: str
    case: str
    target: str
    contrast: Optional[str]
    headline: str = ""  # the summary's first sentence (engine.present.summary)

    @property
    def versus(self) -> str:
        t = f"'{visible(self.target)}'"
        return f"{t} vs '{visible(self.contrast)}'" if self.contrast is not None else t

    @property
    def title(self) -> str:
        return " · ".join(x for x in (self.model, self.case or "own prompt", self.versus) if x)

    @property
    def legend(self) -> str:
        red = f"red: supports '{visible(self.target)}' (the wrong answer)"
        if self.contrast is None:
            return red + " · blue: works against it"
        return f"{red} · blue: supports '{visible(self.contrast)}' (the right answer)"

    def file_name(self, view: str, ext: str) -> str:
        """zoo-l_eval-math-00014_heatmap.png: model, case and view, safe on every file system."""
        case = self.case.rpartition("/")[2] or "own-prompt"
        parts = [_slug(self.model), _slug(case), _slug(view)]
        return "_".join(p for p in parts if p)[:150] + f".{ext}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")[:60]


def _wrap(lines: Sequence[str], width: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width) or [""]
    return out


def titled(chart: alt.TopLevelMixin, title: str, subtitle: Sequence[str] = (), scale: float = 1.0) -> alt.TopLevelMixin:
    """Any chart with a title and subtitle lines wrapped to its width (for the Scaling / Evolution / sweep charts,
    whose figures show several models or cases rather than one case)."""
    width = chart.to_dict().get("width")
    chars = max(70, int((width if isinstance(width, (int, float)) else 600) / (6.5 * scale)))
    return chart.properties(title=alt.TitleParams(
        text=title, subtitle=_wrap(list(subtitle), chars), anchor="start", fontSize=round(18 * scale),
        subtitleFontSize=round(13 * scale), subtitleColor="#333", offset=round(12 * scale)))


def slide_chart(chart: alt.TopLevelMixin, ctx: FigureContext, view: str, notes: Sequence[str] = (),
                scale: float = 1.0, colours: bool = True) -> alt.TopLevelMixin:
    """The chart with a title (ctx.title), and below it the view, the legend in words (colours: the chart uses
    red / blue for the two answers), the headline and notes."""
    first = f"{view} — {ctx.legend}" if colours else view
    return titled(chart, ctx.title, [first, *([ctx.headline] if ctx.headline else []), *notes], scale)


def crop_window(relevance: Sequence[float], shown: Sequence[bool], size: int) -> tuple[list[bool], str]:
    """[tokens] mask of at most `size` shown tokens: the contiguous window of shown tokens with the largest sum |R|.

    Returns (mask, note); the note is "" when nothing was cropped."""
    idx = [i for i, on in enumerate(shown) if on]
    if len(idx) <= size:
        return list(shown), ""
    mass = np.abs(np.asarray(relevance, dtype=np.float64)[idx])
    sums = np.convolve(mass, np.ones(size), mode="valid")  # [len(idx) - size + 1] window sums
    start = int(sums.argmax())
    keep = set(idx[start:start + size])
    share = float(sums[start] / mass.sum()) if mass.sum() > 0 else 0.0
    note = (f"Long prompt: showing tokens {idx[start]}–{idx[start + size - 1]} of {len(shown)}, the window that "
            f"holds the most relevance ({100 * share:.0f} % of |R|); the HTML export has every token.")
    return [i in keep for i in range(len(shown))], note


def _pad_box(w: int, h: int) -> tuple[int, int]:
    """Smallest 16:9 canvas holding a w x h picture."""
    return (w, round(w / ASPECT)) if w / h >= ASPECT else (round(h * ASPECT), h)


def png_16x9(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """PNG of the chart centred on a white 16:9 canvas."""
    import vl_convert as vlc
    from PIL import Image

    img = Image.open(io.BytesIO(vlc.vegalite_to_png(chart.to_dict(), scale=scale))).convert("RGB")
    w, h = _pad_box(*img.size)
    canvas = Image.new("RGB", (w, h), "white")
    canvas.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


_ROOT = re.compile(r'<svg([^>]*?) width="([\d.]+)" height="([\d.]+)" viewBox="([^"]*)"')


def svg_16x9(chart: alt.TopLevelMixin) -> str:
    """SVG of the chart whose canvas (width, height, viewBox) is widened to 16:9, the drawing centred."""
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(chart.to_dict())
    m = _ROOT.search(svg)
    if m is None:  # an unexpected root: keep vl-convert's own canvas
        return svg
    w, h = float(m.group(2)), float(m.group(3))
    W, H = _pad_box(w, h)
    x0, y0 = -(W - w) / 2, -(H - h) / 2
    root = (f'<svg{m.group(1)} width="{W:g}" height="{H:g}" viewBox="{x0:g} {y0:g} {W:g} {H:g}">'
            f'<rect x="{x0:g}" y="{y0:g}" width="{W:g}" height="{H:g}" fill="white"/>')
    return svg[:m.start()] + root + svg[m.end():]
