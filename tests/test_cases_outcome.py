"""One category per case (engine.cases.outcome): a person's label, else the causal checks, else the heuristic."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from engine.cases.categories import Category, Outcome, Pattern
from engine.cases.outcome import GUESSED, decide, decide_row, frame_outcomes

GUESS = Category(Outcome.M_IA, Pattern.URT)


@pytest.mark.parametrize("verdict,r_zero,code", [
    ("explains", None, "M-IA"), ("partly", -0.3, "M-IA"), ("not_explained", 0.5, "NC-IA+M-AG"),
    ("fragile", 0.49, "NC-IA+AG"), ("not_explained", math.nan, "NC-IA+AG"), ("no_failure", 0.9, None)])
def test_the_check_overrides_the_heuristic(verdict, r_zero, code):
    got = decide(GUESS, verdict=verdict, r_zero=r_zero)
    assert (got.code, got.pattern, got.source) == (code, "URT", "check")
    assert GUESSED not in got.sentence and "causal check" in got.sentence


def test_a_person_wins_and_the_heuristic_says_it_is_a_guess():
    person = decide(GUESS, human=Category(Outcome.NC_IA_AG, None), verdict="explains")
    assert (person.code, person.pattern, person.source) == ("NC-IA+AG", None, "person")
    assert "set by a person" in person.sentence
    guess = decide(GUESS)
    assert (guess.code, guess.source) == ("M-IA", "heuristic")
    assert guess.sentence.startswith("Category: explained by the heatmap (M-IA), pattern: relevant tokens "
                                     "underweighted (URT); guessed from the heatmap alone")
    graph = decide(GUESS, verdict="not_explained", r_zero=0.8)
    assert "the graph's top nodes hold (r = +0.80; 0.5 needed)" in graph.sentence


def test_results_frame_rows_with_missing_values_and_foreign_codes():
    df = pd.DataFrame([
        {"suggested_outcome": "M-IA", "suggested_pattern": None, "human_outcome": math.nan, "human_pattern": math.nan,
         "check_verdict": "not_explained", "check_r_zero": math.nan},
        {"suggested_outcome": "M-IA", "suggested_pattern": "OIT", "human_outcome": None, "human_pattern": None,
         "check_verdict": None, "check_r_zero": None},
        {"suggested_outcome": "<b>x</b>", "suggested_pattern": None, "human_outcome": "NC-IA+M-AG",
         "human_pattern": None, "check_verdict": "explains", "check_r_zero": 0.1}])
    out = frame_outcomes(df)
    assert list(out["outcome"]) == ["NC-IA+AG", "M-IA", "NC-IA+M-AG"]
    assert list(out["pattern"]) == ["none", "OIT", "none"]
    assert list(out["decided_by"]) == ["causal check", GUESSED, "person"]
    assert decide_row(df.iloc[2].to_dict()).source == "person"
    assert list(frame_outcomes(df.iloc[:0]).columns)[-3:] == ["outcome", "pattern", "decided_by"]
