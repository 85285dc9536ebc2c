"""What if? (engine.cases.whatif, engine.present.whatif): known answers on a hand-set model, the cached prefix
against full forwards, edit specs and refusals, the aligned before/after strip, and the CLI."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hand_set_lm import TOP_LOGIT, bigram_model, make_tokenizer
from test_present_cli import _run

from engine.cases.whatif import (
    MAX_EDITS,
    Edit,
    apply_edits,
    edited_attribution,
    positions_of,
    remove,
    replace,
    what_if,
    what_if_attribution,
)
from engine.objectives import Objective
from engine.records import FailureLensError


@pytest.fixture(scope="module")
def bigram(tmp_path_factory):
    """A Qwen3 whose next token depends only on the last token: after letter c, the next letter; else 'a'."""
    from engine.models import load_model

    folder = tmp_path_factory.mktemp("bigram")
    tok = make_tokenizer(folder)
    bigram_model(tok).save_pretrained(folder)
    return load_model(str(folder), device="cpu")


def _att(h):
    from engine.heatmap import attribute

    return attribute(h, "xyz d", Objective(target="e", contrast="a"))  # after "d" the model says "e"


def test_removing_the_deciding_token_flips_to_the_right_answer(bigram):
    att = _att(bigram)
    last = len(att.token_ids) - 1
    assert positions_of(att.tokens, att.special_mask, "d") == [last]
    r, after = what_if_attribution(bigram, att, [remove(last)])
    top = TOP_LOGIT(bigram.model)
    assert r.before.top1 == "e" and r.after.top1 == "a" and r.flipped
    assert r.before.logit_diff == pytest.approx(top, rel=1e-4) and r.after.logit_diff == pytest.approx(-top, rel=1e-4)
    assert r.before.p_target > 0.5 > r.after.p_target and r.after.p_contrast > 0.5
    assert r.sentence.startswith("Removing 'd' flips the answer to 'a' — the right answer (Δℓ +")
    assert r.token_ids[last] == bigram.tokenizer.pad_token_id  # no unk token: the checks' neutral choice is pad
    assert r.changed == (last,) and r.first_changed == last and r.prefix_reused
    # the edited heatmap explains the edited prompt: same target / contrast, its Δℓ is the after Δℓ
    assert after.target.text == "e" and after.contrast.text == "a" and after.token_ids == list(r.token_ids)
    assert after.logit_diff == pytest.approx(r.after.logit_diff, abs=1e-5 * max(1.0, top))
    assert after.offsets == att.offsets


def test_replace_with_a_word_and_a_change_that_does_nothing(bigram):
    att = _att(bigram)
    last = len(att.token_ids) - 1
    r = what_if(bigram, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id,
                [replace(last, "q")])
    assert r.after.top1 == "r" and abs(r.after.logit_diff) < 1e-4  # neither 'e' nor 'a' follows 'q'
    assert r.sentence.startswith("Replacing 'd' with 'q' flips the answer to 'r' (")
    r = what_if(bigram, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id, [remove(1)])
    assert not r.flipped and "changes almost nothing: the answer stays 'e'" in r.sentence
    # a stack: the later edit of the same position wins; removing twice says so once
    r = what_if(bigram, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id,
                [replace(last, "q"), remove(last)])
    assert r.after.top1 == "a"
    r = what_if(bigram, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id,
                [remove(0), remove(0)])
    assert r.sentence.startswith("Removing 'x' (twice) ")


def test_refusals_name_the_problem(bigram):
    att = _att(bigram)
    tok = bigram.tokenizer
    with pytest.raises(FailureLensError, match="is 2 tokens, not one"):  # the message of the token boxes
        apply_edits(tok, att.token_ids, att.special_mask, [replace(0, "zz")])
    with pytest.raises(FailureLensError, match="names token 99, but the prompt has 5 tokens"):
        apply_edits(tok, att.token_ids, att.special_mask, [remove(99)])
    special = [True] + [False] * (len(att.token_ids) - 1)
    with pytest.raises(FailureLensError, match="special token"):
        apply_edits(tok, att.token_ids, special, [remove(0)])
    with pytest.raises(FailureLensError, match="more than the limit"):
        apply_edits(tok, att.token_ids, att.special_mask, [remove(1)] * (MAX_EDITS + 1))
    with pytest.raises(FailureLensError, match="No token 'zebra' in this prompt"):
        positions_of(att.tokens, att.special_mask, "zebra")
    with pytest.raises(FailureLensError, match="1..200 characters"):
        replace(0, "")


def test_edit_specs_round_trip_and_bad_specs_are_refused():
    for e in (remove(3), replace(12, "a=b c")):
        assert Edit.parse(e.spec()) == e
    for bad in ("rm:", "rm:x", "rp:3", "rm:3=a", "xx:1", "rm:-1", "rm:²", 5, None, "rp:1=" + "w" * 300):
        with pytest.raises(FailureLensError, match="is not an edit"):
            Edit.parse(bad)


@pytest.mark.parametrize("arch", ["qwen3", "gpt2", "gemma3"])
def test_cached_prefix_equals_full_forward(tiny_model_dir, arch):
    from engine.heatmap import attribute
    from engine.models import load_model

    h = load_model(str(tiny_model_dir(arch)), device="cpu")
    att = attribute(h, "the cat sat on the mat and the dog lay by the door", Objective("#5", "#7"))
    edits = [remove(6), replace(9, "a")]
    fast = what_if(h, att.token_ids, att.special_mask, 5, 7, edits)
    slow = what_if(h, att.token_ids, att.special_mask, 5, 7, edits, reuse_prefix=False)
    assert fast.first_changed == 6 and not slow.prefix_reused
    for side in ("before", "after"):
        a, b = getattr(fast, side), getattr(slow, side)
        assert a.top1_id == b.top1_id
        assert a.logit_diff == pytest.approx(b.logit_diff, abs=2e-5 * max(1.0, abs(b.logit_diff)))
        assert a.p_target == pytest.approx(b.p_target, abs=1e-5)
        assert a.p_contrast == pytest.approx(b.p_contrast, abs=1e-5)
    assert fast.before.logit_diff == pytest.approx(att.logit_diff, abs=2e-5 * max(1.0, abs(att.logit_diff)))
    after = edited_attribution(h, att, fast)
    assert after.logit_diff == pytest.approx(fast.after.logit_diff, abs=2e-5 * max(1.0, abs(after.logit_diff)))


def test_aligned_strip_before_after_and_difference(bigram):
    from engine.present.aligned import strip_fragment
    from engine.present.whatif import whatif_strip

    att = _att(bigram)
    last = len(att.token_ids) - 1
    r, after = what_if_attribution(bigram, att, [remove(last)])
    s = whatif_strip(att.tokens, att.special_mask, att.relevance, after.relevance, r.tokens, r.changed)
    assert s.names == ("before", "after", "after − before")
    assert len(s.columns) == len(att.tokens) and s.columns[last] == "d→<|endoftext|>"
    assert s.columns[:last] == tuple(att.tokens[:last])
    assert [sum(row) for row in s.raw[:2]] == pytest.approx([sum(att.relevance), sum(after.relevance)], abs=1e-5)
    html = strip_fragment(s)
    assert "d→&lt;|endoftext|&gt;" in html and "<|endoftext|>" not in html  # token text is escaped


def _xs():
    from engine import zoo

    f = zoo.load_failures("xs")[0]
    return f, f"{f.model}/{f.case_id}"


def test_cli_whatif_json_and_bad_input():
    f, ref = _xs()
    word = f.prompt.split()[2]
    out = _run("whatif", "--model", "zoo:xs", "--case", ref, "--remove", word, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["case"] == ref and d["edits"] and all(e.startswith("rm:") for e in d["edits"])
    assert d["before"]["logit_diff"] == pytest.approx(f.logit_diff, abs=1e-3)
    assert {"top1", "p_target", "p_contrast", "logit_diff"} <= set(d["after"]) and d["sentence"].startswith("Removing")
    text = _run("whatif", "--model", "zoo:xs", "--case", ref, "--remove", word)
    assert text.returncode == 0 and d["sentence"] in text.stdout and "before " in text.stdout
    for args, msg in ((["--remove", "zebra-word"], "No token 'zebra-word'"),
                      (["--replace", "nothing"], "is not WORD=NEW"), ([], "Name at least one edit")):
        bad = _run("whatif", "--model", "zoo:xs", "--case", ref, *args)
        assert bad.returncode == 2 and msg in bad.stderr and "Traceback" not in bad.stderr


def test_cli_case_save_and_explain_case_file(tmp_path):
    f, ref = _xs()
    word = f.prompt.split()[2]
    path = tmp_path / "x.flcase"
    out = _run("case", "save", "--model", "zoo:xs", "--case", ref, "--remove", word, "--note", "the <b>word</b> $x$",
               "--author", "ana", "--category", "M-IA", "--check", "--out", str(path))
    assert out.returncode == 0, out.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["x.flcase"]  # written atomically, no temporary left
    d = json.loads(_run("explain", "--case-file", str(path), "--json").stdout)
    assert d["status"] == "same" and d["notice"] == ""
    saved = d["case_file"]["results"]
    assert d["recomputed"]["whatif"]["sentence"] == saved["whatif"]["sentence"]
    assert d["recomputed"]["summary"]["logit_diff"] == pytest.approx(saved["logit_diff"], abs=1e-5)
    assert saved["verdict"] in ("explains", "fragile", "partly", "not_explained", "no_failure")
    assert d["case_file"]["notes"][0]["hypothesis"] == "the <b>word</b> $x$"
    other = _run("explain", "--case-file", str(path), "--model", "zoo:s")
    assert other.returncode == 0 and other.stdout.startswith("note: This case was saved with zoo:xs, not zoo:s")
    assert "Saved results (read-only)" in other.stdout and "ana: the <b>word</b> $x$" in other.stdout
    for args, msg in ((["--case-file", str(tmp_path / "none.flcase")], "not found"),
                      (["--case", ref], "Give --model")):
        bad = _run("explain", *args)
        assert bad.returncode == 2 and msg in bad.stderr
    bad = _run("case", "save", "--model", "zoo:xs", "--case", ref, "--out", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "use a .flcase file name" in bad.stderr
    # a case file with a text edit (saved from the page) is recomputed with its prompt
    from engine.cases.casefile import load_case, write_case
    from engine.cases.whatif import text_edit

    cf = load_case(path)
    i = cf.prompt.index(word)
    spec = text_edit(cf.prompt, cf.prompt[:i] + "zz" + cf.prompt[i + len(word):]).spec()
    write_case(path, dataclasses.replace(cf, edits=(spec,)))
    d = json.loads(_run("explain", "--case-file", str(path), "--json").stdout)
    assert d["recomputed"]["whatif"]["edits"] == [spec] and "with 'zz'" in d["recomputed"]["whatif"]["sentence"]


def test_long_prompts_draw_a_window_around_the_edits():
    from engine.present.whatif import WINDOW, window

    assert window(50, [3]) == (0, 50)
    assert window(10_000, [5000, 5010]) == (5005 - WINDOW // 2, 5005 + WINDOW // 2)
    assert window(10_000, [9990]) == (10_000 - WINDOW, 10_000) and window(10_000, [2]) == (0, WINDOW)
    assert window(10_000, []) == (0, WINDOW)


def test_cli_case_file_of_an_own_prompt(tmp_path):
    f, _ = _xs()
    path = tmp_path / "own.flcase"
    out = _run("case", "save", "--model", "zoo:xs", "--prompt", f.prompt, "--target", f"#{f.target_id}",
               "--contrast", f"#{f.contrast_id}", "--out", str(path))
    assert out.returncode == 0, out.stderr
    d = json.loads(_run("explain", "--case-file", str(path), "--json").stdout)
    assert d["status"] == "same" and d["case_file"]["case"] == "" and d["case_file"]["edits"] == []
    assert d["recomputed"]["whatif"] is None
    assert d["recomputed"]["summary"]["logit_diff"] == pytest.approx(f.logit_diff, abs=1e-3)


def test_a_text_edit_retokenizes_the_prompt_and_shows_before_and_after(bigram):
    from engine.cases.whatif import text_edit, what_if_text
    from engine.present.whatif import text_story

    att = _att(bigram)  # "xyz d": after "d" the model says "e"
    e = text_edit("xyz d", "xyz c")
    assert e.spec() == "tx:4-5=c" and Edit.parse(e.spec()) == e
    r, after = what_if_attribution(bigram, att, [e], prompt="xyz d")
    top = TOP_LOGIT(bigram.model)
    assert r.before.top1 == "e" and r.after.top1 == "d" and r.flipped  # after "c": "d"
    assert r.sentence.startswith("Replacing 'd' with 'c' flips the answer to 'd'")
    assert after.logit_diff == pytest.approx(r.after.logit_diff, abs=1e-5 * max(1.0, top))
    assert r.changed == (len(after.tokens) - 1,)
    # an insertion adds tokens: the rows line up on the text, the new tokens in the edited column
    e2 = text_edit("xyz d", "xyz qq d")
    assert (e2.position, e2.end, e2.word) == (4, 4, "qq ")
    r2, after2 = what_if_text(bigram, att, "xyz d", e2)
    assert len(after2.tokens) > len(att.tokens) and not r2.flipped
    assert r2.sentence.startswith("Inserting 'qq ' changes almost nothing")
    story = text_story(r2, "xyz d", (att.tokens, att.offsets, att.special_mask, att.relevance),
                       (after2.tokens, after2.offsets, after2.special_mask, after2.relevance))
    strip = story.strip
    assert strip.names == ("before", "after", "after − before")
    edited = [c for c in strip.columns if "→" in c]
    assert edited == ["→q", "→q", "→ "], strip.columns  # inserted: nothing before, the new tokens after
    assert strip.columns[-1] == "d" and strip.values[0][-1] == pytest.approx(1.0)  # "d" keeps its own column
    assert abs(sum(strip.raw[1]) - sum(after2.relevance)) <= 1e-5 * max(1.0, sum(map(abs, after2.relevance)))
    # refusals: a text edit of another prompt, a text edit mixed with token edits, no change at all
    with pytest.raises(FailureLensError, match="belongs to another prompt"):
        what_if_text(bigram, att, "xy", Edit.parse("tx:4-9=b"))
    with pytest.raises(FailureLensError, match="stands alone"):
        what_if(bigram, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id,
                [remove(1), e])
    with pytest.raises(FailureLensError, match="the prompt as it is"):
        text_edit("xyz d", "xyz d")
    for bad in ("tx:5-4=a", "tx:1=a", "tx:a-b=c", "tx:1-2"):
        with pytest.raises(FailureLensError, match="is not an edit"):
            Edit.parse(bad)
