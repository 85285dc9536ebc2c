"""Aligning two tokenisations of the same text, for side-by-side heatmaps of models with different tokenizers.

Groups (the alignment rule):
- Every token with a non-empty character span [start, end) lies wholly inside exactly one group. Groups are the
  smallest character spans with that property for the tokens of both sides together: tokens whose spans overlap
  (share at least one character), on either side, are in the same group, and groups are closed under that.
  So a token of A that straddles a boundary of B merges the B tokens on both sides of it (and vice versa).
  Touching spans ("ab" [0,2) and "cd" [2,4)) do not merge.
- A group can hold tokens of one side only: characters that one tokenizer covers and the other skips (e.g. a
  space dropped by a whitespace pre-tokenizer). The other side then has no tokens and relevance 0 there.
- Tokens with an empty span (start == end: BOS, EOS, template tokens added by the tokenizer) are placed just
  before the next text token of their side (or at the end). There, an empty-span token of A and one of B with
  the same label (two `<bos>`) share a group, paired in order; any other empty-span token is a group alone.

Relevance per group: the sum of that side's token relevance, divided by the side's max |R| over its text tokens
(empty-span tokens are left out of the max, as segment relevance leaves out special tokens: a BOS attention
sink would otherwise flatten the text). Each side is then in [-k, k] for a group of k tokens, the two sides are
comparable although the models' logit scales differ, and `diff` = A − B of the normalised sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd

from ..records import Attribution, FailureLensError

Offsets = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class AlignedGroup:
    start: int  # char span [start, end) in the text; start == end for an empty-span token
    end: int
    text: str
    tokens_a: tuple[int, ...]  # token indices of side A in this group
    tokens_b: tuple[int, ...]
    relevance_a: float  # normalised sum (see module docstring); 0.0 without relevance
    relevance_b: float

    @property
    def diff(self) -> float:
        return self.relevance_a - self.relevance_b


@dataclass(frozen=True)
class Alignment:
    text: str
    groups: tuple[AlignedGroup, ...]
    labels_a: tuple[str, ...]  # one display string per token of A
    labels_b: tuple[str, ...]
    scale_a: float  # the max |R| each side was divided by (0.0: all zero or no relevance given)
    scale_b: float

    def table(self) -> pd.DataFrame:
        """How the tokens were aligned: one row per group, tokens of each side joined with '|'."""
        rows = [{
            "group": i, "start": g.start, "end": g.end, "text": g.text,
            "tokens_a": "|".join(self.labels_a[t] for t in g.tokens_a) or "—",
            "tokens_b": "|".join(self.labels_b[t] for t in g.tokens_b) or "—",
            "relevance_a": g.relevance_a, "relevance_b": g.relevance_b, "diff": g.diff,
        } for i, g in enumerate(self.groups)]
        return pd.DataFrame(rows, columns=["group", "start", "end", "text", "tokens_a", "tokens_b",
                                           "relevance_a", "relevance_b", "diff"])


def _check(name: str, text: str, offsets: Offsets, relevance: Optional[Sequence[float]],
           labels: Optional[Sequence[str]]) -> None:
    for s, e in offsets:
        if not 0 <= s <= e <= len(text):
            raise FailureLensError(f"token span ({s}, {e}) of side {name} is outside the text ({len(text)} "
                                   "characters): the offsets belong to another text.")
    for what, seq in (("relevance values", relevance), ("labels", labels)):
        if seq is not None and len(seq) != len(offsets):
            raise FailureLensError(f"side {name} has {len(offsets)} tokens but {len(seq)} {what}.")


def _scale(offsets: Offsets, relevance: Optional[Sequence[float]]) -> float:
    if relevance is None:
        return 0.0
    return max((abs(float(r)) for (s, e), r in zip(offsets, relevance) if e > s), default=0.0)


def _text_groups(offsets_a: Offsets, offsets_b: Offsets) -> list[tuple[int, int, list[int], list[int]]]:
    """Overlap components of the non-empty spans of both sides: (start, end, tokens of A, tokens of B)."""
    spans = sorted((s, e, side, i) for side, offs in enumerate((offsets_a, offsets_b))
                   for i, (s, e) in enumerate(offs) if e > s)
    groups: list[tuple[int, int, list[int], list[int]]] = []
    for s, e, side, i in spans:
        if not groups or s >= groups[-1][1]:
            groups.append((s, e, [], []))
        start, end, a, b = groups[-1]
        (a if side == 0 else b).append(i)
        groups[-1] = (start, max(end, e), a, b)
    return [(s, e, sorted(a), sorted(b)) for s, e, a, b in groups]


def _anchors(offsets: Offsets, text_len: int) -> list[tuple[int, int]]:
    """(char position, token index) for each empty-span token: the start of the next text token of its side."""
    out, nxt = [], text_len
    for i in range(len(offsets) - 1, -1, -1):
        s, e = offsets[i]
        if e > s:
            nxt = s
        else:
            out.append((nxt, i))
    return out[::-1]


def align_tokens(
    text: str,
    offsets_a: Offsets,
    offsets_b: Offsets,
    relevance_a: Optional[Sequence[float]] = None,
    relevance_b: Optional[Sequence[float]] = None,
    labels_a: Optional[Sequence[str]] = None,
    labels_b: Optional[Sequence[str]] = None,
) -> Alignment:
    """Map two token sequences of `text` onto shared character groups (see the module docstring).

    offsets_*: [tokens] (start, end) char spans in `text`; relevance_*: [tokens] optional signed relevance;
    labels_*: [tokens] display strings for the table (default: the text of each span, '∅' when empty).
    """
    _check("A", text, offsets_a, relevance_a, labels_a)
    _check("B", text, offsets_b, relevance_b, labels_b)
    sa, sb = _scale(offsets_a, relevance_a), _scale(offsets_b, relevance_b)

    def norm(relevance, scale, idx):
        return sum(float(relevance[i]) for i in idx) / scale if relevance is not None and scale > 0 else 0.0

    def group(s, e, a, b):
        return AlignedGroup(s, e, text[s:e], tuple(a), tuple(b), norm(relevance_a, sa, a), norm(relevance_b, sb, b))

    def default_labels(offsets):
        return tuple(text[s:e] if e > s else "∅" for s, e in offsets)

    la = tuple(labels_a) if labels_a is not None else default_labels(offsets_a)
    lb = tuple(labels_b) if labels_b is not None else default_labels(offsets_b)
    # sort key: (char position, 0 for empty-span tokens so they come first there, side, index)
    keyed = [((s, 1, 0, 0), group(s, e, a, b)) for s, e, a, b in _text_groups(offsets_a, offsets_b)]
    for (p, i), j in _pair_empty(_anchors(offsets_a, len(text)), _anchors(offsets_b, len(text)), la, lb):
        keyed.append(((p, 0, 0, i), group(p, p, [i], [] if j is None else [j])))
    paired = {g.tokens_b[0] for _, g in keyed if g.start == g.end and g.tokens_a and g.tokens_b}
    keyed += [((p, 0, 1, j), group(p, p, [], [j])) for p, j in _anchors(offsets_b, len(text)) if j not in paired]
    keyed.sort(key=lambda kv: kv[0])
    return Alignment(text, tuple(g for _, g in keyed), la, lb, sa, sb)


def _pair_empty(anchors_a: list[tuple[int, int]], anchors_b: list[tuple[int, int]], labels_a: Sequence[str],
                labels_b: Sequence[str]) -> list[tuple[tuple[int, int], Optional[int]]]:
    """For each empty-span token of A: its B partner (same place, same label, first unused in order) or None."""
    free: dict[tuple[int, str], list[int]] = {}
    for p, j in anchors_b:
        free.setdefault((p, labels_b[j]), []).append(j)
    out = []
    for p, i in anchors_a:
        queue = free.get((p, labels_a[i]), [])
        out.append(((p, i), queue.pop(0) if queue else None))
    return out


def align_attributions(text: str, a: Attribution, b: Attribution) -> Alignment:
    """Align two heatmaps of the same prompt `text` (each from `engine.attribute`, possibly different models)."""
    for name, att in (("A", a), ("B", b)):
        if len(att.offsets) != len(att.tokens) or (text.strip() and all(e <= s for s, e in att.offsets)):
            raise FailureLensError(f"heatmap {name} has no character offsets (slow tokenizer?); load the model's "
                                   "fast tokenizer so its tokens can be aligned.")
    return align_tokens(text, a.offsets, b.offsets, a.relevance, b.relevance, a.tokens, b.tokens)
