import csv
import gzip
import json

import pytest
from hand_set_lm import make_tokenizer

from engine.cases.benchmarks import Case, apply_template, last_boxed, load_benchmark
from engine.cases.failures import encode_pair
from engine.cases.segments import assign_segments
from engine.records import FailureLensError

IFEVAL_PROMPT = ("Write a 300+ word summary of the wikipedia page about Raymond III. Do not use any commas "
                 "and highlight at least 3 sections with markdown. Tell me about his family too.")


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _text(case, key):
    return [case.prompt[s:e] for s, e in case.segments[key]]


def test_ifeval_cue_heuristic_and_response_file(tmp_path):
    data = _jsonl(tmp_path / "input_data.jsonl", [{
        "key": 1000, "prompt": IFEVAL_PROMPT,
        "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
                                "length_constraints:number_words"],
        "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]}])
    responses = _jsonl(tmp_path / "responses.jsonl", [{"prompt": IFEVAL_PROMPT, "response": "Raymond III was"}])
    [case] = load_benchmark("ifeval", data, references=responses)
    assert case.id == "1000" and case.benchmark == "ifeval" and case.uid == "ifeval/1000"
    assert case.reference == "Raymond III was"
    assert _text(case, "instruction") == [
        "Write a 300+ word summary of the wikipedia page about Raymond III.",
        "Do not use any commas and highlight at least 3 sections with markdown."]
    assert "Tell me about his family too." in "".join(_text(case, "query"))
    assert case.segments["answer"] == [] and case.segments["special"] == []


def test_ifeval_given_phrases_and_missing_reference(tmp_path):
    data = _jsonl(tmp_path / "ifeval.jsonl", [{
        "key": 7, "prompt": IFEVAL_PROMPT, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}],
        "instruction_phrases": ["Do not  use any commas"]}])  # whitespace runs may differ
    [case] = load_benchmark("ifeval", data)
    assert _text(case, "instruction") == ["Do not use any commas"]
    assert case.reference == "" and case.meta["has_reference"] is False


def test_math_folder_and_jsonl(tmp_path):
    folder = tmp_path / "MATH" / "test" / "algebra"
    folder.mkdir(parents=True)
    sol = "We have $x = \\frac{1}{2}$, so the answer is $\\boxed{\\frac{1}{2}}$."
    (folder / "1.json").write_text(json.dumps({"problem": "Solve 2x = 1.", "level": "Level 1",
                                               "type": "Algebra", "solution": sol}))
    [case] = load_benchmark("math", tmp_path / "MATH", instruction="Put the answer in \\boxed{}.")
    assert case.id == "test/algebra/1.json" and case.reference == sol
    assert case.meta["answer"] == "\\frac{1}{2}" and case.meta["level"] == "Level 1"
    assert case.prompt == "Solve 2x = 1.\n\nPut the answer in \\boxed{}."
    assert _text(case, "query") == ["Solve 2x = 1."] and _text(case, "instruction") == ["Put the answer in \\boxed{}."]
    jl = _jsonl(tmp_path / "math500.jsonl", [{"problem": "1+1?", "solution": "2", "answer": "2", "unique_id": "u1"}])
    assert load_benchmark("math", jl)[0].id == "u1"
    assert last_boxed("\\boxed{a{b}c} then \\boxed{d}") == "d" and last_boxed("none") is None


def test_humaneval_gz_and_evalplus(tmp_path):
    prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
    rec = {"task_id": "HumanEval/0", "prompt": prompt, "canonical_solution": "    return a + b\n",
           "test": "def check(c): assert c(1, 2) == 3", "entry_point": "add"}
    gz = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
    [case] = load_benchmark("humaneval", gz)
    assert case.id == "HumanEval/0" and case.reference == "    return a + b\n" and case.meta["entry_point"] == "add"
    assert _text(case, "instruction") == ["Return the sum of a and b."]
    assert "def add(a, b):" in _text(case, "query")[0]
    plus = _jsonl(tmp_path / "HumanEvalPlus.jsonl", [dict(rec, base_input=[[1, 2]], atol=0)])
    assert load_benchmark("evalplus", plus)[0].benchmark == "evalplus"


def test_gaia_with_attached_context(tmp_path):
    (tmp_path / "notes.txt").write_text("The meeting moved to Tuesday.")
    meta = _jsonl(tmp_path / "metadata.jsonl", [{"task_id": "g1", "Question": "When is the meeting?",
                                                "Level": 1, "Final answer": "Tuesday", "file_name": "notes.txt"}])
    [case] = load_benchmark("gaia", meta)
    assert case.prompt == "The meeting moved to Tuesday.\n\nWhen is the meeting?"
    assert case.reference == "Tuesday" and _text(case, "query")[1] == "When is the meeting?"
    assert case.meta["context_chars"] == len("The meeting moved to Tuesday.")


