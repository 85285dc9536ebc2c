import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from engine.compare.align import align_attributions, align_tokens
from engine.records import Attribution, FailureLensError, TokenChoice

TEXT = "hello world again"


def word_level() -> Tokenizer:
    """Whitespace word tokenizer that prepends <bos> (empty span) and drops the spaces."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<bos>": 1, "hello": 2, "world": 3, "again": 4}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return tok


def char_level() -> Tokenizer:
    """One token per character, except the merge 'o w' that straddles the word boundary hello|world."""
    vocab = {c: i for i, c in enumerate(sorted(set(TEXT)))}
    vocab["o "], vocab["o w"] = len(vocab), len(vocab) + 1
    return Tokenizer(models.BPE(vocab, [("o", " "), ("o ", "w")]))


def test_two_real_tokenizers_groups_by_hand():
    a, b = word_level().encode(TEXT), char_level().encode(TEXT)
    assert a.tokens == ["<bos>", "hello", "world", "again"]
    assert b.tokens[4] == "o w" and b.offsets[4] == (4, 7)
    rel_a = [5.0, 1.0, -2.0, 0.5]  # the BOS 5.0 is not part of A's max
    rel_b = [0.1] * len(b.tokens)
    rel_b[4] = -0.4  # B's max |R|
    al = align_tokens(TEXT, a.offsets, b.offsets, rel_a, rel_b, a.tokens, b.tokens)
    got = [(g.start, g.end, g.tokens_a, g.tokens_b) for g in al.groups]
    assert got == [
        (0, 0, (0,), ()),  # <bos> alone
        (0, 11, (1, 2), (0, 1, 2, 3, 4, 5, 6, 7, 8)),  # 'o w' straddles hello|world: both words merge
        (11, 12, (), (9,)),  # the space only B covers
        (12, 17, (3,), (10, 11, 12, 13, 14)),
    ]
    assert al.scale_a == 2.0 and al.scale_b == pytest.approx(0.4)
    bos, hw, space, again = al.groups
    assert bos.relevance_a == pytest.approx(2.5) and bos.relevance_b == 0.0
    assert hw.relevance_a == pytest.approx(-0.5)
    assert hw.relevance_b == pytest.approx((8 * 0.1 - 0.4) / 0.4)
    assert hw.relevance_b == pytest.approx(1.0) and hw.diff == pytest.approx(-1.5)
    assert space.relevance_a == 0.0 and space.relevance_b == pytest.approx(0.25)
    assert again.relevance_a == pytest.approx(0.25) and again.relevance_b == pytest.approx(1.25)
    table = al.table()
    assert list(table["tokens_a"]) == ["<bos>", "hello|world", "—", "again"]
    assert table.loc[1, "tokens_b"] == "h|e|l|l|o w|o|r|l|d"
    assert list(table["text"]) == ["", "hello world", " ", "again"]


def test_identical_tokenisations_align_one_to_one():
    offs = [(0, 5), (5, 11), (11, 17)]
    al = align_tokens(TEXT, offs, offs, [1.0, 2.0, -4.0], [1.0, 2.0, -4.0])
    assert [(g.tokens_a, g.tokens_b) for g in al.groups] == [((0,), (0,)), ((1,), (1,)), ((2,), (2,))]
    assert all(g.diff == 0.0 for g in al.groups)
    assert [g.relevance_a for g in al.groups] == [0.25, 0.5, -1.0]


def test_touching_spans_stay_apart_and_shared_byte_spans_merge():
    # B splits one multi-byte character into two tokens with the same span (byte-level BPE does this)
    text = "aé b"
    al = align_tokens(text, [(0, 2), (3, 4)], [(0, 1), (1, 2), (1, 2), (2, 3), (3, 4)])
    assert [(g.start, g.end, g.tokens_a, g.tokens_b) for g in al.groups] == [
        (0, 2, (0,), (0, 1, 2)), (2, 3, (), (3,)), (3, 4, (1,), (4,))]
    assert all(g.relevance_a == 0.0 for g in al.groups)  # no relevance given


def test_empty_span_tokens_keep_their_place():
    # A: <bos> hello <sep> world <eos>; B: hello world <eos>
    a = [(0, 0), (0, 5), (0, 0), (6, 11), (0, 0)]
    b = [(0, 5), (6, 11), (0, 0)]
    al = align_tokens("hello world", a, b, labels_a=["<bos>", "hello", "<sep>", "world", "<eos>"])
    assert [(g.tokens_a, g.tokens_b) for g in al.groups] == [
        ((0,), ()), ((1,), (0,)), ((2,), ()), ((3,), (1,)), ((4,), ()), ((), (2,))]
    assert al.table()["tokens_a"].tolist() == ["<bos>", "hello", "<sep>", "world", "<eos>", "—"]


def test_equal_empty_span_tokens_of_both_sides_share_a_group():
    # A: <bos> hello world <eos>; B: <bos> <bos> hello world (a doubled BOS pairs with A's one, in order)
    a, b = [(0, 0), (0, 5), (6, 11), (11, 11)], [(0, 0), (0, 0), (0, 5), (6, 11)]
    al = align_tokens("hello world", a, b, [1.0, 2.0, 4.0, 8.0], [16.0, 32.0, 1.0, 1.0],
                      labels_a=["<bos>", "hello", "world", "<eos>"], labels_b=["<bos>", "<bos>", "hello", "world"])
    assert [(g.tokens_a, g.tokens_b) for g in al.groups] == [
        ((0,), (0,)), ((), (1,)), ((1,), (2,)), ((2,), (3,)), ((3,), ())]
    assert al.groups[0].relevance_a == pytest.approx(1.0 / 4.0) and al.groups[0].relevance_b == pytest.approx(16.0)
    assert al.table()["tokens_b"].tolist() == ["<bos>", "<bos>", "hello", "world", "—"]


def test_bad_inputs_are_user_errors():
    with pytest.raises(FailureLensError, match="outside the text"):
        align_tokens("abc", [(0, 4)], [(0, 3)])
    with pytest.raises(FailureLensError, match="relevance"):
        align_tokens("abc", [(0, 3)], [(0, 3)], relevance_a=[1.0, 2.0])


def _att(tokens, offsets, rel):
    return Attribution("m", tokens, list(range(len(tokens))), rel, [rel], 0.0, "logit_diff", "by_ref_token", 10,
                       len(tokens) - 1, TokenChoice(0, "x"), None, None, [], 1.0, "attnlrp",
                       [False] * len(tokens), offsets)


def test_align_attributions_uses_offsets_and_refuses_missing_ones():
    a = _att(["ab", "c"], [(0, 2), (2, 3)], [1.0, -1.0])
    b = _att(["a", "bc"], [(0, 1), (1, 3)], [2.0, 2.0])
    al = align_attributions("abc", a, b)
    assert len(al.groups) == 1 and al.groups[0].relevance_a == 0.0 and al.groups[0].relevance_b == 2.0
    slow = _att(["ab", "c"], [(0, 0), (0, 0)], [1.0, 1.0])
    with pytest.raises(FailureLensError, match="offsets"):
        align_attributions("abc", slow, b)


def test_align_real_heatmaps_of_two_models(tiny_model_dir):
    from engine.heatmap import attribute
    from engine.models import load_model

    prompt = "the capital of france is"
    a = attribute(load_model(str(tiny_model_dir("llama"))), prompt)
    b = attribute(load_model(str(tiny_model_dir("qwen3"))), prompt)
    al = align_attributions(prompt, a, b)
    # same tokenizer: one group per token, and the groups tile the text
    assert [(g.tokens_a, g.tokens_b) for g in al.groups] == [((i,), (i,)) for i in range(len(a.tokens))]
    assert "".join(g.text for g in al.groups) == prompt
    assert max(abs(g.relevance_a) for g in al.groups) == pytest.approx(1.0)
    assert al.table()["tokens_a"].tolist() == a.tokens


# ---- several rows (align_rows) -------------------------------------------------------------------------------

def test_rows_agree_with_the_two_sided_alignment():
    from engine.compare.align import align_rows

    a, b = [(0, 0), (0, 5), (6, 11), (11, 11)], [(0, 0), (0, 0), (0, 5), (6, 11)]
    la, lb = ["<bos>", "hello", "world", "<eos>"], ["<bos>", "<bos>", "hello", "world"]
    two = align_tokens("hello world", a, b, [1.0, 2.0, 4.0, 8.0], [16.0, 32.0, 1.0, 1.0], la, lb)
    rows = align_rows("hello world", [a, b], [[1.0, 2.0, 4.0, 8.0], [16.0, 32.0, 1.0, 1.0]], [la, lb])
    assert [g.tokens for g in rows.groups] == [(g.tokens_a, g.tokens_b) for g in two.groups]
    assert [g.label for g in rows.groups] == ["<bos>", "<bos>", "hello", "world", "<eos>"]


def test_three_tokenisations_share_columns_and_one_bos():
    from engine.compare.align import align_rows

    text = "hello world"
    offs = [[(0, 0), (0, 5), (6, 11)],  # words
            [(0, 0), (0, 2), (2, 5), (5, 11)],  # he|llo| world
            [(0, 0), (0, 7), (7, 11)]]  # 'hello w' straddles the words: everything merges into one column
    rel = [[9.0, 1.0, -2.0], [5.0, 1.0, 1.0, 2.0], [7.0, 3.0, 1.0]]
    al = align_rows(text, offs, rel, [["<bos>", "a", "b"], ["<bos>", "c", "d", "e"], ["<bos>", "f", "g"]])
    assert [g.label for g in al.groups] == ["<bos>", "hello world"]  # one BOS column for three rows
    assert al.groups[0].tokens == ((0,), (0,), (0,))
    assert al.groups[1].tokens == ((1, 2), (1, 2, 3), (1, 2)) and al.groups[1].sums == (-1.0, 4.0, 4.0)
    # per row: each row / its own max |text column| (BOS left out of the max, so it may exceed 1)
    assert al.values("row") == [[9.0, -1.0], [1.25, 1.0], [1.75, 1.0]]
    assert al.values("shared") == [[2.25, -0.25], [1.25, 1.0], [1.75, 1.0]]
    assert al.diff(0, 1, "row") == [7.75, -2.0]
    table = al.table(["w", "c", "x"])
    assert len(table) == 6 and table["tokens"].tolist()[3:] == ["a|b", "c|d|e", "f|g"]
    with pytest.raises(FailureLensError, match="colour scale"):
        al.values("log")
    with pytest.raises(FailureLensError, match="outside"):
        align_rows("ab", [[(0, 3)]], [None], [None])


def test_align_attribution_rows_of_three_real_heatmaps(tiny_model_dir):
    from engine.compare.align import align_attribution_rows
    from engine.heatmap import attribute
    from engine.models import load_model

    prompt = "the capital of france is"
    atts = [attribute(load_model(str(tiny_model_dir(a))), prompt) for a in ("llama", "qwen3", "gpt2")]
    al = align_attribution_rows(prompt, atts)
    n = len(atts[0].tokens)
    assert all(len(a.tokens) == n for a in atts)  # one tokenizer for all tiny models: one column per token
    assert [g.tokens for g in al.groups] == [((i,), (i,), (i,)) for i in range(n)]
    for r, att in enumerate(atts):
        assert [g.sums[r] for g in al.groups] == pytest.approx(att.relevance)
