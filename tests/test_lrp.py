"""LRP rules on every supported architecture: forward unchanged, conservation, scoping, checkpointing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import ARCHS

from engine import attribute, load_model
from engine.lrp.context import lrp_rules

PROMPT = "the of and to in is was for on that with as by at from it his her their its an"
BIAS_FREE = ("qwen3", "llama", "mistral", "gemma3", "olmo2", "olmo3", "phi3")


def _ids(handle):
    return handle.tokenizer(PROMPT, return_tensors="pt").input_ids


@pytest.mark.parametrize("rule", ["attnlrp", "cp-lrp"])
@pytest.mark.parametrize("arch", ARCHS)
def test_rules_leave_logits_unchanged(tiny_model_dir, arch, rule):
    handle = load_model(str(tiny_model_dir(arch)), rule=rule)
    ids = _ids(handle)
    with torch.no_grad():
        before = handle.model(ids).logits
        with lrp_rules(handle.model, rule):
            during = handle.model(ids).logits
        after = handle.model(ids).logits
    assert (before - during).abs().max() <= 1e-5
    torch.testing.assert_close(after, before, atol=1e-5 * max(1.0, float(before.abs().max())), rtol=0)


@pytest.mark.parametrize("arch", BIAS_FREE)
def test_cp_lrp_conserves_on_bias_free_models(tiny_model_dir, arch):
    handle = load_model(str(tiny_model_dir(arch)), rule="cp-lrp")
    res = attribute(handle, PROMPT)
    assert res.conservation == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_attnlrp_reports_conservation_and_finite_relevance(tiny_model_dir, arch):
    handle = load_model(str(tiny_model_dir(arch)))
    res = attribute(handle, PROMPT)
    assert all(map(lambda r: r == r and abs(r) < 1e6, res.relevance))
    assert res.conservation == pytest.approx(sum(res.relevance) / res.objective, rel=1e-4)
    assert len(res.layer_relevance) == handle.n_layers + 1
    # Row 0 is the embedding row: the same numbers as the per-token relevance.
    assert res.layer_relevance[0] == pytest.approx(res.relevance)


def _instance_state(model):
    return {name: sorted(k for k in m.__dict__ if k in ("forward", "_failure_lens"))
            for name, m in model.named_modules()}


def test_rules_are_scoped_and_two_architectures_coexist(tiny_model_dir):
    a = load_model(str(tiny_model_dir("qwen3")))
    b = load_model(str(tiny_model_dir("gpt2")))
    impl_a, impl_b = a.model.config._attn_implementation, b.model.config._attn_implementation
    state_a, state_b = _instance_state(a.model), _instance_state(b.model)
    plain_b = attribute(b, PROMPT)
    with lrp_rules(a.model, "attnlrp"):
        # b is untouched while a is patched: its forward is still the class forward.
        assert _instance_state(b.model) == state_b
        with torch.no_grad():
            logits_b = b.model(_ids(b)).logits
    with torch.no_grad():
        again = b.model(_ids(b)).logits
        torch.testing.assert_close(logits_b, again, atol=1e-5 * max(1.0, float(again.abs().max())), rtol=0)
    assert a.model.config._attn_implementation == impl_a and b.model.config._attn_implementation == impl_b
    assert _instance_state(a.model) == state_a
    # Interleaved use gives the same relevance as isolated use.
    res_a1 = attribute(a, PROMPT)
    res_b = attribute(b, PROMPT)
    res_a2 = attribute(a, PROMPT)
    assert res_a1.relevance == res_a2.relevance
    assert res_b.relevance == plain_b.relevance


def test_parameters_never_get_gradients(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("llama")))
    attribute(handle, PROMPT)
    assert all(not p.requires_grad and p.grad is None for p in handle.model.parameters())


@pytest.mark.parametrize("arch", ["qwen3", "gpt2", "gpt_neox"])
def test_gradient_checkpointing_gives_identical_relevance(tiny_model_dir, arch):
    plain = attribute(load_model(str(tiny_model_dir(arch))), PROMPT)
    ckpt = attribute(load_model(str(tiny_model_dir(arch)), gradient_checkpointing=True), PROMPT)
    assert ckpt.relevance == pytest.approx(plain.relevance, abs=1e-6)
    assert np.allclose(ckpt.layer_relevance, plain.layer_relevance, atol=1e-6, rtol=0)


def test_eager_and_sdpa_give_the_same_relevance(tiny_model_dir):
    sdpa = load_model(str(tiny_model_dir("qwen3")))
    eager = load_model(str(tiny_model_dir("qwen3")))
    eager.model.config._attn_implementation = "eager"
    assert attribute(eager, PROMPT).relevance == pytest.approx(attribute(sdpa, PROMPT).relevance, abs=1e-5)