def test_table_csv_with_chosen_columns(tmp_path):
    path = tmp_path / "my_eval.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["qid", "question", "gold", "phrases"])
        w.writerow(["q1", "Name a color. Answer in one word.", "Red", '["Answer in one word."]'])
        w.writerow(["q2", "Name a fruit.", "Apple", ""])
    cases = load_benchmark("table", path, columns={"prompt": "question", "reference": "gold", "id": "qid",
                                                   "instruction": "phrases"})
    assert [c.uid for c in cases] == ["my_eval/q1", "my_eval/q2"]
    assert _text(cases[0], "instruction") == ["Answer in one word."]
    assert _text(cases[0], "query") == ["Name a color. "] and cases[1].segments["instruction"] == []
    with pytest.raises(FailureLensError, match="no column 'answer'"):
        load_benchmark("table", path, columns={"prompt": "question", "reference": "answer"})


def test_zoo_format_and_missing_file(tmp_path):
    path = _jsonl(tmp_path / "eval.jsonl", [{"id": "z1", "family": "copy", "prompt": "Copy: ab", "reference": "ab",
                                             "segments": {"special": [], "instruction": [[0, 5]], "query": [[6, 8]]}}])
    [case] = load_benchmark("zoo", path)
    assert case.meta["family"] == "copy" and case.segments["instruction"] == [(0, 5)] and case.segments["answer"] == []
    with pytest.raises(FailureLensError, match="zoo evaluation set not found"):
        load_benchmark("zoo", tmp_path / "nope.jsonl")


def test_loader_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "instruction_id_list": []}\n{oops\n')
    with pytest.raises(FailureLensError, match="line 2 is not valid JSON"):
        load_benchmark("ifeval", bad)
    with pytest.raises(FailureLensError, match="'canonical_solution'"):
        load_benchmark("humaneval", _jsonl(tmp_path / "h.jsonl", [{"task_id": "t", "prompt": "p"}]))
    dup = _jsonl(tmp_path / "d.jsonl", [{"problem": "a", "solution": "b", "id": 1},
                                        {"problem": "c", "solution": "d", "id": 1}])
    with pytest.raises(FailureLensError, match="duplicate id '1'"):
        load_benchmark("math", dup)
    with pytest.raises(FailureLensError, match="does not apply"):
        load_benchmark("math", dup, columns={"prompt": "p"})
    with pytest.raises(FailureLensError, match="unknown benchmark kind"):
        load_benchmark("mmlu", dup)
    with pytest.raises(FailureLensError, match="not found"):
        load_benchmark("math", tmp_path / "missing.jsonl")
    assert len(load_benchmark("math", _jsonl(tmp_path / "m.jsonl", [{"problem": "a", "solution": "b"}] * 3),
                              limit=2)) == 2


def _case(prompt="  Say hi. Be brief.  "):
    return Case("c", "t", prompt, "hi", {"special": [], "instruction": [(10, 19)], "query": [(2, 9)], "answer": []})


def test_apply_template_moves_spans_and_marks_template_special(tmp_path):
    tok = make_tokenizer(tmp_path)
    case = _case()
    text, spans = apply_template(tok, case, thinking=False)
    assert text == f"<|im_start|>user\n{case.prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert [text[s:e] for s, e in spans["instruction"]] == ["Be brief."]
    assert [text[s:e] for s, e in spans["query"]] == ["Say hi."]
    assert [text[s:e] for s, e in spans["special"]] == ["<|im_start|>user\n", text[text.index("<|im_end|>"):]]
    enc = encode_pair(tok, text)
    labels = assign_segments(enc.offsets, spans, enc.special_mask)
    by_label = {lab: "".join(text[s:e] for (s, e), seg in zip(enc.offsets, labels) if seg == lab)
                for lab in set(labels)}
    assert by_label["instruction"] == "Be brief." and by_label["query"] == "  Say hi.   "
    assert by_label["special"].startswith("<|im_start|>user\n<|im_end|>")
    text_on, _ = apply_template(tok, case, thinking=True)
    assert "<think>" not in text_on


def test_apply_template_trimming_rewriting_and_none(tmp_path):
    tok = make_tokenizer(tmp_path / "a", chat_template="<|im_start|>user\n{{ messages[0].content | trim }}<|im_end|>\n")
    text, spans = apply_template(tok, _case(), thinking=True)  # no enable_thinking in template: ignored
    assert text == "<|im_start|>user\nSay hi. Be brief.<|im_end|>"  # jinja drops the final newline
    assert [text[s:e] for s, e in spans["instruction"]] == ["Be brief."]
    assert [text[s:e] for s, e in spans["query"]] == ["Say hi."]
    tok = make_tokenizer(tmp_path / "b", chat_template="{{ messages[0].content | upper }}")
    with pytest.raises(FailureLensError, match="rewrites the prompt"):
        apply_template(tok, _case())
    tok = make_tokenizer(tmp_path / "c", chat_template=None)
    assert apply_template(tok, _case()) == (_case().prompt, _case().segments)


def test_shipped_zoo_eval_set_loads():
    from engine.cases.benchmarks import ZOO_EVAL

    if not ZOO_EVAL.exists():
        pytest.skip("engine/zoo/data/eval.jsonl not built yet")
    cases = load_benchmark("zoo", limit=50)
    assert cases and all(c.benchmark == "zoo" and c.reference for c in cases)
    for c in cases:
        for spans in c.segments.values():
            assert all(0 <= s < e <= len(c.prompt) for s, e in spans)
