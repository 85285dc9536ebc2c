"""Token groups (engine.token_groups): boundaries of each kind on hand-written text, exact sums, expand round trips."""
import numpy as np
import pytest

from engine.token_groups import (
    Grouping,
    auto_window,
    default_kind,
    expand,
    group_sum,
    group_tokens,
    pieces,
    snippet,
    top_groups,
    window_around,
    with_open,
)

TEXT = "<s>The cat sat. It ran!\nNew line here\nend"


def _offsets(text: str, toks: list[str]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for t in toks:
        i = text.index(t, pos)
        out.append((i, i + len(t)))
        pos = i + len(t)
    return out


TOKS = ["<s>", "The", " cat", " sat", ".", " It", " ran", "!", "\n", "New", " line", " here", "\n", "end"]
PIECES = pieces(TEXT, _offsets(TEXT, TOKS), TOKS)
SPECIAL = [True] + [False] * (len(TOKS) - 1)


def _spans(g: Grouping) -> list[list[str]]:
    return [PIECES[s:e] for s, e in g.spans]


def test_pieces_cover_the_text_and_fall_back_to_tokens():
    assert "".join(PIECES) == TEXT
    assert pieces("ab", [(0, 0), (0, 0)], ["x", "y"]) == ["x", "y"]  # no offsets: the display tokens
    # an inserted token (empty span) covers nothing; gaps go to the token before them
    assert pieces("a  b", [(0, 0), (0, 1), (3, 4)], ["<s>", "a", "b"]) == ["", "a  ", "b"]


def test_lines_sentences_words_windows_and_specials_alone():
    lines = group_tokens("lines", PIECES, SPECIAL)
    assert [''.join(p) for p in _spans(lines)] == ["<s>", "The cat sat. It ran!\n", "New line here\n", "end"]
    sents = group_tokens("sentences", PIECES, SPECIAL)
    assert [''.join(p) for p in _spans(sents)] == ["<s>", "The cat sat.", " It ran!\n", "New line here\n", "end"]
    words = group_tokens("words", ["a", "b", " c", "d ", "e", "f"])
    assert [s for s in words.spans] == [(0, 2), (2, 4), (4, 5), (5, 6)]  # "ab", " cd ", "e", last token alone
    win = group_tokens("windows", ["x"] * 10, window=4)
    assert win.spans == [(0, 4), (4, 8), (8, 9), (9, 10)]
    assert group_tokens("tokens", PIECES).n_groups == len(TOKS)


def test_segments_follow_label_runs():
    labels = ["special", "instruction", "instruction", "query", "query", "query", "answer"]
    g = group_tokens("segments", ["p"] * 7, [True] + [False] * 6, labels)
    assert g.spans == [(0, 1), (1, 3), (3, 6), (6, 7)]
    with pytest.raises(ValueError, match="one label per token"):
        group_tokens("segments", ["p"] * 7, labels=labels[:3])


def test_group_sum_keeps_the_total_exactly():
    g = group_tokens("lines", PIECES, SPECIAL)
    r = np.array([0.5, -0.25, 0.125, 1.0, -2.0, 0.75, 0.0625, -0.5, 0.25, 3.0, -1.5, 0.375, 0.0, 2.0])  # dyadic: exact
    got = group_sum(r, g)
    assert got.sum() == r.sum()
    assert got.tolist() == [0.5, -0.25 + 0.125 + 1.0 - 2.0 + 0.75 + 0.0625 - 0.5 + 0.25, 3.0 - 1.5 + 0.375 + 0.0, 2.0]
    rng = np.random.default_rng(0)
    big = rng.normal(size=(3, 5000))
    gw = group_tokens("windows", ["x"] * 5000, window=64)
    np.testing.assert_allclose(group_sum(big, gw).sum(-1), big.sum(-1), rtol=1e-12)
    with pytest.raises(ValueError, match="13 values"):
        group_sum(r[:-1], g)


def test_expand_and_open_round_trip():
    g = group_tokens("lines", PIECES, SPECIAL)
    e = expand(g, 1, PIECES)
    assert e.spans[:3] == [(0, 1), (1, 2), (2, 3)] and e.spans[-2:] == [(9, 13), (13, 14)]
    assert e.texts[1:8] == tuple(PIECES[1:8])
    r = np.arange(len(TOKS), dtype=np.float64)
    assert group_sum(r, e).sum() == r.sum()
    # opening by first token: the same result, and every group opened gives back the token view
    assert with_open(g, [1], PIECES) == e
    assert with_open(g, list(g.starts), PIECES).spans == group_tokens("tokens", PIECES).spans
    assert with_open(g, [5, 999], PIECES) == g  # not the start of a group: ignored
    assert g.find(4) == 1 and g.find(0) == 0 and g.find(13) == 3
    with pytest.raises(ValueError):
        expand(g, 9, PIECES)


def test_default_kind_by_length_and_shape():
    assert default_kind(len(TOKS), PIECES) == "tokens"
    lines = ["word"] * 9 + ["end\n"]
    assert default_kind(1000, lines * 100) == "lines"
    one_line = ["w "] * 999 + ["end."]  # one sentence, no line: windows
    assert default_kind(1000, one_line) == "windows"
    assert auto_window(4000) == 64 and auto_window(300) == 16 and auto_window(32000) == 512


def test_top_groups_window_and_snippet():
    v = [0.1, -3.0, 2.0, 0.0, -0.5, 5.0]
    assert top_groups(v, 2) == ([5, 2], [1, 4])
    g = group_tokens("windows", ["x"] * 100, window=10)  # 10 groups of 10 (the last token alone: 11 groups)
    assert window_around(g, 5, 30) == (4, 7)
    assert window_around(g, 0, 35) == (0, 3)
    assert window_around(g, 5, 1) == (5, 6)  # at least the group itself
    assert snippet("a  b\n\nc" * 20, 10) == "a b ca b …"
