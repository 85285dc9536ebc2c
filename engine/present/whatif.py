"""What if? heatmaps before and after an edit, row over row with a difference row (the Scaling page's aligned
rows: engine.compare.align.align_rows and engine.present.aligned.build_strip).

Both prompts have one token per position (an edit swaps a token, it never adds or drops one), so the rows share
their columns: the columns are laid out on the original tokens' text (special tokens as empty spans, one shared
'<bos>'), and an edited column reads "old→new". Difference row: after − before of the per-row scaled values
(red: the token leans more towards the wrong answer after the edit).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from engine.compare.align import align_rows
from engine.present.aligned import Strip, build_strip

NAMES = ("before", "after")
WINDOW = 240  # at most this many token columns are drawn: a long prompt shows the part around its edits
NOTE = ("Difference row: after − before, each row on its own colour scale; red = leans more towards the wrong "
        "answer after the edit.")


def _layout(tokens: list[str], special: list[bool]) -> tuple[str, list[tuple[int, int]]]:
    """A text of the ordinary tokens one after another, and each token's span in it (specials: empty spans)."""
    text, spans = "", []
    for t, s in zip(tokens, special):
        if s:
            spans.append((len(text), len(text)))
        else:
            spans.append((len(text), len(text) + len(t)))
            text += t
    return text, spans


def whatif_strip(tokens: Sequence[str], special: Sequence[bool], before: Sequence[float], after: Sequence[float],
                 tokens_after: Sequence[str], changed: Sequence[int], scale: str = "row", title: str = "") -> Strip:
    """Rows 'before', 'after' and 'after − before' over the original's token columns; edited columns 'old→new'.

    tokens / special / before: [tokens] the original prompt and its relevance; after / tokens_after: [tokens] the
    edited prompt's relevance and token texts (saved results of a case file work as well as live heatmaps)."""
    text, spans = _layout(list(tokens), list(special))
    al = align_rows(text, [spans, spans], [list(before), list(after)], [list(tokens), list(tokens)])
    strip = build_strip(al, NAMES, scale=scale, diff=(1, 0), title=title, notes=(NOTE,))
    edited = set(changed)
    columns = []
    for g, label in zip(al.groups, strip.columns):
        toks = g.tokens[0]
        if any(t in edited for t in toks):
            label = "".join(tokens[t] for t in toks) + "→" + "".join(tokens_after[t] for t in toks)
        columns.append(label)
    return dataclasses.replace(strip, columns=tuple(columns))


def window(n: int, changed: Sequence[int], width: int = WINDOW) -> tuple[int, int]:
    """[lo, hi) of at most `width` token positions of an n-token prompt, centred on the edited positions (the
    first `width` when nothing changed); the whole prompt when it is short enough."""
    if n <= width:
        return 0, n
    first, last = (min(changed), max(changed)) if changed else (0, 0)
    lo = max(0, min((first + last) // 2 - width // 2, n - width))
    return lo, lo + width
