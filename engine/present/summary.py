"""A case in plain words: `case_summary(attribution, segments) -> CaseSummary`, rendered as text, Markdown or HTML.

Templates over the numbers, no language model. What it says:
- the headline: which of the two tokens the model prefers, with Δℓ and the two probabilities; "should say" only
  when the contrast is the case's recorded right answer (`recorded=True`), never for a pair someone picked.
  "95 % vs 5 %" is the share between the two tokens only, softmax over (ℓ(target), ℓ(contrast)) = sigmoid(Δℓ);
  the model's own probabilities over the whole vocabulary are given too when both tokens are among its top
  candidates;
- the three tokens that push most toward the wrong answer and toward the right one, with their segment
  (special tokens such as <bos>, <q> are left out of these lists but keep their share below);
- each segment's share of |R| and the side it leans to;
- the case's category in plain words and what decided it (engine.cases.outcome: a person's label, else the causal
  check, else the heuristic, said to be "guessed from the heatmap alone");
- how far the heatmap accounts for Δℓ (conservation = sum R / Δℓ) with a stated band: good within
  GOOD_BAND of 1, weak outside FAIR_BAND, fair between.
Every string from a prompt or a tokenizer is kept as data; the renderers escape it for their format.
"""
from __future__ import annotations

import dataclasses
import html
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from engine.cases.categories import Category, suggest_category
from engine.cases.outcome import CaseOutcome, decide
from engine.cases.segments import segment_relevance
from engine.records import Attribution

GOOD_BAND = 0.2  # |conservation - 1| <= 0.2: the colours account for (almost) the whole gap
FAIR_BAND = 0.5  # <= 0.5: fair; beyond: weak
TOP_N = 3
SEGMENT_WORDS = {"instruction": "the instruction", "query": "the query", "answer": "the answer so far",
                 "special": "special tokens"}


@dataclass(frozen=True)
class TokenPush:
    """One prompt token and how hard it pushes (relevance > 0: toward the wrong answer)."""

    position: int
    token: str
    relevance: float
    share: float  # |R| / sum |R| over all tokens
    segment: str


@dataclass(frozen=True)
class SegmentShare:
    segment: str  # instruction | query | answer | special
    relevance: float  # sum of R over the segment's tokens
    share: float  # sum |R| of the segment / sum |R| over all tokens


@dataclass(frozen=True)
class CaseSummary:
    """The story of one case, as numbers and as the sentences built from them."""

    model: str  # label shown to people, e.g. "zoo:l"
    case: str  # "l/eval-math-00014", or "" for an own prompt
    target: str
    contrast: Optional[str]  # None when the objective has no contrast (target logit only)
    logit_diff: Optional[float]
    pair_target: Optional[float]  # share of the target between the two tokens: sigmoid(Δℓ)
    prob_target: Optional[float]  # the model's probability over the whole vocabulary (None: not in the top-k)
    prob_contrast: Optional[float]
    objective: float
    toward_wrong: tuple[TokenPush, ...]
    toward_right: tuple[TokenPush, ...]
    segments: tuple[SegmentShare, ...]
    outcome: Optional[str]  # category codes (engine.cases.categories), as decided by `category`
    pattern: Optional[str]
    conservation: float
    band: str  # good | fair | weak | unknown
    headline: str
    sentences: tuple[str, ...]  # the whole story, headline first
    category: Optional[CaseOutcome] = None  # the category and what decided it (None: no contrast)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %" if p >= 0.01 or p == 0 else "< 1 %"


def _q(text: str) -> str:
    """A token quoted for reading; control characters shown as escapes (the renderers escape for their format)."""
    from engine.present.text import visible

    return f"'{visible(text)}'"


def band(conservation: float) -> str:
    if conservation is None or not math.isfinite(conservation):
        return "unknown"
    gap = abs(conservation - 1.0)
    return "good" if gap <= GOOD_BAND else "fair" if gap <= FAIR_BAND else "weak"


