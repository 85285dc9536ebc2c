"""Segment shift in words: one sentence per model saying where its relevance moved, compared with a reference.

Inputs are segment relevance dicts (engine.cases.segments.segment_relevance: each segment's relevance ÷ the
case's max |R|; positive pushes towards the wrong token). The sentence names the segment that lost the most
and the one that gained the most; "moves x" is the smaller of the two amounts (what can have gone from one
to the other). Changes below `quiet` count as no change.
"""
from __future__ import annotations

from typing import Mapping

SEGMENT_NAMES = {"instruction": "Instruction", "query": "Query", "answer": "Answer"}


def _f(x: float) -> str:
    return f"{abs(x):.2f}".rstrip("0").rstrip(".") if abs(x) >= 0.005 else "0"


def shift_sentence(name: str, reference: str, ref: Mapping[str, float], other: Mapping[str, float],
                   quiet: float = 0.1) -> str:
    """One plain sentence: how `name`'s segment relevance differs from `reference`'s on the same case."""
    change = {s: float(other.get(s, 0.0)) - float(ref.get(s, 0.0)) for s in SEGMENT_NAMES}
    lost = min(change, key=change.get)
    gained = max(change, key=change.get)
    if max(abs(v) for v in change.values()) < quiet:
        return (f"{name} spreads its relevance over the segments as {reference} does "
                f"(no segment changes by {quiet:g} or more).")
    detail = ", ".join(f"{SEGMENT_NAMES[s]} {v:+.2f}" for s, v in change.items() if abs(v) >= 0.005)
    if change[lost] <= -quiet and change[gained] >= quiet:
        moved = min(-change[lost], change[gained])
        return (f"{name} moves {_f(moved)} of relevance from the {SEGMENT_NAMES[lost]} to the "
                f"{SEGMENT_NAMES[gained]} segment, compared with {reference} ({detail}).")
    if change[gained] >= quiet:
        return (f"{name} puts {_f(change[gained])} more relevance on the {SEGMENT_NAMES[gained]} segment than "
                f"{reference} (more push towards the wrong token there; {detail}).")
    return (f"{name} puts {_f(-change[lost])} less relevance on the {SEGMENT_NAMES[lost]} segment than "
            f"{reference} (less push towards the wrong token there; {detail}).")


def shift_sentences(reference: str, segments: Mapping[str, Mapping[str, float]], quiet: float = 0.1) -> list[str]:
    """One sentence per model other than `reference`, in the mapping's order. segments: model -> segment dict."""
    if reference not in segments:
        return []
    return [shift_sentence(name, reference, segments[reference], seg, quiet)
            for name, seg in segments.items() if name != reference]
