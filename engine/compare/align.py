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


# ---- several rows (one per model or checkpoint) --------------------------------------------------------------

@dataclass(frozen=True)
class RowGroup:
    """One column of a row-over-row alignment: a char span and, per row, its tokens and their summed relevance."""

    start: int
    end: int
    label: str  # the covered text; for an empty-span group the shared token label (one '<bos>', not one per row)
    tokens: tuple[tuple[int, ...], ...]  # [rows] token indices of each row in this group
    sums: tuple[float, ...]  # [rows] summed raw relevance (0.0 where a row has no token here)

    @property
    def empty(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True)
class RowAlignment:
    """Several tokenisations of one text on shared columns (see `align_rows`)."""

    text: str
    groups: tuple[RowGroup, ...]
    labels: tuple[tuple[str, ...], ...]  # [rows][tokens] display strings

    def maxima(self) -> list[float]:
        """[rows] max |group sum| over text groups (empty-span groups such as BOS left out, as in `align_tokens`)."""
        return [max((abs(g.sums[r]) for g in self.groups if not g.empty), default=0.0) for r in range(len(self.labels))]

    def values(self, scale: str = "row") -> list[list[float]]:
        """[rows][groups] colour values: group sum / the row's own maximum ("row"), or / the largest maximum of
        all rows ("shared": rows keep their relative size, in units of the objective). May exceed ±1 on an
        empty-span group; renderers clip."""
        if scale not in ("row", "shared"):
            raise FailureLensError(f"Unknown colour scale {scale!r}; use 'row' or 'shared'.")
        maxima = self.maxima()
        shared = max(maxima, default=0.0)
        return [[g.sums[r] / d if (d := (maxima[r] if scale == "row" else shared)) > 0 else 0.0 for g in self.groups]
                for r in range(len(self.labels))]

    def diff(self, a: int, b: int, scale: str = "row") -> list[float]:
        """[groups] row a − row b of `values(scale)`."""
        v = self.values(scale)
        return [x - y for x, y in zip(v[a], v[b])]

    def table(self, names: Sequence[str], scale: str = "row") -> pd.DataFrame:
        """One row per (group, row): group, start, end, text, row, tokens, relevance (raw sum), colour_value."""
        v = self.values(scale)
        rows = [{"group": i, "start": g.start, "end": g.end, "text": g.label, "row": names[r],
                 "tokens": "|".join(self.labels[r][t] for t in g.tokens[r]) or "—", "relevance": g.sums[r],
                 "colour_value": v[r][i]} for i, g in enumerate(self.groups) for r in range(len(names))]
        return pd.DataFrame(rows, columns=["group", "start", "end", "text", "row", "tokens", "relevance",
                                           "colour_value"])


def align_rows(text: str, offsets: Sequence[Offsets], relevance: Sequence[Optional[Sequence[float]]],
               labels: Sequence[Optional[Sequence[str]]]) -> RowAlignment:
    """Map several token sequences of `text` onto shared columns: the overlap components of all rows' non-empty
    spans (as `align_tokens` does for two), and one column per empty-span token kind at each place — the k-th
    '<bos>' of every row shares one column, so BOS appears once however many rows there are.

    offsets / relevance / labels: one entry per row, each [tokens] (relevance None -> zeros; labels None -> the
    text of each span).
    """
    if not (len(offsets) == len(relevance) == len(labels)) or not offsets:
        raise FailureLensError("align_rows needs at least one row and the same number of offsets, relevance and "
                               "label lists.")
    n = len(offsets)
    lab = []
    for r, (offs, rel, la) in enumerate(zip(offsets, relevance, labels)):
        _check(f"row {r}", text, offs, rel, la)
        lab.append(tuple(la) if la is not None else tuple(text[s:e] if e > s else "∅" for s, e in offs))
    # text columns: overlap components of every row's non-empty spans
    spans = sorted((s, e, r, i) for r, offs in enumerate(offsets) for i, (s, e) in enumerate(offs) if e > s)
    cols: list[list] = []  # [start, end, per-row token lists]
    for s, e, r, i in spans:
        if not cols or s >= cols[-1][1]:
            cols.append([s, e, [[] for _ in range(n)]])
        cols[-1][1] = max(cols[-1][1], e)
        cols[-1][2][r].append(i)
    keyed = [((s, 1, 0), s, e, text[s:e], toks) for s, e, toks in cols]
    # empty-span columns: key (place, label, k-th of that label there); ordered by the first row's token index
    empty: dict[tuple[int, str, int], list] = {}
    for r, offs in enumerate(offsets):
        seen: dict[tuple[int, str], int] = {}
        for p, i in _anchors(offs, len(text)):
            k = seen.get((p, lab[r][i]), 0)
            seen[(p, lab[r][i])] = k + 1
            empty.setdefault((p, lab[r][i], k), [i, [[] for _ in range(n)]])[1][r].append(i)
    keyed += [((p, 0, first), p, p, name, toks) for (p, name, _k), (first, toks) in empty.items()]
    keyed.sort(key=lambda x: x[0])

    def total(r: int, idx: list[int]) -> float:
        return sum(float(relevance[r][i]) for i in idx) if relevance[r] is not None else 0.0

    groups = tuple(RowGroup(s, e, name, tuple(tuple(sorted(t)) for t in toks),
                            tuple(total(r, t) for r, t in enumerate(toks))) for _key, s, e, name, toks in keyed)
    return RowAlignment(text, groups, tuple(lab))


def align_attribution_rows(text: str, atts: Sequence[Attribution]) -> RowAlignment:
    """`align_rows` for heatmaps of the same prompt `text` (each from `engine.attribute`, any models)."""
    for k, att in enumerate(atts):
        if len(att.offsets) != len(att.tokens) or (text.strip() and all(e <= s for s, e in att.offsets)):
            raise FailureLensError(f"heatmap {k + 1} has no character offsets (slow tokenizer?); load the model's "
                                   "fast tokenizer so its tokens can be aligned.")
    return align_rows(text, [a.offsets for a in atts], [a.relevance for a in atts], [a.tokens for a in atts])
