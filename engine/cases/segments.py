"""Token segments of a failure case: Instruction, Query, Answer, Special.

A case carries character spans per segment over the text the model reads (prompt, chat template, and the
answer prefix before the failure). Tokens are assigned to segments from the tokenizer's character offsets.

Assignment rule (one rule for every edge case):
1. A token flagged in `special_mask` (BOS, chat-template special tokens) is Special.
2. A token with an empty character span (inserted by the tokenizer, not read from the text) is Special.
3. Otherwise the token goes to the segment whose spans cover most of its characters. Ties, including a
   token straddling two segments with the same number of characters in each, go to the earlier segment
   in PRIORITY: instruction > answer > query > special.
4. A token no span touches at all (separators between spans, unlabelled text) is Query, as in the
   reference system where Query is "everything else".

Segment relevance = sum of relevance over the segment's tokens / max |R| over non-special tokens.
"total" = sum over all non-special tokens / the same max. Special is reported but never part of total.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

SEGMENTS = ("instruction", "answer", "query", "special")  # also the tie-break priority, first wins
Spans = dict[str, list[tuple[int, int]]]


def empty_spans() -> Spans:
    return {name: [] for name in ("special", "instruction", "query", "answer")}


def shift_spans(spans: Mapping[str, Sequence[tuple[int, int]]], offset: int) -> Spans:
    """Move every span by `offset` characters (the text was placed `offset` chars later)."""
    return {k: [(s + offset, e + offset) for s, e in v] for k, v in spans.items()}


def add_span(spans: Mapping[str, Sequence[tuple[int, int]]], name: str, start: int, end: int) -> Spans:
    """A copy of `spans` with [start, end) added to segment `name` (empty spans are dropped)."""
    out = {k: list(v) for k, v in spans.items()}
    out.setdefault(name, [])
    if end > start:
        out[name].append((start, end))
    return out


def complement(length: int, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [0, length) that no span covers, in order."""
    out, pos = [], 0
    for s, e in sorted(spans):
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    return out + ([(pos, length)] if pos < length else [])


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def assign_segments(
    offsets: Sequence[tuple[int, int]],
    spans: Mapping[str, Sequence[tuple[int, int]]],
    special_mask: Sequence[bool],
) -> list[str]:
    """One segment name per token (see the module docstring for the rule).

    offsets: [tokens] (start, end) character span of each token in the text the spans refer to.
    spans: segment name -> list of (start, end) character spans; unknown names are ignored.
    special_mask: [tokens] True for tokens that are special whatever their characters.
    """
    if len(offsets) != len(special_mask):
        raise ValueError(f"{len(offsets)} offsets but {len(special_mask)} special flags")
    labels = []
    for (start, end), special in zip(offsets, special_mask):
        if special or end <= start:
            labels.append("special")
            continue
        best, best_chars = "query", 0
        for name in SEGMENTS:  # strict '>' keeps the earlier segment on ties
            chars = sum(_overlap((start, end), s) for s in spans.get(name, ()))
            if chars > best_chars:
                best, best_chars = name, chars
        labels.append(best)
    return labels


def segment_relevance(
    relevance: Sequence[float],
    labels: Sequence[str],
    groups: Optional[Mapping[str, Sequence[bool]]] = None,
) -> dict[str, float]:
    """Normalised relevance per segment, plus "total" (non-special tokens only).

    relevance: [tokens] signed relevance (positive supports the target).
    groups: extra named token masks summed the same way (special tokens excluded), e.g.
        {"instruction_target": mask} for instruction phrases that contain the target string.
    Every value is divided by max |R| over non-special tokens; all zeros when that max is 0.
    """
    if len(relevance) != len(labels):
        raise ValueError(f"{len(relevance)} relevance values but {len(labels)} labels")
    plain = [float(r) for r, lab in zip(relevance, labels) if lab != "special"]
    denom = max((abs(r) for r in plain), default=0.0)
    scale = 1.0 / denom if denom > 0 else 0.0
    out = {name: 0.0 for name in ("instruction", "query", "answer", "special")}
    for r, lab in zip(relevance, labels):
        out[lab] = out.get(lab, 0.0) + float(r) * scale
    out["total"] = sum(plain) * scale
    for name, mask in (groups or {}).items():
        if len(mask) != len(labels):
            raise ValueError(f"group {name!r} has {len(mask)} flags for {len(labels)} tokens")
        out[name] = sum(float(r) for r, m, lab in zip(relevance, mask, labels) if m and lab != "special") * scale
    return out


def phrase_mask(
    offsets: Sequence[tuple[int, int]],
    text: str,
    phrase_spans: Sequence[tuple[int, int]],
    needle: str,
) -> list[bool]:
    """[tokens] True for tokens overlapping a phrase span whose text contains `needle`.

    Used for the reference system's split of the instruction into phrases that mention the target string
    (group 1) and the rest (group 2). Matching is case-insensitive on the stripped needle; an empty needle
    matches nothing.
    """
    key = needle.strip().lower()
    hits = [s for s in phrase_spans if key and key in text[s[0]:s[1]].lower()]
    return [end > start and any(_overlap((start, end), s) for s in hits) for start, end in offsets]