def _pushes(att: Attribution, labels: Sequence[str], sign: int) -> tuple[TokenPush, ...]:
    mass = sum(abs(r) for r in att.relevance) or 1.0
    special = list(att.special_mask) or [False] * len(att.tokens)
    cands = [i for i, r in enumerate(att.relevance) if sign * r > 0 and not special[i] and labels[i] != "special"]
    cands.sort(key=lambda i: -abs(att.relevance[i]))
    return tuple(TokenPush(i, att.tokens[i], float(att.relevance[i]), abs(att.relevance[i]) / mass, labels[i])
                 for i in cands[:TOP_N])


def _segment_shares(att: Attribution, labels: Sequence[str]) -> tuple[SegmentShare, ...]:
    mass = sum(abs(r) for r in att.relevance) or 1.0
    out = []
    for seg in ("instruction", "query", "answer", "special"):
        idx = [i for i, lab in enumerate(labels) if lab == seg]
        if idx:
            out.append(SegmentShare(seg, float(sum(att.relevance[i] for i in idx)),
                                    sum(abs(att.relevance[i]) for i in idx) / mass))
    return tuple(sorted(out, key=lambda s: -s.share))


def _prob(att: Attribution, token_id: int) -> Optional[float]:
    return next((t.prob for t in att.topk if t.token_id == token_id), None)


def case_summary(att: Attribution, labels: Optional[Sequence[str]] = None, *, model: str = "",
                 case: str = "", recorded: bool = False, verdict: Optional[str] = None,
                 r_zero: Optional[float] = None, human: Optional[Category] = None) -> CaseSummary:
    """The summary of one attribution. labels: [tokens] segment per token (engine.cases.segments.assign_segments);
    None puts special tokens under "special" and every other token under "query" (an own prompt).
    recorded: target and contrast are the case's recorded wrong and right answer; verdict / r_zero: the causal
    checks' results when they ran (engine.cases.checks), human: a person's label (both decide the category)."""
    n = len(att.tokens)
    special = list(att.special_mask) or [False] * n
    labels = list(labels) if labels is not None else ["special" if s else "query" for s in special]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} segment labels for {n} tokens")
    con = att.contrast.text if att.contrast is not None else None
    dl = att.logit_diff
    pair = 1.0 / (1.0 + math.exp(-dl)) if dl is not None and abs(dl) < 700 else (None if dl is None else float(dl > 0))
    p_t = _prob(att, att.target.token_id)
    p_c = _prob(att, att.contrast.token_id) if att.contrast is not None else None
    wrong, right = _pushes(att, labels, +1), _pushes(att, labels, -1)
    segs = _segment_shares(att, labels)
    category = None
    if dl is not None:
        guess = suggest_category(segment_relevance(att.relevance, labels), dl).category
        category = decide(guess, human=human, verdict=verdict, r_zero=r_zero)
    outcome, pattern = (category.code, category.pattern) if category is not None else (None, None)
    b = band(att.conservation)
    head = _headline(att.target.text, con, dl, pair, att.objective, recorded)
    lines = [head]
    if p_t is not None:
        both = f" and {_q(con)} {_pct(p_c)}" if con is not None and p_c is not None else (
            f"; {_q(con)} is not among its top {len(att.topk)} candidates" if con is not None else "")
        lines.append(f"Over its whole vocabulary the model gives {_q(att.target.text)} {_pct(p_t)}{both}.")
    if wrong:
        lines.append("Toward the wrong answer: " + _list(wrong) + ".")
    if right:
        lines.append("Toward the right answer: " + _list(right) + ".")
    if segs:
        lines.append("Share of the relevance: " + "; ".join(
            f"{SEGMENT_WORDS[s.segment]} {_pct(s.share)} ({_lean(s.relevance)})" for s in segs) + ".")
    if category is not None and (category.code is not None or category.source != "heuristic"):
        lines.append(category.sentence)
    lines.append(_conservation_line(att.conservation, b, con is not None))
    return CaseSummary(model, case, att.target.text, con, dl, pair, p_t, p_c, float(att.objective), wrong, right,
                       segs, outcome, pattern, float(att.conservation), b, head, tuple(lines), category)


