"""Segment shift in words: one sentence per model saying where its relevance moved, compared with a reference.

Segments are named as in the plain-language summary (engine.present.summary.SEGMENT_WORDS, from the glossary's
words). Inputs are segment relevance dicts (engine.cases.segments.segment_relevance: each segment's relevance ÷ the
case's max |R|; positive pushes towards the wrong token). When one segment lost and another gained amounts of
the same order (the smaller at least half the larger), the sentence says "moves x from the one to the other",
x being the smaller amount (what can have gone from one to the other); otherwise it names the largest change
alone. Changes below `quiet` count as no change; every change is listed in brackets.
"""
from __future__ import annotations

from typing import Mapping

from engine.present.summary import SEGMENT_WORDS

SEGMENTS = ("instruction", "query", "answer")  # special tokens are not part of a shift (as of "total")


def _f(x: float) -> str:
    return f"{abs(x):.2f}".rstrip("0").rstrip(".") if abs(x) >= 0.005 else "0"


def shift_sentence(name: str, reference: str, ref: Mapping[str, float], other: Mapping[str, float],
                   quiet: float = 0.1) -> str:
    """One plain sentence: how `name`'s segment relevance differs from `reference`'s on the same case."""
    change = {s: float(other.get(s, 0.0)) - float(ref.get(s, 0.0)) for s in SEGMENTS}
    lost = min(change, key=change.get)
    gained = max(change, key=change.get)
    if max(abs(v) for v in change.values()) < quiet:
        return (f"{name} spreads its relevance over the segments as {reference} does "
                f"(no segment changes by {quiet:g} or more).")
    detail = ", ".join(f"{SEGMENT_WORDS[s]} {v:+.2f}" for s, v in change.items() if abs(v) >= 0.005)
    loss, gain = -change[lost], change[gained]
    if loss >= quiet and gain >= quiet and min(loss, gain) >= 0.5 * max(loss, gain):
        return (f"{name} moves {_f(min(loss, gain))} of relevance from {SEGMENT_WORDS[lost]} to "
                f"{SEGMENT_WORDS[gained]}, compared with {reference} ({detail}).")
    if gain > loss:
        return (f"{name} puts {_f(change[gained])} more relevance on {SEGMENT_WORDS[gained]} than "
                f"{reference} (more push towards the wrong token there; {detail}).")
    return (f"{name} puts {_f(-change[lost])} less relevance on {SEGMENT_WORDS[lost]} than "
            f"{reference} (less push towards the wrong token there; {detail}).")


def shift_sentences(reference: str, segments: Mapping[str, Mapping[str, float]], quiet: float = 0.1) -> list[str]:
    """One sentence per model other than `reference`, in the mapping's order. segments: model -> segment dict."""
    if reference not in segments:
        return []
    return [shift_sentence(name, reference, segments[reference], seg, quiet)
            for name, seg in segments.items() if name != reference]
