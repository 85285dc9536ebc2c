"""The plain-language case summary: numbers -> words on hand-built attributions (no model)."""
from __future__ import annotations

import math

import pytest

from engine.present import summary
from engine.records import Attribution, TokenChoice, TopToken


def make(relevance, tokens=None, logit_diff=2.9, conservation=None, special=None, topk=None, contrast=True):
    tokens = tokens or [f"t{i}" for i in range(len(relevance))]
    total = sum(relevance)
    return Attribution(
        model="m", tokens=tokens, token_ids=list(range(len(tokens))), relevance=list(relevance),
        layer_relevance=[list(relevance)], objective=logit_diff, mode="logit_diff", strategy="by_ref_token", k=10,
        position=len(tokens) - 1, target=TokenChoice(16, "2"), contrast=TokenChoice(17, "3") if contrast else None,
        logit_diff=logit_diff if contrast else None,
        topk=topk if topk is not None else [TopToken(1, "2", 16, 5.0, 0.61), TopToken(2, "3", 17, 2.1, 0.03)],
        conservation=conservation if conservation is not None else total / logit_diff, rule="attnlrp",
        special_mask=special or [False] * len(tokens), offsets=[(0, 0)] * len(tokens))


def test_headline_words_from_the_numbers():
    s = summary.case_summary(make([0.5, 1.0, -0.3, 1.7]), model="zoo:l", case="l/eval-math-00014", recorded=True)
    # sigmoid(2.9) = 0.948 -> 95 % vs 5 % between the two tokens
    assert s.headline == ("The model says '2' but should say '3': it prefers '2' over '3' by 2.9 logits "
                          "(95 % vs 5 % between the two).")
    assert s.pair_target == pytest.approx(1 / (1 + math.exp(-2.9)))
    assert "gives '2' 61 % and '3' 3 %" in s.sentences[1]
    assert s.prob_target == 0.61 and s.prob_contrast == 0.03


def test_should_say_only_for_the_recorded_right_answer():
    # a pair someone picked (another candidate, Reset on an own prompt) is a preference, not a right answer
    s = summary.case_summary(make([0.5, 1.0, -0.3, 1.7]), model="zoo:l", case="l/eval-math-00014")
    assert s.headline == "The model prefers '2' over '3' by 2.9 logits (95 % vs 5 % between the two)."
    assert "should say" not in summary.to_text(s)
    s = summary.case_summary(make([0.3, -0.5], logit_diff=-1.2))
    assert "mistake" not in s.headline


def test_top_tokens_each_side_with_segments_and_shares():
    rel = [0.9, 0.1, -0.4, 0.5, -0.05, 0.3, 0.2, -0.1]
    labels = ["special", "instruction", "instruction", "query", "query", "answer", "query", "instruction"]
    s = summary.case_summary(make(rel, tokens=["<bos>", "a", "b", "c", "d", "e", "f", "g"],
                                  special=[True] + [False] * 7), labels)
    # <bos> is the largest but special: left out of the lists, kept in the shares
    assert [p.token for p in s.toward_wrong] == ["c", "e", "f"]
    assert [p.token for p in s.toward_right] == ["b", "g", "d"]
    assert [p.segment for p in s.toward_wrong] == ["query", "answer", "query"]
    mass = sum(abs(r) for r in rel)
    assert s.toward_wrong[0].share == pytest.approx(0.5 / mass)
    shares = {x.segment: x for x in s.segments}
    assert shares["special"].share == pytest.approx(0.9 / mass)
    assert shares["instruction"].relevance == pytest.approx(-0.4)
    assert sum(x.share for x in s.segments) == pytest.approx(1.0)
    text = summary.to_text(s)
    assert "Toward the wrong answer: 'c' (#3, the query, 20 %)" in text
    assert "the instruction 24 % (leans right)" in text


@pytest.mark.parametrize("conservation,band", [(1.0, "good"), (0.81, "good"), (1.19, "good"), (0.66, "fair"),
                                               (1.45, "fair"), (0.3, "weak"), (-0.2, "weak"), (math.nan, "unknown")])
def test_conservation_band(conservation, band):
    s = summary.case_summary(make([1.0, 0.5], conservation=conservation))
    assert s.band == band
    assert s.sentences[-1].startswith("Conservation cannot" if band == "unknown" else "The token relevance adds up")
    if band != "unknown":
        assert f": {band}," in s.sentences[-1] and "good is 0.8–1.2" in s.sentences[-1]


def test_suggested_category_in_plain_words():
    # total relevance toward the contrast while Δℓ = 2.9 > 1: input attribution does not explain it (NC-IA+AG)
    s = summary.case_summary(make([-1.0, -0.5, 0.2]), ["instruction", "query", "query"])
    assert s.outcome == "NC-IA+AG" and s.category.source == "heuristic"
    assert "Category: not explained yet (NC-IA+AG)" in summary.to_text(s)
    assert "guessed from the heatmap alone" in summary.to_text(s)


@pytest.mark.parametrize("verdict,r_zero,code", [("explains", None, "M-IA"), ("partly", 0.1, "M-IA"),
                                                 ("not_explained", 0.7, "NC-IA+M-AG"), ("fragile", 0.2, "NC-IA+AG"),
                                                 ("not_explained", None, "NC-IA+AG"), ("no_failure", None, None)])
def test_the_check_decides_the_category(verdict, r_zero, code):
    # the heuristic says M-IA (relevance toward the target); the check's verdict overrides it everywhere
    s = summary.case_summary(make([0.5, 1.0, 1.4]), verdict=verdict, r_zero=r_zero)
    assert s.outcome == code and s.category.source == "check"
    text = summary.to_text(s)
    assert "guessed" not in text and "decided by the causal check" in text
    if code:
        assert f"({code})" in text


def test_no_contrast_and_reversed_preference():
    s = summary.case_summary(make([0.3, 0.2], contrast=False))
    assert s.contrast is None and s.outcome is None and "explains its score" in s.headline
    s = summary.case_summary(make([0.3, -0.5], logit_diff=-1.2))
    assert "prefers '3' over '2' by 1.2 logits (77 % vs 23 % between the two)" in s.headline


def test_contrast_outside_the_topk_is_said():
    s = summary.case_summary(make([0.3, 0.2], topk=[TopToken(1, "2", 16, 5.0, 0.9)]))
    assert s.prob_contrast is None and "'3' is not among its top 1 candidates" in s.sentences[1]


def test_renderers_keep_hostile_tokens_literal():
    tokens = ["<script>alert(1)</script>", "=1+1", "{\\rtf1 x}", "**bold** [a](http://x)", "$x$"]
    s = summary.case_summary(make([0.5, 0.4, 0.3, -0.2, -0.1], tokens=tokens))
    h = summary.to_html(s)
    assert "<script>" not in h and "&lt;script&gt;alert(1)&lt;/script&gt;" in h
    md = summary.to_markdown(s)
    assert "<script>" not in md and "\\*\\*bold\\*\\*" in md and "\\[a\\]\\(http://x\\)" in md and "\\$x\\$" in md
    assert "'=1+1'" in summary.to_text(s)  # plain text keeps it as written, quoted
    d = s.to_dict()
    assert d["toward_wrong"][0]["token"] == tokens[0] and d["band"] in ("good", "fair", "weak")
