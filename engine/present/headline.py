"""The headline of a comparison as HTML cards: one per model, in its palette colour, saying its verdict on the
case at hand (or "fixed k of n" over several cases). Built from the same verdict rows as the table and the bars,
so they cannot disagree. All text is escaped."""
from __future__ import annotations

import html
from typing import Sequence

from engine.compare import verdicts as V
from engine.present import palette


def verdict_cards(rows: Sequence[V.ModelVerdict], models: Sequence[str], single: bool, series: bool = False,
                  font_scale: float = 1.0) -> str:
    """A wrapping row of cards. single: one case (each card: the verdict, the top-1 token and Δℓ); else
    'fixed k of n' per model with the other verdicts' counts below."""
    colours = palette.ordered(list(models)) if series else palette.colours(list(models))
    counts = V.counts(rows, models)
    cards = []
    for m in models:
        mine = [r for r in rows if r.model == m]
        if single and mine:
            r = mine[0]
            value = r.verdict
            detail = (f"says {r.top1.text!r} · p {r.p_top1:.2f} · Δℓ {r.delta:+.2f}" if r.top1 is not None
                      else r.notes)
        else:
            value = V.headline(counts, m)
            n = {v: int(counts[(counts["model"] == m) & (counts["verdict"] == v)]["count"].sum()) for v in V.VERDICTS}
            detail = f"still wrong {n[V.STILL_WRONG]} · different {n[V.DIFFERENT]}" + \
                (f" · not scored {n[V.NOT_SCORED]}" if n[V.NOT_SCORED] else "")
        cards.append(
            f'<div class="fl-card" data-model="{html.escape(m, quote=True)}"'
            f' data-value="{html.escape(value, quote=True)}"'
            f' style="border:1px solid #ddd;border-left:.45em solid {colours[m]};border-radius:6px;padding:.35em .7em;'
            f'min-width:11em">'
            f'<div style="font-size:.85em;color:#555">{html.escape(m)}</div>'
            f'<div style="font-size:1.35em;font-weight:600;line-height:1.3">{html.escape(value)}</div>'
            f'<div style="font-size:.8em;color:#555">{html.escape(detail)}</div></div>')
    return (f'<div class="fl-cards" style="display:flex;flex-wrap:wrap;gap:.6em;margin:.3em 0 .6em 0;'
            f'font-family:system-ui,sans-serif;font-size:{font_scale:.2f}em">{"".join(cards)}</div>')
