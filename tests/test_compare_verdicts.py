"""Verdicts (fixed / still wrong / different wrong answer) pinned on constructed logits, then on real models:
one forward per model through logit_diffs, the first-token note for pairs a tokenizer cannot express as single
tokens, the zoo case across sizes and the `compare` CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from engine.compare import verdicts as V
from engine.compare.deltas import CaseDelta, CaseSpec, logit_diffs
from engine.models import load_model
from engine.records import FailureLensError, TokenChoice


class Words:
    """A tokenizer stand-in for `display`: id -> word."""

    words = ["<bos>", "2", "3", "1", "31", "319", "x"]

    def decode(self, ids, **_):
        return self.words[ids[0]]


def logits(top: int, others: dict[int, float] | None = None) -> torch.Tensor:
    row = torch.zeros(len(Words.words))
    for i, v in (others or {}).items():
        row[i] = v
    row[top] = 5.0
    return row


CASE = CaseSpec("eval-math-00014", "<q> what is 298 plus 21 ? <a>", "2", "3", reference="319")
T, C = TokenChoice(1, "2"), TokenChoice(2, "3")


def test_verdicts_on_constructed_logits():
    fixed = V.from_logits(logits(2, {1: 1.0}), Words(), CASE, "m", T, C)
    wrong = V.from_logits(logits(1, {2: 4.0}), Words(), CASE, "m", T, C)
    other = V.from_logits(logits(3, {1: 1.0, 2: 2.0}), Words(), CASE, "m", T, C)
    assert (fixed.verdict, wrong.verdict, other.verdict) == (V.FIXED, V.STILL_WRONG, V.DIFFERENT)
    assert fixed.delta == pytest.approx(1.0 - 5.0) and wrong.delta == pytest.approx(5.0 - 4.0)
    # Δℓ < 0 does not make a fix when a third token wins, and a narrow failure is still wrong
    assert other.delta == pytest.approx(-1.0) and other.top1.text == "1"
    narrow = V.from_logits(logits(1, {2: 4.9}), Words(), CASE, "m", T, C)
    assert narrow.verdict == V.STILL_WRONG and narrow.delta == pytest.approx(0.1)
    probs = torch.softmax(logits(1, {2: 4.0}), -1)
    assert wrong.p_target == pytest.approx(float(probs[1])) and wrong.p_contrast == pytest.approx(float(probs[2]))
    assert wrong.p_top1 == wrong.p_target


def test_a_start_of_the_reference_continuation_counts_as_fixed():
    # a tokenizer with "31" / "319" pieces: its top-1 "31" starts the right answer "319"
    assert V.from_logits(logits(4), Words(), CASE, "m", T, C).verdict == V.FIXED
    assert V.from_logits(logits(5), Words(), CASE, "m", T, C).verdict == V.FIXED
    assert V.verdict(TokenChoice(6, "x"), T, C, "319") == V.DIFFERENT
    # without a reference the contrast text is the reference
    assert V.verdict(TokenChoice(4, "31"), T, TokenChoice(9, "3"), "") == V.DIFFERENT
    assert V.verdict(TokenChoice(4, " 3"), T, TokenChoice(9, "3"), "3") == V.FIXED
    assert V.verdict(TokenChoice(4, " "), T, C, " 319") == V.DIFFERENT  # whitespace alone is no answer


def test_skipped_cases_are_not_scored_and_counts_list_every_verdict():
    skipped = V.from_delta(CaseDelta("c", "m", "math", None, skipped="the prompt is too long"), CASE)
    assert skipped.verdict == V.NOT_SCORED and "too long" in skipped.notes
    rows = [V.from_logits(logits(t), Words(), CASE, m, T, C) for m, t in (("a", 2), ("a", 1), ("b", 3))] + [skipped]
    counts = V.counts(rows, ["a", "b", "m"])
    assert len(counts) == 3 * len(V.VERDICTS)
    got = {(r.model, r.verdict): r.count for r in counts.itertuples()}
    assert got[("a", V.FIXED)] == 1 and got[("a", V.STILL_WRONG)] == 1 and got[("b", V.DIFFERENT)] == 1
    assert got[("m", V.NOT_SCORED)] == 1 and V.headline(counts, "a") == "fixed 1 of 2"
    table = V.table(rows)
    assert list(table.columns) == V.COLUMNS and table["verdict"].tolist()[:3] == [V.FIXED, V.STILL_WRONG, V.DIFFERENT]


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    return load_model(str(tiny_model_dir("llama")))


def test_real_model_verdict_matches_its_own_forward(llama):
    prompt = "the capital of france is"
    with torch.no_grad():
        row = llama.model(torch.tensor([llama.tokenizer(prompt)["input_ids"]])).logits[0, -1]
    top, second = row.topk(2).indices.tolist()
    text = [llama.tokenizer.decode([i]) for i in (top, second)]
    for target, contrast, want in ((text[0], text[1], V.STILL_WRONG), (text[1], text[0], V.FIXED)):
        case = CaseSpec("c", prompt, target, contrast)
        got = V.case_across_models([llama], case, labels=["tiny"]).rows[0]
        assert got.verdict == want and got.model == "tiny" and got.top1.token_id == top
        assert got.delta == pytest.approx(
            float(row[llama.tokenizer(target, add_special_tokens=False).input_ids[0]]
                  - row[llama.tokenizer(contrast, add_special_tokens=False).input_ids[0]]),
            abs=1e-4)
    # the view's empty target / contrast are the top-1 and runner-up
    spec = V.spec_from_view(llama, prompt)
    assert (spec.target, spec.contrast) == tuple(text)
    assert V.spec_from_view(llama, prompt, f"#{second}").target == text[1]
    with pytest.raises(FailureLensError, match="same token"):
        V.spec_from_view(llama, prompt, text[0], text[0])


def test_a_pair_split_into_several_tokens_gets_a_note(llama):
    case = CaseSpec("c", "the capital of france is", " paris", " the")
    row = V.case_across_models([llama], case).rows[0]
    assert "is 3 tokens" in row.notes and row.verdict in V.VERDICTS[:3]
    d = logit_diffs(llama, [case])[0]
    assert row.delta == d.delta and row.target == d.target


def test_zoo_case_across_sizes_agrees_with_the_stored_failure():
    from engine import zoo
    from engine.compare.deltas import cases_from_failures

    if "l" not in zoo.zoo_sizes():
        pytest.skip("the zoo is not trained")
    failure = next(f for f in zoo.load_failures("l") if f.case_id == "eval-math-00014")
    case = cases_from_failures([failure])[0]
    assert case.reference == "319"
    sizes = zoo.zoo_sizes()
    result = V.case_across_models([load_model(f"zoo:{s}") for s in sizes], case, [f"zoo:{s}" for s in sizes])
    l_row = result.rows[-1]
    assert l_row.verdict == V.STILL_WRONG and l_row.top1.text == failure.target
    assert l_row.delta == pytest.approx(failure.logit_diff, abs=1e-3)
    for r in result.rows:  # each verdict follows from the row's own top-1 (the rule, not a threshold)
        assert r.verdict == V.verdict(r.top1, r.target, r.contrast, case.reference)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", "compare", *args], capture_output=True, text=True,
                          timeout=300)


def test_compare_cli_json_and_errors(tiny_model_dir):
    a, b = str(tiny_model_dir("llama")), str(tiny_model_dir("qwen3"))
    out = _cli("--models", f"{a},{b}", "--prompt", "the capital of france is", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [r["model"] for r in got["rows"]] == [a, b] and got["rows"][0]["verdict"] == V.STILL_WRONG
    fixed = sum(r["count"] for r in got["counts"] if r["verdict"] == V.FIXED)
    assert fixed == sum(r["verdict"] == V.FIXED for r in got["rows"])
    text = _cli("--models", a, "--prompt", "the capital of france is")
    assert text.returncode == 0 and "still wrong" in text.stdout and "fixed in 0 of 1 models" in text.stdout
    for bad, msg in ((("--models", a, "--case", "nope/x"), "write <zoo model>/<case id>"),
                     (("--models", a), "Give a case"), (("--models", " , ", "--prompt", "x"), "--models is empty")):
        out = _cli(*bad)
        assert out.returncode == 2 and msg in out.stderr and "Traceback" not in out.stderr
