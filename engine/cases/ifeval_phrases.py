"""Where the instructions sit in an IFEval prompt (the Instruction segment).

IFEval records list instruction ids and their kwargs, not where the instruction text is. Two ways in:
1. Given phrases (a record field "instruction_phrases", or the reference system's "l_instruction_phases"):
   the first exact occurrence of each phrase, else the first occurrence with any run of whitespace
   matching any other run. A phrase that is not in the prompt is an error.
2. Otherwise a documented approximation: the prompt is cut into sentences (at . ! ? followed by
   whitespace, and at line breaks); a sentence is Instruction when it contains a cue of one of the
   record's instruction ids: a cue word from CUES (case-insensitive), a string kwarg value (keywords,
   forbidden words, end phrase, ...), or a numeric kwarg value as a whole number. A sentence that both
   asks the question and states a constraint ("Write a 300+ word essay ...") is all Instruction.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

from engine.records import FailureLensError

CUES: dict[str, tuple[str, ...]] = {
    "keywords:existence": ("keyword", "include the word"),
    "keywords:frequency": ("times", "keyword"),
    "keywords:forbidden_words": ("do not include", "not use", "without", "avoid"),
    "keywords:letter_frequency": ("letter",),
    "language:response_language": ("language",),
    "length_constraints:number_sentences": ("sentence",),
    "length_constraints:number_paragraphs": ("paragraph", "***"),
    "length_constraints:number_words": ("word",),
    "length_constraints:nth_paragraph_first_word": ("paragraph", "first word"),
    "detectable_content:number_placeholders": ("placeholder", "square bracket"),
    "detectable_content:postscript": ("postscript", "p.s", "p.p.s"),
    "detectable_format:number_bullet_lists": ("bullet",),
    "detectable_format:constrained_response": ("my answer is", "answer with one of"),
    "detectable_format:number_highlighted_sections": ("highlight",),
    "detectable_format:multiple_sections": ("section",),
    "detectable_format:json_format": ("json",),
    "detectable_format:title": ("title", "<<"),
    "combination:two_responses": ("two different responses", "two responses", "******"),
    "combination:repeat_prompt": ("repeat",),
    "startend:end_checker": ("end your response", "finish your response", "end it with"),
    "startend:quotation": ("quotation", "double quote"),
    "change_case:capital_word_frequency": ("capital",),
    "change_case:english_capital": ("capital", "uppercase", "upper case"),
    "change_case:english_lowercase": ("lowercase", "lower case"),
    "punctuation:no_comma": ("comma",),
}
_NOT_CUES = {"prompt_to_repeat", "relation", "let_relation", "capital_relation", "language"}
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (whitespace trimmed) of `text`."""
    cuts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    out = []
    for s, e in zip(cuts, cuts[1:]):
        piece = text[s:e]
        if piece.strip():
            s2 = s + len(piece) - len(piece.lstrip())
            out.append((s2, s2 + len(piece.strip())))
    return out


def _kwarg_cues(kwargs: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    words, numbers = [], []
    for key, value in kwargs.items():
        if key in _NOT_CUES or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                numbers.append(str(int(v)) if float(v).is_integer() else str(v))
            elif len(str(v).strip()) >= 2:
                words.append(str(v).strip().lower())
    return words, numbers


def find_phrase(text: str, phrase: str) -> Optional[tuple[int, int]]:
    start = text.find(phrase)
    if start >= 0:
        return start, start + len(phrase)
    pattern = r"\s+".join(re.escape(w) for w in phrase.split())
    m = re.search(pattern, text) if pattern else None
    return m.span() if m else None


def instruction_spans(prompt: str, instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]],
                      phrases: Optional[Sequence[str]] = None) -> list[tuple[int, int]]:
    """Character spans of the instructions in `prompt` (see the module docstring)."""
    if phrases:
        spans = []
        for phrase in phrases:
            span = find_phrase(prompt, phrase)
            if span is None:
                raise FailureLensError(f"instruction phrase {phrase!r} is not in the prompt {prompt[:60]!r}...; "
                                       "fix the phrase or drop the instruction_phrases field to use the cue heuristic.")
            spans.append(span)
        return sorted(spans)
    words, numbers = [], []
    for iid, kw in zip(instruction_ids, list(kwargs) + [{}] * len(instruction_ids)):
        words += CUES.get(iid, ())
        w, n = _kwarg_cues(kw or {})
        words, numbers = words + w, numbers + n
    number_re = re.compile(r"(?<![\d.])(" + "|".join(map(re.escape, numbers)) + r")(?![\d])") if numbers else None
    hits = []
    for s, e in sentences(prompt):
        low = prompt[s:e].lower()
        if any(w in low for w in words) or (number_re is not None and number_re.search(low)):
            hits.append((s, e))
    return hits
