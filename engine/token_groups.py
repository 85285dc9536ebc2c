"""Token groups: coarse views of a long prompt (words, lines, sentences, segments, fixed windows).

A grouping is a partition of the token positions 0..T-1 into contiguous runs, so a group is a span
[start, end) and the groups in order cover every token exactly once. Sums over groups are therefore exact
re-arrangements of sums over tokens: Σ_g R_g = Σ_t R_t (up to float64 rounding of the re-association).

Boundaries (one rule per kind, on the text each token covers up to the next token's start, its "piece"):
  words      a new group starts where a piece ends in whitespace or the next piece starts with it
  lines      a group ends after a piece that holds a line break
  sentences  as lines, and also after a piece ending (whitespace aside) in . ! ? or …
  segments   a group ends where the segment label (Instruction / Query / Answer / Special) changes
  windows    every `window` tokens
Every kind except "tokens" also gives special tokens (BOS, template markers) and the last token (where the
prediction is read) a group of their own: a sink token never hides inside a line, and the graph's output
node stays one node.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

KINDS = {"tokens": "Tokens", "words": "Words", "lines": "Lines", "sentences": "Sentences",
         "segments": "Segments", "windows": "Fixed windows"}
SHORT_PROMPT = 300  # up to this many tokens the first view is token by token
MAX_GROUPS = 400  # a default grouping with more groups than this is not an overview
_SENTENCE_END = re.compile(r"[.!?…。！？]\s*$")


@dataclass(frozen=True)
class Grouping:
    """starts: [groups] first token of each group (starts[0] == 0, strictly increasing); ends follow.

    texts: [groups] the text each group covers (untrusted prompt text: escape it wherever it is shown).
    """

    kind: str
    starts: tuple[int, ...]
    n_tokens: int
    texts: tuple[str, ...]

    @property
    def n_groups(self) -> int:
        return len(self.starts)

    @property
    def ends(self) -> tuple[int, ...]:
        return self.starts[1:] + (self.n_tokens,)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends))

    def size(self, g: int) -> int:
        return self.ends[g] - self.starts[g]

    def group_of(self) -> np.ndarray:
        """int64 [tokens] the group index of every token."""
        return np.repeat(np.arange(self.n_groups), np.diff(np.asarray(self.starts + (self.n_tokens,))))

    def find(self, token: int) -> int:
        """The group holding `token`."""
        return int(np.searchsorted(np.asarray(self.starts), token, side="right") - 1)


def pieces(text: str, offsets: Sequence[tuple[int, int]], tokens: Sequence[str]) -> list[str]:
    """[tokens] the text of each token up to the next token's start (gaps go to the token before them).

    Falls back to the display tokens when the offsets are missing or do not fit the text (slow tokenizers).
    """
    usable = len(offsets) == len(tokens) and any(e > s for s, e in offsets) and max(e for _, e in offsets) <= len(text)
    if not usable:
        return [str(t) for t in tokens]
    real = [i for i, (s, e) in enumerate(offsets) if e > s]
    out = [""] * len(offsets)  # an inserted special token covers no text
    for i, j in zip(real, real[1:] + [None]):
        s, e = offsets[i]
        out[i] = text[s:len(text) if j is None else max(e, offsets[j][0])]
    return out


def _breaks(kind: str, piece: list[str], labels: Optional[Sequence[str]], window: int) -> np.ndarray:
    """bool [tokens]: True where a new group starts (before that token)."""
    n = len(piece)
    new = np.zeros(n, dtype=bool)
    if kind == "tokens":
        new[:] = True
    elif kind == "words":
        for i in range(1, n):
            new[i] = piece[i - 1][-1:].isspace() or piece[i][:1].isspace() or not piece[i - 1] or not piece[i]
    elif kind in ("lines", "sentences"):
        for i in range(1, n):
            p = piece[i - 1]
            ends = kind == "sentences" and bool(_SENTENCE_END.search(p)) and not piece[i].isspace()
            new[i] = "\n" in p or ends  # a bare line break after "." stays with its sentence
    elif kind == "segments":
        if labels is None or len(labels) != n:
            raise ValueError(f"segments need one label per token ({n}), got {None if labels is None else len(labels)}")
        new[1:] = [labels[i] != labels[i - 1] for i in range(1, n)]
    elif kind == "windows":
        new[::max(1, int(window))] = True
    else:
        raise ValueError(f"unknown grouping {kind!r}; use one of {', '.join(KINDS)}")
    if n:
        new[0] = True
    return new


def group_tokens(kind: str, piece: Sequence[str], special: Sequence[bool] = (),
                 labels: Optional[Sequence[str]] = None, window: int = 64) -> Grouping:
    """The grouping of one kind (rules in the module docstring).

    piece: [tokens] from `pieces`; special: [tokens] special-token flags; labels: [tokens] segment names
    (needed for "segments", e.g. from engine.cases.segments.assign_segments); window: tokens per window.
    """
    piece = list(piece)
    n = len(piece)
    new = _breaks(kind, piece, labels, window)
    if kind != "tokens" and n:
        for i, sp in enumerate(special or ()):
            if sp:  # alone: a break before it and after it
                new[i] = True
                if i + 1 < n:
                    new[i + 1] = True
        new[n - 1] = True
    starts = tuple(int(i) for i in np.flatnonzero(new))
    ends = starts[1:] + (n,)
    return Grouping(kind, starts, n, tuple("".join(piece[s:e]) for s, e in zip(starts, ends)))


def auto_window(n_tokens: int, target_groups: int = 64) -> int:
    """A power of two (at least 16) that cuts n tokens into about `target_groups` windows."""
    return max(16, 2 ** math.ceil(math.log2(max(1.0, n_tokens / target_groups))))


def default_kind(n_tokens: int, piece: Sequence[str], special: Sequence[bool] = ()) -> str:
    """The first view's grouping: tokens up to SHORT_PROMPT tokens; beyond, lines or else sentences when they
    cut the prompt into at least 8 groups, none holding more than a quarter of it, and at most MAX_GROUPS;
    else fixed windows."""
    if n_tokens <= SHORT_PROMPT:
        return "tokens"
    for kind in ("lines", "sentences"):
        g = group_tokens(kind, piece, special)
        largest = max(np.diff(np.asarray(g.starts + (g.n_tokens,))))
        if 8 <= g.n_groups <= MAX_GROUPS and largest <= n_tokens / 4:
            return kind
    return "windows"


def group_sum(values: np.ndarray | Sequence[float], grouping: Grouping) -> np.ndarray:
    """float64 [..., groups]: `values` [..., tokens] summed over each group's tokens (last axis)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[-1] != grouping.n_tokens:
        raise ValueError(f"{v.shape[-1]} values for a grouping of {grouping.n_tokens} tokens")
    if grouping.n_tokens == 0:
        return v
    return np.add.reduceat(v, np.asarray(grouping.starts), axis=-1)