def _headline(target: str, contrast: Optional[str], dl: Optional[float], pair: Optional[float], objective: float,
              recorded: bool = False) -> str:
    if contrast is None or dl is None:
        return f"The model's next token is {_q(target)}; the heatmap explains its score of {objective:+.2f}."
    if dl >= 0:
        gap = f"by {dl:.1f} logits ({_pct(pair)} vs {_pct(1 - pair)} between the two)"
        if recorded:
            return (f"The model says {_q(target)} but should say {_q(contrast)}: it prefers {_q(target)} over "
                    f"{_q(contrast)} {gap}.")
        return f"The model prefers {_q(target)} over {_q(contrast)} {gap}."
    tail = ": on this pair it does not make the mistake" if recorded else ""
    return (f"The model prefers {_q(contrast)} over {_q(target)} by {-dl:.1f} logits ({_pct(1 - pair)} vs "
            f"{_pct(pair)} between the two){tail}.")


def _list(pushes: Sequence[TokenPush]) -> str:
    return ", ".join(f"{_q(p.token)} (#{p.position}, {SEGMENT_WORDS.get(p.segment, p.segment)}, {_pct(p.share)})"
                     for p in pushes)


def _lean(relevance: float) -> str:
    if abs(relevance) < 1e-9:
        return "neutral"
    return "leans wrong" if relevance > 0 else "leans right"


def _conservation_line(c: float, b: str, contrastive: bool) -> str:
    what = "Δℓ" if contrastive else "the score"
    if b == "unknown":
        return f"Conservation cannot be computed ({what} is 0)."
    verdict = {"good": "the colours account for nearly all of it",
               "fair": "read the colours as a partial account",
               "weak": "read the colours with care: much of it is absorbed elsewhere (biases, numerics)"}[b]
    share = f"{_pct(c)} of {what}" if c >= 0 else f"{c:.2f} times {what} (the other way round)"
    return (f"The token relevance adds up to {share} (conservation {c:.2f}; "
            f"good is {1 - GOOD_BAND:.1f}–{1 + GOOD_BAND:.1f}): {b}, {verdict}.")


# ---------------------------------------------------------------- renderers
def to_text(s: CaseSummary) -> str:
    """Plain text, one sentence a line (for a terminal or a slide's notes)."""
    head = f"{s.model} · {s.case}" if s.case else s.model
    return "\n".join(([head] if head else []) + list(s.sentences)) + "\n"


_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def markdown_escape(text: str) -> str:
    """Text that Markdown (and Streamlit's) shows literally: every markup character backslash-escaped."""
    return _MD.sub(r"\\\1", text).replace("\n", " ")


def to_markdown(s: CaseSummary) -> str:
    """Markdown with the headline in bold, the rest a list; all text escaped."""
    rest = "\n".join(f"- {markdown_escape(line)}" for line in s.sentences[1:])
    return f"**{markdown_escape(s.headline)}**\n\n{rest}\n"


def to_html(s: CaseSummary, details: bool = True) -> str:
    """An HTML block (inline styles only); all text escaped. details=False: the headline alone."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in s.sentences[1:]) if details else ""
    return ('<div class="fl-summary" style="border-left:4px solid #888;padding:.3em .9em;margin:.4em 0">'
            f'<p style="margin:.2em 0;font-weight:600">{html.escape(s.headline)}</p>'
            # two columns where there is room (wide screens), one otherwise: the heatmap stays near the top
            f'<ul style="margin:.2em 0 .3em 1.1em;padding:0;columns:2 34em;column-gap:2.5em;font-size:.95em">'
            f'{items}</ul></div>')
