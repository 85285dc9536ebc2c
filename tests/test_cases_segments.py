import pytest

from engine.cases.segments import add_span, assign_segments, complement, phrase_mask, segment_relevance, shift_spans


def test_assign_basic_and_unlabelled_is_query():
    spans = {"instruction": [(0, 5)], "query": [(6, 10)], "answer": [(12, 15)], "special": []}
    offsets = [(0, 5), (5, 6), (6, 10), (10, 12), (12, 15)]
    labels = assign_segments(offsets, spans, [False] * 5)
    assert labels == ["instruction", "query", "query", "query", "answer"]


def test_special_mask_and_empty_span_win():
    spans = {"instruction": [(0, 10)]}
    labels = assign_segments([(0, 0), (0, 3), (3, 6)], spans, [False, True, False])
    assert labels == ["special", "special", "instruction"]


def test_straddling_token_goes_to_majority():
    spans = {"instruction": [(0, 4)], "query": [(4, 20)]}
    # token (2, 8): 2 chars instruction, 4 chars query -> query; token (1, 5): 3 vs 1 -> instruction
    assert assign_segments([(2, 8), (1, 5)], spans, [False, False]) == ["query", "instruction"]


def test_straddling_tie_goes_by_priority():
    spans = {"instruction": [(0, 4)], "answer": [(4, 8)], "query": [(8, 12)], "special": [(12, 16)]}
    offsets = [(2, 6), (6, 10), (10, 14)]  # instruction|answer, answer|query, query|special: all 2 vs 2
    assert assign_segments(offsets, spans, [False] * 3) == ["instruction", "answer", "query"]


def test_template_chars_are_special_by_majority():
    spans = {"special": [(0, 10)], "query": [(10, 14)]}
    assert assign_segments([(7, 11), (9, 13)], spans, [False, False]) == ["special", "query"]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        assign_segments([(0, 1)], {}, [False, False])


def test_segment_relevance_normalises_by_max_non_special():
    labels = ["special", "instruction", "instruction", "query", "answer"]
    rel = [10.0, -1.0, -1.0, 2.0, 0.5]  # the special 10 is neither in the denominator nor in total
    out = segment_relevance(rel, labels)
    assert out["instruction"] == pytest.approx(-1.0)
    assert out["query"] == pytest.approx(1.0)
    assert out["answer"] == pytest.approx(0.25)
    assert out["special"] == pytest.approx(5.0)
    assert out["total"] == pytest.approx(0.25)


def test_segment_relevance_all_zero_and_groups():
    assert segment_relevance([0.0, 0.0], ["query", "special"])["total"] == 0.0
    out = segment_relevance([4.0, -2.0, 1.0], ["instruction", "instruction", "query"],
                            groups={"instruction_target": [True, False, False]})
    assert out["instruction_target"] == pytest.approx(1.0)
    assert out["instruction"] == pytest.approx(0.5)


def test_span_helpers():
    assert complement(10, [(6, 8), (0, 2), (1, 3)]) == [(3, 6), (8, 10)]
    assert shift_spans({"query": [(0, 2)]}, 5) == {"query": [(5, 7)]}
    spans = add_span({"query": [(0, 2)]}, "answer", 2, 4)
    assert spans["answer"] == [(2, 4)] and add_span(spans, "answer", 4, 4)["answer"] == [(2, 4)]


def test_phrase_mask_marks_phrases_naming_the_target():
    text = "Do not say hello. Use lowercase."
    phrases = [(0, 17), (18, 32)]
    offsets = [(0, 2), (11, 16), (18, 21), (22, 31)]
    assert phrase_mask(offsets, text, phrases, " Hello") == [True, True, False, False]
    assert phrase_mask(offsets, text, phrases, " ") == [False] * 4
