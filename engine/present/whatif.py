"""What if? heatmaps before and after an edit, row over row with a difference row (the Scaling page's aligned
rows: engine.compare.align.align_rows and engine.present.aligned.build_strip).

Both prompts have one token per position (an edit swaps a token, it never adds or drops one), so the rows share
their columns: the columns are laid out on the original tokens' text (special tokens as empty spans, one shared
'<bos>'), and an edited column reads "old→new". Difference row: after − before of the per-row scaled values
(red: the token leans more towards the wrong answer after the edit).

`whatif_story` gathers what the case deck's and the case report's "What if?" slide shows (engine.present.deck):
the before -> after numbers, the sentence and the strip around the edits.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from engine.compare.align import align_rows
from engine.present.aligned import Strip, build_strip
from engine.present.text import visible

if TYPE_CHECKING:
    from engine.cases.whatif import WhatIf

NAMES = ("before", "after")
WINDOW = 240  # at most this many token columns are drawn: a long prompt shows the part around its edits
SLIDE_WINDOW = 48  # token columns on a slide (three blocks of the strip chart)
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


@dataclass(frozen=True)
class WhatIfStory:
    """The deck's and the report's "What if?" slide: numbers before -> after, the sentence, the aligned rows."""

    sentence: str
    rows: tuple[tuple[str, str, str, str], ...]  # (quantity, before, after, change)
    strip: Strip  # around the edits, at most WINDOW columns (the report)
    slide_strip: Strip  # around the edits, at most SLIDE_WINDOW columns (the slide picture)
    edits: tuple[str, ...]  # the edit specs, in order
    flipped: bool


def whatif_rows(w: "WhatIf") -> tuple[tuple[str, str, str, str], ...]:
    """(quantity, before, after, change) for the top-1 token, p(target), p(contrast) and Δℓ."""
    b, a = w.before, w.after
    return (("Top answer", f"'{visible(b.top1)}'", f"'{visible(a.top1)}'", "flips" if w.flipped else "unchanged"),
            (f"p('{visible(w.target)}'), wrong answer", f"{b.p_target:.1%}", f"{a.p_target:.1%}",
             f"{100 * (a.p_target - b.p_target):+.1f} pts"),
            (f"p('{visible(w.contrast)}'), right answer", f"{b.p_contrast:.1%}", f"{a.p_contrast:.1%}",
             f"{100 * (a.p_contrast - b.p_contrast):+.1f} pts"),
            ("Logit gap (Δℓ)", f"{b.logit_diff:+.3f}", f"{a.logit_diff:+.3f}", f"{a.logit_diff - b.logit_diff:+.3f}"))


def _cropped(tokens, special, before, after, w: "WhatIf", width: int, title: str) -> Strip:
    lo, hi = window(len(tokens), w.changed, width)
    notes = (NOTE,) if (lo, hi) == (0, len(tokens)) else \
        (NOTE, f"Tokens {lo}–{hi - 1} of {len(tokens)}, around the edits (each row scaled over these tokens).")
    strip = whatif_strip(tokens[lo:hi], special[lo:hi], before[lo:hi], after[lo:hi], w.tokens[lo:hi],
                         [c - lo for c in w.changed if lo <= c < hi], title=title)
    return dataclasses.replace(strip, notes=notes)


def whatif_story(w: "WhatIf", tokens: Sequence[str], special: Sequence[bool], before: Sequence[float],
                 after: Sequence[float], title: str = "") -> WhatIfStory:
    """What the slide shows. tokens / special / before: [tokens] the original prompt and its relevance; after:
    [tokens] the edited prompt's relevance (engine.cases.whatif.edited_attribution)."""
    if not len(tokens) == len(special) == len(before) == len(after) == len(w.tokens):
        raise ValueError(f"{len(tokens)} tokens, but {len(before)} / {len(after)} relevance values and "
                         f"{len(w.tokens)} edited tokens")
    args = (list(tokens), list(special), list(before), list(after), w)
    return WhatIfStory(w.sentence, whatif_rows(w), _cropped(*args, WINDOW, title),
                       _cropped(*args, SLIDE_WINDOW, title), tuple(w.edits), w.flipped)


