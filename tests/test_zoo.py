"""The shipped zoo: files, tokenizer, benchmark, and failure properties measured from the shipped weights."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from engine.objectives import Objective
from engine.records import FailureLensError
from engine.zoo import (
    FAMILIES,
    MODELS_DIR,
    ZooFailure,
    bench_gen,
    load_benchmark,
    load_failures,
    zoo_checkpoints,
    zoo_names,
    zoo_path,
    zoo_sizes,
)
from engine.zoo.evaluate import load, logit_diffs, next_logits, score

SHORT = 256  # prompt tokens; the fixed subsets stay short so the file runs in seconds
PER_FAMILY = 60


@lru_cache(maxsize=None)
def model(name: str):
    return load(name)


@lru_cache(maxsize=1)
def tokenizer():
    return AutoTokenizer.from_pretrained(str(zoo_path(zoo_sizes()[0])))


def n_tokens(text: str) -> int:
    return len(tokenizer()(text).input_ids)


@lru_cache(maxsize=1)
def subset() -> tuple:
    """Fixed accuracy subset: the first PER_FAMILY short eval cases of every family."""
    out = []
    for family in FAMILIES:
        out += [c for c in load_benchmark("eval", family) if n_tokens(c.prompt) <= SHORT][:PER_FAMILY]
    return tuple(out)


def error_rates(name: str, cases=None) -> dict[str, float]:
    """Share of failed cases per family on `cases` (default: the fixed subset)."""
    scores = score(*model(name), subset() if cases is None else cases)
    return {f: sum(not s.correct for s in scores if s.family == f) / sum(s.family == f for s in scores)
            for f in FAMILIES}


# -- names, files ----------------------------------------------------------------------------------------------


def test_names_order_and_errors():
    sizes, ckpts = zoo_sizes(), zoo_checkpoints()
    assert len(sizes) >= 4 and len(ckpts) >= 8
    assert zoo_names() == sizes + ckpts
    widths = [AutoConfig.from_pretrained(str(zoo_path(n))).hidden_size for n in sizes]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    steps = [int(re.search(r"step(\d+)$", n).group(1)) for n in ckpts]
    assert steps == sorted(steps)
    for name in zoo_names():
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name)
    with pytest.raises(FailureLensError, match=sizes[0]):
        zoo_path("no-such-model")
    with pytest.raises(FailureLensError):
        load_failures("no-such-model")
    with pytest.raises(FailureLensError, match="instruction"):
        load_benchmark("eval", "poetry")


def test_folders_load_offline_and_fit_budget(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    total = 0
    for name in zoo_names():
        folder = zoo_path(name)
        cfg = AutoConfig.from_pretrained(str(folder))
        assert cfg.model_type == "qwen3" and cfg.max_position_embeddings >= 16384
        m = AutoModelForCausalLM.from_pretrained(str(folder))
        assert type(m).__name__ == "Qwen3ForCausalLM"
        assert AutoTokenizer.from_pretrained(str(folder)).vocab_size == cfg.vocab_size
        total += sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert total == sum(p.stat().st_size for p in MODELS_DIR.rglob("*.safetensors"))
    assert 0 < total <= 40 * 2**20


def test_tokenizer_offsets_and_specials():
    tok = tokenizer()
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<bos>", "<eos>", "<pad>", "<unk>")
    for case in load_benchmark("eval")[::25]:
        enc = tok(case.prompt, return_offsets_mapping=True)
        toks = tok.convert_ids_to_tokens(enc.input_ids)
        assert toks[0] == "<bos>" and enc.offset_mapping[0] == (0, 0)
        assert tok.unk_token_id not in enc.input_ids
        assert all(case.prompt[s:e] == t for t, (s, e) in zip(toks[1:], enc.offset_mapping[1:]))
        ref = tok(case.reference, add_special_tokens=False).input_ids
        assert tok(f"{case.prompt} {case.reference}").input_ids == enc.input_ids + ref
    assert tok.convert_ids_to_tokens(tok("compute 407 + 15 =").input_ids)[1:] == [
        "compute", "4", "0", "7", "+", "1", "5", "="]


# -- benchmark -------------------------------------------------------------------------------------------------


def _span_texts(case, kind):
    return [case.prompt[s:e] for s, e in case.segments[kind]]


def test_benchmark_sizes_and_segments():
    eval_cases = load_benchmark("eval")
    assert len({c.id for c in eval_cases}) == len(eval_cases)
    train_prompts = {c.prompt for c in load_benchmark("train")}
    assert not train_prompts & {c.prompt for c in eval_cases}
    for family in FAMILIES:
        assert len(load_benchmark("eval", family)) >= 200
    for case in eval_cases + load_benchmark("train")[::50]:
        spans = sorted(sp for v in case.segments.values() for sp in v)
        assert all(0 <= s < e <= len(case.prompt) for s, e in spans)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))  # no overlaps
        assert _span_texts(case, "special") == ["<q>", "<a>"]
        assert case.segments["instruction"] and case.segments["query"]
        query = " ".join(_span_texts(case, "query"))
        if case.family == "instruction":
            assert set(case.reference.lower().split()) - set(",;-/") <= set(query.lower().split())
        elif case.family == "math":
            assert re.fullmatch(r"[\d +-]+", query) and not re.search(r"\d", " ".join(_span_texts(case, "instruction")))
        elif case.family == "code":
            assert case.reference.split()[0] in query.split() or set(case.reference.split()) <= set(")]}")
        elif case.family == "retrieval":  # the answer quotes the one record of the asked key
            key, value = case.reference.split()
            assert key == query and case.prompt.split().count(key) == 2  # its record and the question
            assert re.search(rf"[:;] {key} {value} [;.]", case.prompt)
        else:  # the training-only warm-up
            assert case.family in bench_gen.WARMUP and case.reference == query


def test_benchmark_is_deterministic_and_long_enough():
    assert bench_gen.generate("eval", bench_gen.N_EVAL) == [
        json.loads(x) for x in (bench_gen.DATA_DIR / "eval.jsonl").open()]
    lengths = [n_tokens(c.prompt) for c in load_benchmark("eval", "retrieval")]
    assert max(lengths) > 3000 and min(lengths) < 64


# -- measured failure properties -------------------------------------------------------------------------------


def test_smallest_fails_more_than_largest_on_every_family():
    """On the whole eval split (250 cases a family, the numbers of MODEL_CARD.md): at least 10 points apart.

    The 60-case subset of the other tests is too small for a 10-point margin: on its math cases the two models
    are 7 points apart, against 14 on all 250."""
    cases = load_benchmark("eval")
    small, large = error_rates(zoo_sizes()[0], cases), error_rates(zoo_sizes()[-1], cases)
    for family in FAMILIES:
        assert small[family] - large[family] >= 0.10, (family, small, large)


def test_every_model_fails_on_two_families():
    for name in zoo_names():
        failing = [f for f, rate in error_rates(name).items() if rate > 0]
        assert len(failing) >= 2, name


def test_shipped_failures_reproduce():
    cases = {c.id: c for c in load_benchmark("eval")}
    tok, lengths = tokenizer(), []
    for name in zoo_names():
        failures = load_failures(name)
        assert len({f.family for f in failures}) >= 2, name
        for f in failures:
            case = cases[f.case_id]
            answer = "".join(f.prompt[s:e] for s, e in f.segments["answer"])
            assert f.prompt == (f"{case.prompt} {answer}" if answer else case.prompt) and f.family == case.family
            ref = tok(case.reference, add_special_tokens=False).input_ids
            done = tok(answer, add_special_tokens=False).input_ids if answer else []
            assert ref[: len(done) + 1] == done + [f.contrast_id] and f.target_id != f.contrast_id
            assert tok.convert_ids_to_tokens([f.target_id, f.contrast_id]) == [f.target, f.contrast]
            assert f.logit_diff > 0
            if f.family == "retrieval":
                lengths.append(n_tokens(f.prompt))
        short = [f for f in failures if n_tokens(f.prompt) <= SHORT][:8]
        m, _ = model(name)
        ids = tok([f.prompt for f in short]).input_ids
        for f, lg in zip(short, next_logits(m, ids, [len(i) for i in ids])):
            assert int(lg[0].argmax()) == f.target_id, name  # the target really is the model's top-1
            assert abs(float(lg[0, f.target_id] - lg[0, f.contrast_id]) - f.logit_diff) < 1e-3, name
    assert any(1000 <= n <= 4500 for n in lengths)


def test_checkpoint_delta_logit_decreases():
    early = [f for f in load_failures(zoo_checkpoints()[0]) if n_tokens(f.prompt) <= SHORT]
    assert len(early) >= 20
    means = [sum(logit_diffs(*model(n), early)) / len(early) for n in zoo_checkpoints()]
    assert means[-1] < means[0], means


def test_long_context_prompt_runs():
    case = max(load_benchmark("eval", "retrieval"), key=lambda c: len(c.prompt))
    m, tok = model(zoo_sizes()[-1])
    ids = tok(case.prompt, return_tensors="pt").input_ids
    assert ids.shape[1] > 3000
    with torch.no_grad():
        assert torch.isfinite(m(input_ids=ids).logits).all()


# -- heatmaps (needs the lead's engine.heatmap) ----------------------------------------------------------------


@pytest.mark.skipif(not (Path(__file__).parents[1] / "engine" / "heatmap.py").exists(),
                    reason="engine/heatmap.py not written yet")
def test_instruction_failure_heatmaps_are_not_uniform():
    from engine import attribute, load_model

    name = zoo_sizes()[-1]
    handle = load_model(f"zoo:{name}")
    failures: list[ZooFailure] = [f for f in load_failures(name) if f.family == "instruction"][:6]
    assert len(failures) >= 3
    tops = set()
    for f in failures:
        att = attribute(handle, f.prompt, Objective(target=f.target_id, contrast=f.contrast_id))
        rel = torch.tensor(att.relevance)
        assert rel.std() > 0
        tops.add(tuple(att.tokens[i] for i in rel.topk(3).indices.tolist()))
    assert len(tops) > 1
