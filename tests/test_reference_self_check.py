"""Checks of the reference LRP implementation itself (not of the engine)."""

from __future__ import annotations

import pytest
import torch
from reference_lrp import reference_logits, reference_relevance
from tiny_models import build_tiny
from transformers import AutoModelForCausalLM


@pytest.fixture(scope="module")
def tied_qwen3(tmp_path_factory):
    return build_tiny("qwen3", tmp_path_factory.mktemp("tied"), tie_word_embeddings=True)


def _load(arch, tiny_model_dir, tied_qwen3):
    return AutoModelForCausalLM.from_pretrained(tied_qwen3 if arch == "qwen3-tied" else tiny_model_dir(arch))


ARCHS = ["qwen3", "llama", "qwen2", "mistral", "qwen3-tied"]


@pytest.mark.parametrize("arch", ARCHS)
def test_reference_logits_match_hf(arch, tiny_model_dir, tied_qwen3):
    model = _load(arch, tiny_model_dir, tied_qwen3)
    ids = torch.randint(model.config.vocab_size, (24 if arch != "mistral" else 40,))  # mistral: past its window
    with torch.no_grad():
        hf = model(ids[None]).logits[0].double()
    torch.testing.assert_close(reference_logits(model, ids), hf, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["qwen3", "llama", "mistral", "qwen3-tied"])
@pytest.mark.parametrize("contrast", [None, 7])
def test_cp_lrp_conserves_the_objective(arch, contrast, tiny_model_dir, tied_qwen3):
    model = _load(arch, tiny_model_dir, tied_qwen3)
    ids = torch.randint(model.config.vocab_size, (20,))
    logits = reference_logits(model, ids)[-1]
    objective = logits[5] - (logits[contrast] if contrast is not None else 0.0)
    relevance = reference_relevance(model, ids, 5, contrast, rule="cp-lrp")
    assert relevance.shape == (20,) and relevance.dtype == torch.float64
    torch.testing.assert_close(relevance.sum(), objective, rtol=1e-6, atol=0)


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
def test_attnlrp_relevance_is_finite_and_differs_from_cp_lrp(arch, tiny_model_dir, tied_qwen3):
    model = _load(arch, tiny_model_dir, tied_qwen3)
    ids = torch.randint(model.config.vocab_size, (20,))
    attn = reference_relevance(model, ids, 5, 7)
    cp = reference_relevance(model, ids, 5, 7, rule="cp-lrp")
    assert torch.isfinite(attn).all() and attn.abs().sum() > 0
    assert not torch.allclose(attn, cp)
