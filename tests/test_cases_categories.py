import pytest

from engine.cases.categories import Category, Label, Outcome, Pattern, Suggestion, shares, suggest_category
from engine.cases.segments import segment_relevance

LABELS = ["special", "instruction", "instruction", "query", "query", "answer"]


def _suggest(rel, logit_diff=3.0, groups=None, **kw):
    return suggest_category(segment_relevance(rel, LABELS, groups), logit_diff, **kw)


def test_instruction_against_target_but_outweighed_is_urt():
    s = _suggest([9.0, -1.0, -0.5, 2.0, 1.0, 0.5])  # inst -1.5/2, total +2/2 > 0
    assert s.category == Category(Outcome.M_IA, Pattern.URT)
    assert s.reasons[0].startswith("O2") and s.reasons[1].startswith("P1")


def test_negative_total_with_clear_failure_is_not_explained_by_input_attribution():
    rel = [0.0, -2.0, -1.0, 0.5, 0.5, 0.0]  # total -2/2 < 0
    assert _suggest(rel).category == Category(Outcome.NC_IA_AG, None)  # P2: instruction is followed
    assert _suggest(rel, graph_explains=True).category.outcome is Outcome.NC_IA_M_AG
    assert _suggest(rel, logit_diff=0.5).category.outcome is Outcome.M_IA  # Δℓ <= 1: reference proxy says no AG


def test_phrases_naming_target_overweighted_is_urt_plus_oit():
    rel = [0.0, 2.0, -0.5, 0.1, 0.0, 0.0]
    target_phrase = [False, True, False, False, False, False]
    s = _suggest(rel, groups={"instruction_target": target_phrase})
    assert s.category == Category(Outcome.M_IA, Pattern.URT_OIT)
    only_target = _suggest([0.0, 2.0, 0.0, 0.1, 0.0, 0.0], groups={"instruction_target": target_phrase})
    assert only_target.category.pattern is Pattern.URT_OIT  # no other instruction phrases
    other_positive = _suggest([0.0, 2.0, 1.0, 0.1, 0.0, 0.0], groups={"instruction_target": target_phrase})
    assert other_positive.category.pattern is Pattern.URT


def test_positive_instruction_without_groups_and_no_instruction():
    assert _suggest([0.0, 1.0, 1.0, 0.5, 0.0, 0.0]).category.pattern is Pattern.URT
    s = suggest_category({"total": 1.0, "query": 1.0}, 2.0)
    assert s.category == Category(Outcome.M_IA, None) and s.reasons[-1].startswith("P5")


def test_records_round_trip_and_shares():
    s = _suggest([9.0, -1.0, -0.5, 2.0, 1.0, 0.5])
    assert Suggestion.from_dict(s.to_dict()) == s
    label = Label.now("ifeval/1", "q06", s, Category(Outcome.NC_IA_M_AG, Pattern.OIT), author="ana")
    d = label.to_dict()
    assert d["human"] == {"outcome": "NC-IA+M-AG", "pattern": "OIT"} and d["suggested"]["category"]["pattern"] == "URT"
    assert label.time > 0 and Category.from_dict(d["human"]) == label.human
    rows = [{"benchmark": "ifeval", "model_label": "a", "outcome": "M-IA"},
            {"benchmark": "ifeval", "model_label": "a", "outcome": "M-IA"},
            {"benchmark": "ifeval", "model_label": "a", "outcome": None},
            {"benchmark": "math", "model_label": "a", "outcome": "NC-IA+AG"}]
    df = shares(rows)
    got = {(r.benchmark, r.outcome): r.share for r in df.itertuples()}
    assert got == {("ifeval", "M-IA"): pytest.approx(2 / 3), ("ifeval", "unlabelled"): pytest.approx(1 / 3),
                   ("math", "NC-IA+AG"): 1.0}
