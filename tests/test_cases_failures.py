import pytest
import torch
from hand_set_lm import TOP_LOGIT, bigram_model, make_tokenizer, tid

from engine.cases.benchmarks import Case, apply_template
from engine.cases.failures import encode_pair, failure_at, find_first_divergence, keep, read_failure_points
from engine.cases.segments import add_span, assign_segments
from engine.records import FailureLensError


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    tok = make_tokenizer(tmp_path_factory.mktemp("tok"))
    return bigram_model(tok), tok


def test_first_divergence_known_answer(lm):
    model, tok = lm
    div = find_first_divergence(model, tok, "Count: a", "bcdXf")
    n_prompt = len(tok("Count: a")["input_ids"])
    assert (div.ref_index, div.position, div.n_prompt_tokens) == (3, n_prompt + 3, n_prompt)
    assert div.prefix == "bcd" and tok.decode(div.prefix_ids) == "Count: abcd"
    assert (div.target.text, div.contrast.text) == ("e", "X")
    assert div.logit_diff == pytest.approx(TOP_LOGIT(model), rel=1e-5)
    assert div.ref_rank == 3 and div.target_rank == 1 and div.source == "reference"
    assert [t.token for t in div.topk[:2]] == ["e", "f"] and len(div.topk) == 10
    with torch.no_grad():  # Δℓ agrees with a forward pass on the recorded prefix
        row = model(input_ids=torch.tensor([div.prefix_ids])).logits[0, -1]
    assert float(row[div.target.token_id] - row[div.contrast.token_id]) == pytest.approx(div.logit_diff)


def test_runner_up_reference_and_no_failure(lm):
    model, tok = lm
    div = find_first_divergence(model, tok, "x a", "bcf", top_k=3)  # after c the model prefers d, then e
    assert (div.ref_index, div.target.text, div.contrast.text) == (2, "d", "f")
    assert div.ref_rank == 3
    div = find_first_divergence(model, tok, "x a", "bce")
    assert div.ref_rank == 2 and div.logit_diff == pytest.approx(TOP_LOGIT(model) / 2, rel=1e-5)
    assert find_first_divergence(model, tok, "Count: a", "bcdef") is None
    first = find_first_divergence(model, tok, "x a", "z")
    assert first.ref_index == 0 and first.prefix == "" and first.prefix_ids == tok("x a")["input_ids"]


def test_divergence_after_chat_template_and_segments(lm):
    model, tok = lm
    case = Case("1", "t", "Go on. Say a", "abq", {"instruction": [(0, 6)], "query": [(7, 12)]})
    text, spans = apply_template(tok, case, thinking=None)
    div = find_first_divergence(model, tok, text, case.reference)  # after the template's final newline: "a"
    assert (div.ref_index, div.target.text, div.contrast.text, div.prefix) == (2, "c", "q", "ab")
    assert len(div.offsets) == len(div.special_mask) == len(div.prefix_ids) == div.position
    labels = assign_segments(div.offsets, add_span(spans, "answer", len(text), len(text) + len(div.prefix)),
                             div.special_mask)
    joined = text + div.prefix
    got = {lab: "".join(joined[s:e] for (s, e), seg in zip(div.offsets, labels) if seg == lab) for lab in set(labels)}
    assert got["instruction"] == "Go on." and got["query"] == " Say a" and got["answer"] == "ab"
    assert got["special"] == "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
    assert div.special_mask.count(True) == 3


def test_boundary_is_tokenised_separately(tmp_path):
    tok = make_tokenizer(tmp_path, merges=("ab",))
    assert len(tok("xab")["input_ids"]) == 2  # joined text merges a+b
    enc = encode_pair(tok, "xa", "bc")
    assert enc.ids == tok("xa")["input_ids"] + tok("bc", add_special_tokens=False)["input_ids"]
    assert enc.n_prompt == 2 and enc.offsets[2] == (2, 3)


def test_failure_at_person_chosen(lm):
    model, tok = lm
    by_char = failure_at(model, tok, "Count: a", "bcdXf", char=3, contrast="e")
    by_token = failure_at(model, tok, "Count: a", "bcdXf", token=3, contrast=tid(tok, "e"))
    assert by_char == by_token
    assert (by_char.target.text, by_char.contrast.text, by_char.prefix) == ("X", "e", "bcd")
    assert by_char.target_rank == 3 and by_char.ref_rank == 1 and by_char.source == "person"
    assert by_char.logit_diff == pytest.approx(-TOP_LOGIT(model), rel=1e-5)
    with pytest.raises(FailureLensError, match="not both"):
        failure_at(model, tok, "p", "abc", char=1, token=1, contrast="a")
    with pytest.raises(FailureLensError, match="outside the completion"):
        failure_at(model, tok, "p", "abc", char=3, contrast="a")
    with pytest.raises(FailureLensError, match="outside the completion"):
        failure_at(model, tok, "p", "abc", token=5, contrast="a")


def test_errors_and_filters(lm):
    model, tok = lm
    with pytest.raises(FailureLensError, match="no reference"):
        find_first_divergence(model, tok, "a", "")
    with pytest.raises(FailureLensError, match="prompt is empty"):
        find_first_divergence(model, tok, "", "ab")
    div = find_first_divergence(model, tok, "Count: a", "bcdXf")
    assert keep(div) and keep(div, min_logit_diff=1.0, max_ref_rank=3)
    assert not keep(div, min_logit_diff=100.0) and not keep(div, max_ref_rank=2) and not keep(None)


def test_zoo_model_failures_are_found_again():
    """The zoo ships failures found by its own evaluator: teacher forcing must find the same tokens."""
    from engine import zoo

    failures = zoo.load_failures()
    if not failures:
        pytest.skip("the zoo has no trained models / failures.jsonl yet (python -m engine.zoo.train)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = failures[0].model
    model = AutoModelForCausalLM.from_pretrained(zoo.zoo_path(name)).eval()
    tok = AutoTokenizer.from_pretrained(zoo.zoo_path(name))
    cases = {c.id: c for c in zoo.load_benchmark("eval")}
    for f in [f for f in failures if f.model == name][:3]:
        case = cases[f.case_id]
        div = find_first_divergence(model, tok, case.prompt, case.reference)
        assert (div.target.token_id, div.contrast.token_id) == (f.target_id, f.contrast_id)
        assert div.logit_diff == pytest.approx(f.logit_diff, abs=1e-3)


def test_failure_points_file(lm, tmp_path):
    model, tok = lm
    path = tmp_path / "points.jsonl"
    path.write_text('{"id": 1, "prompt": "Count: a", "completion": "bcdXf", "char": 3, "contrast": "e"}\n'
                    '{"id": "2", "prompt": "x", "completion": "ab", "token": 1, "contrast": 5, "model": "m"}\n')
    p1, p2 = read_failure_points(path)
    assert (p1.id, p1.char, p1.token, p2.model, p2.contrast) == ("1", 3, None, "m", 5)
    div = failure_at(model, tok, p1.prompt, p1.completion, char=p1.char, token=p1.token, contrast=p1.contrast)
    assert div.target.text == "X" and div.contrast.text == "e"
    path.write_text('{"id": 1, "prompt": "p", "completion": "c", "contrast": "e", "char": 0, "token": 0}\n')
    with pytest.raises(FailureLensError, match="line 1: .*exactly one of char or token"):
        read_failure_points(path)