# ---------------------------------------------------------------- text edits (the two prompts tokenized apart)
def _shift(x: int, first: bool, at: int, by: int) -> int:
    """A character position of one prompt in the shared layout: moved by `by` from `at` on (a token's first
    character at `at` moves; its end at `at` stays)."""
    return x if (x < at if first else x <= at) else x + by


def text_strip(prompt: str, start: int, end: int, new: str, before: tuple, after: tuple, changed: Sequence[int],
               scale: str = "row", title: str = "", width: int = WINDOW) -> Strip:
    """Rows 'before', 'after' and 'after − before' of a text edit (prompt[start:end] -> new), whose two prompts
    have their own tokens. before / after: (tokens, offsets, special, relevance), each [tokens]; changed: [after
    tokens] the edited ones. The columns are laid out on prompt[:end] + new + prompt[end:] (the old and the new
    text side by side), so each row's tokens keep their own text; columns of the edit read "old→new". A prompt of
    more than `width` tokens: the characters around the edit."""
    text = prompt[:end] + new + prompt[end:]
    rows = []
    for (toks, offs, special, rel), at, by in ((before, end, len(new)), (after, start, end - start)):
        spans = []
        for (a, b), sp in zip(offs, special):  # a special token: an empty span where it stands
            first = _shift(a, True, at, by)
            spans.append((first, first) if sp else (first, max(first, _shift(b, False, at, by))))
        rows.append((list(toks), spans, list(rel)))
    edit_lo, edit_hi = start, end + len(new)  # the edit's characters in the shared text
    hit_b = [i for i, (a, b) in enumerate(rows[0][1]) if a < max(edit_hi, edit_lo + 1) and b > edit_lo]
    lo_c, hi_c = 0, len(text)
    if max(len(rows[0][0]), len(rows[1][0])) > width:  # long prompts: the characters around the edit
        lo, hi = window(len(rows[0][0]), hit_b, max(8, width - 16))
        lo_c, hi_c = rows[0][1][lo][0], max(rows[0][1][hi - 1][1], edit_hi)
    keep = [[i for i, (a, b) in enumerate(spans) if lo_c <= a and b <= hi_c] for _, spans, _ in rows]
    al = align_rows(text, [[rows[r][1][i] for i in keep[r]] for r in (0, 1)],
                    [[rows[r][2][i] for i in keep[r]] for r in (0, 1)],
                    [[rows[r][0][i] for i in keep[r]] for r in (0, 1)])
    notes = [NOTE] + ([f"Characters {lo_c}–{hi_c} around the edit (each row scaled over them)."]
                      if (lo_c, hi_c) != (0, len(text)) else [])
    strip = build_strip(al, NAMES, scale=scale, diff=(1, 0), title=title, notes=notes)
    edited_a, edited_b = set(changed), set(hit_b)
    columns = []
    for g, label in zip(al.groups, strip.columns):
        tb, ta = ([keep[r][t] for t in g.tokens[r]] for r in (0, 1))
        if any(t in edited_b for t in tb) or any(t in edited_a for t in ta):
            label = "".join(before[0][t] for t in tb) + "→" + "".join(after[0][t] for t in ta)
        columns.append(label)
    return dataclasses.replace(strip, columns=tuple(columns))


def text_story(w: "WhatIf", prompt: str, before: tuple, after: tuple, title: str = "") -> WhatIfStory:
    """`whatif_story` of a text edit (w.edits: one 'tx:' spec). before / after as in `text_strip`."""
    from engine.cases.whatif import Edit

    e = Edit.parse(w.edits[0])
    strips = [text_strip(prompt, e.position, e.end, e.word, before, after, w.changed, title=title, width=n)
              for n in (WINDOW, SLIDE_WINDOW)]
    return WhatIfStory(w.sentence, whatif_rows(w), *strips, tuple(w.edits), w.flipped)
