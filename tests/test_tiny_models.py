"""The tiny test models are sane: they build, load offline, give finite logits, and eager == sdpa attention."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ARCHS
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "The capital of France is Paris and the capital of Japan is Tokyo, said the old teacher"


@pytest.mark.parametrize("arch", ARCHS)
def test_builds_loads_and_attention_backends_agree(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eager = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    sdpa = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    assert eager.dtype == torch.float32 and not eager.training
    assert len(tokenizer) == eager.config.vocab_size
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids[:, :20]  # [1, 20]
    assert ids.shape == (1, 20) and tokenizer.unk_token_id not in ids
    long_ids = torch.randint(len(tokenizer), (1, 64))  # longer than every sliding window
    with torch.no_grad():
        for x in (ids, long_ids):
            logits = eager(x).logits
            assert torch.isfinite(logits).all() and logits.std() > 0.1
            torch.testing.assert_close(sdpa(x).logits, logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["mistral", "gemma3", "olmo3"])
def test_sliding_window_bites_on_a_64_token_prompt(arch, tiny_model_dir, tmp_path):
    from tiny_models import build_tiny

    ids = torch.randint(100, (1, 64))
    windowed = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch))
    full = AutoModelForCausalLM.from_pretrained(build_tiny(arch, tmp_path, sliding_window=512))
    with torch.no_grad():
        assert not torch.allclose(windowed(ids).logits[0, -1], full(ids).logits[0, -1], atol=1e-3)


def test_arch_specific_features(tiny_model_dir):
    load = lambda arch: AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch))  # noqa: E731
    assert load("qwen2").model.layers[0].self_attn.q_proj.bias is not None
    assert hasattr(load("qwen3").model.layers[0].self_attn, "q_norm")
    neox = load("gpt_neox").config
    assert neox.use_parallel_residual and neox.rope_parameters["partial_rotary_factor"] < 1
    gpt2 = load("gpt2").config
    assert min(gpt2.attn_pdrop, gpt2.resid_pdrop, gpt2.embd_pdrop) > 0
    gemma = load("gemma3")
    assert type(gemma).__name__ == "Gemma3ForCausalLM"
    assert gemma.model.norm.weight.abs().min() > 0  # Gemma's (1 + w) norm is not left at w = 0


def test_build_is_deterministic(tmp_path):
    from tiny_models import build_tiny

    a, b = build_tiny("llama", tmp_path / "a"), build_tiny("llama", tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