def expand(grouping: Grouping, g: int, piece: Sequence[str]) -> Grouping:
    """Group g split into its tokens (one group per token); the other groups unchanged."""
    if not 0 <= g < grouping.n_groups:
        raise ValueError(f"group {g} is outside 0..{grouping.n_groups - 1}")
    s, e = grouping.spans[g]
    starts = grouping.starts[:g] + tuple(range(s, e)) + grouping.starts[g + 1:]
    texts = grouping.texts[:g] + tuple(piece[s:e]) + grouping.texts[g + 1:]
    return replace(grouping, starts=starts, texts=texts)


def with_open(grouping: Grouping, opened: Sequence[int], piece: Sequence[str]) -> Grouping:
    """`grouping` with every group that starts at a token in `opened` split into its tokens.

    Opened groups are named by their first token (not their index), so a link stays valid whatever else is
    opened; unknown starts are ignored."""
    starts = set(grouping.starts)
    for first in sorted({int(t) for t in opened if int(t) in starts}, reverse=True):  # right to left: indices hold
        grouping = expand(grouping, grouping.starts.index(first), piece)
    return grouping


def top_groups(values: Sequence[float], k: int) -> tuple[list[int], list[int]]:
    """(the k groups with the largest positive value, the k with the most negative), strongest first."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(-v, kind="stable")
    pos = [int(i) for i in order[:k] if v[i] > 0]
    neg = [int(i) for i in order[::-1][:k] if v[i] < 0]
    return pos, neg


def window_around(grouping: Grouping, g: int, max_tokens: int) -> tuple[int, int]:
    """[first, last) groups around group g whose tokens add up to at most max_tokens (at least group g itself)."""
    sizes = np.diff(np.asarray(grouping.starts + (grouping.n_tokens,)))
    lo, hi, total = g, g + 1, int(sizes[g])
    while True:
        grew = False
        for side in (-1, 1):
            i = lo - 1 if side < 0 else hi
            if 0 <= i < grouping.n_groups and total + sizes[i] <= max_tokens:
                total += int(sizes[i])
                lo, hi = (i, hi) if side < 0 else (lo, i + 1)
                grew = True
        if not grew:
            return lo, hi


def snippet(text: str, limit: int = 60) -> str:
    """One line of at most `limit` characters: whitespace runs collapsed, an ellipsis where cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
