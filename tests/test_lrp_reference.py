"""AttnLRP / CP-LRP relevance of the engine against the hand-written functional reference."""
from __future__ import annotations

import pytest
import torch
from reference_lrp import reference_relevance

from engine import attribute, load_model
from engine.objectives import Objective

PROMPT = "the of and to in is was for on that with as by at from it his her their its an"


@pytest.mark.parametrize("rule", ["attnlrp", "cp-lrp"])
@pytest.mark.parametrize("arch", ["qwen3", "llama", "qwen2", "mistral"])
def test_engine_relevance_equals_reference(tiny_model_dir, arch, rule):
    handle = load_model(str(tiny_model_dir(arch)), rule=rule)
    res = attribute(handle, PROMPT)
    ids = torch.tensor(res.token_ids)
    ref = reference_relevance(handle.model, ids, res.target.token_id, res.contrast.token_id, rule=rule)
    got = torch.tensor(res.relevance, dtype=torch.float64)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0), (got - ref).abs().max()
    # and the reference differs between rules, so this comparison can fail
    other = reference_relevance(handle.model, ids, res.target.token_id, res.contrast.token_id,
                                rule="cp-lrp" if rule == "attnlrp" else "attnlrp")
    assert (other - ref).abs().max() > 1e-3


def test_max_logit_matches_reference(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    res = attribute(handle, PROMPT, Objective(mode="max_logit"))
    ref = reference_relevance(handle.model, torch.tensor(res.token_ids), res.target.token_id, None)
    assert torch.allclose(torch.tensor(res.relevance, dtype=torch.float64), ref, atol=1e-5, rtol=0)
