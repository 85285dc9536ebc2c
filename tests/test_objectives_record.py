"""The frozen Objective record (engine.objectives): it validates itself, is hashable, names every field in its
key, and attribute / build_graph given one compute what the same request computed on other paths."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from reference_lrp import reference_relevance

from engine import attribute, load_model
from engine.graph.build import build_graph
from engine.heatmap import Picker
from engine.model_spec import ModelSpec
from engine.objectives import Objective
from engine.records import FailureLensError, TokenChoice
from engine.runs import config
from engine.trace import relevance, run_trace

PROMPT = "the of and to in is was for on that with as by at from it his her their its an"


def close(got, ref) -> bool:
    ref = torch.as_tensor(ref, dtype=torch.float64)
    tol = 1e-5 * max(1.0, float(ref.abs().max()))
    return bool(torch.allclose(torch.as_tensor(got, dtype=torch.float64), ref, atol=tol, rtol=0))


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "min_logit"}, "Unknown mode 'min_logit'. Use one of: max_logit, logit_diff."),
    ({"strategy": "median"}, "Unknown strategy 'median'. Use one of: by_ref_token, by_topk_avg, demean."),
    ({"strategy": None}, "Unknown strategy None."),
    ({"k": 0}, "k = 0 is out of range; use 1..1000 (10 is the usual choice)."),
    ({"k": 1001}, "k = 1001 is out of range; use 1..1000"),
])
def test_a_bad_request_is_refused_when_built(kwargs, message):
    with pytest.raises(FailureLensError) as e:
        Objective(**kwargs)
    assert str(e.value).startswith(message)


def test_defaults_and_names():
    o = Objective()
    assert (o.target, o.contrast, o.mode, o.strategy, o.k, o.position) == (None, None, "logit_diff", "by_ref_token",
                                                                          10, -1)
    assert o.name == "logit_diff/by_ref_token"
    assert Objective(mode="max_logit", strategy=None).name == "max_logit"
    assert Objective(strategy="demean").name == "logit_diff/demean"


def test_frozen_hashable_and_a_key_per_field():
    o = Objective("#5", " of", "logit_diff", "by_topk_avg", 3, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.k = 4  # type: ignore[misc]
    same = Objective("#5", " of", "logit_diff", "by_topk_avg", 3, 2)
    assert o == same and hash(o) == hash(same) and len({o, same}) == 1 and o.key() == same.key()
    variants = [dataclasses.replace(o, target="#6"), dataclasses.replace(o, contrast=" to"),
                dataclasses.replace(o, mode="max_logit"), dataclasses.replace(o, strategy="demean"),
                dataclasses.replace(o, k=4), dataclasses.replace(o, position=3),
                dataclasses.replace(o, target=5), dataclasses.replace(o, target="5")]
    keys = [o.key()] + [v.key() for v in variants]
    assert len(set(keys)) == len(keys), keys  # the id 5, the text "5" and "#5" differ too
    assert json.loads(o.key()) == ["#5", " of", "logit_diff", "by_topk_avg", 3, 2]


def _traced(handle, ids, objective_name, k, target_id, contrast_id):
    """The same request straight through engine.trace, without attribute()."""
    tok = handle.tokenizer
    pick = Picker(tok, objective_name, TokenChoice(target_id, ""),
                  TokenChoice(contrast_id, "") if contrast_id is not None else None, [])
    trace, _, _ = run_trace(handle, ids, pick, objective_name, k, keep_grads=False)
    return relevance(trace.emb, trace.emb_grad), trace.objective


def test_attribute_with_a_record_equals_the_reference(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    ids = attribute(handle, PROMPT).token_ids
    of_id = handle.tokenizer(" of", add_special_tokens=False).input_ids[0]
    res = attribute(handle, PROMPT, Objective(target="#5", contrast=" of", position=6))
    assert res.position == 6 and res.token_ids == ids[:7]
    assert (res.target.token_id, res.contrast.token_id) == (5, of_id)
    ref = reference_relevance(handle.model, torch.tensor(ids[:7]), 5, of_id)  # an independent float64 path
    assert close(res.relevance, ref), (torch.tensor(res.relevance) - ref).abs().max()
    again = attribute(handle, PROMPT, Objective.of(res))  # the record an attribution answered gives it back
    assert again.token_ids == res.token_ids and close(again.relevance, res.relevance)


@pytest.mark.parametrize("strategy, k", [("by_topk_avg", 3), ("demean", 10)])
def test_attribute_with_a_record_equals_the_trace(tiny_model_dir, strategy, k):
    handle = load_model(str(tiny_model_dir("llama")))
    objective = Objective(target="#7", strategy=strategy, k=k)
    res = attribute(handle, PROMPT, objective)
    assert (res.strategy, res.k, res.contrast) == (strategy, k, None)
    rel, value = _traced(handle, res.token_ids, objective.name, k, 7, None)
    assert close(res.relevance, rel) and close([res.objective], [value])


def test_build_graph_with_a_record_explains_the_same_objective(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("llama")))
    objective = Objective(target="#5", contrast="#7", position=5)
    att = attribute(handle, PROMPT, objective)
    g = build_graph(handle, PROMPT, objective)
    assert g.token_ids == att.token_ids and close([g.objective], [att.objective])


def test_the_sweep_config_reads_the_engine_record():
    cfg = config.parse_sweep_config("models: [{source: zoo:s}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"
                                    "objective: {mode: logit_diff, strategy: demean, k: 7}\n")
    assert type(cfg.objective) is Objective and cfg.objective == Objective(strategy="demean", k=7)
    assert cfg.identity()["objective"] == {"mode": "logit_diff", "strategy": "demean", "k": 7}  # no per-case keys
    with pytest.raises(FailureLensError, match="unknown key 'target' in objective; allowed keys: mode, strategy, k"):
        config.parse_sweep_config("models: [{source: zoo:s}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"
                                  "objective: {target: 5}\n")


def test_one_model_spec_for_the_dashboard_and_the_configs():
    import ui.state

    assert config.ModelSpec is ModelSpec and ui.state.ModelSpec is ModelSpec
    spec = ModelSpec.parse("org/name;rev=main;dtype=bfloat16;q=4bit;rule=cp-lrp")
    assert spec == ModelSpec("org/name", revision="main", dtype="bfloat16", quantize="4bit", rule="cp-lrp")
    assert ModelSpec.parse(spec.param()) == spec and spec.title == "org/name (@main, bfloat16, 4bit, CP-LRP)"
    base = "benchmarks: [{kind: zoo}]\nstore: s\nmodels: "
    cfg = config.parse_sweep_config(base + "[{source: org/name, revision: main}]\n")
    swept = cfg.models[0]
    assert swept.label == "name" and swept.param() == "org/name;rev=main"  # the label is a sweep's, not the URL's
    assert "rule" not in cfg.identity()["models"][0]  # a sweep sets one rule for all its models
    with pytest.raises(FailureLensError, match="unknown key 'rule' in models"):
        config.parse_sweep_config(base + "[{source: org/name, rule: cp-lrp}]\n")
