"""Loading: sources, fingerprints, and every user error asserted by its message."""
from __future__ import annotations

import json
import shutil

import pytest

from engine import attribute, load_model
from engine.models import resolve_source
from engine.records import FailureLensError

PROMPT = "the of and to in is was for on"


def test_fingerprint_identifies_weights_and_settings(tiny_model_dir, tmp_path):
    a = load_model(str(tiny_model_dir("qwen3")))
    b = load_model(str(tiny_model_dir("qwen3")), rule="cp-lrp")
    c = load_model(str(tiny_model_dir("llama")))
    assert a.key != b.key and a.key != c.key
    assert a.fingerprint.weights_hash == b.fingerprint.weights_hash != c.fingerprint.weights_hash
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir("qwen3"), copy)
    assert load_model(str(copy)).fingerprint.weights_hash == a.fingerprint.weights_hash
    assert a.n_layers == 2 and a.arch == "Qwen3ForCausalLM"


def test_missing_folder(tmp_path):
    with pytest.raises(FailureLensError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FailureLensError, match="not a model folder"):
        load_model(str(tmp_path))


def test_unsupported_architecture_names_supported_ones(tiny_model_dir, tmp_path):
    d = tmp_path / "bert"
    shutil.copytree(tiny_model_dir("qwen3"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["BertForMaskedLM"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FailureLensError, match="not supported. Supported families: .*Qwen3"):
        load_model(str(d))


def test_corrupted_weights(tiny_model_dir, tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(tiny_model_dir("qwen3"), d)
    (d / "model.safetensors").write_bytes(b"not really safetensors")
    with pytest.raises(FailureLensError, match="corrupted or incomplete"):
        load_model(str(d))


def test_hub_id_offline_suggests_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FailureLensError, match="seems offline.*local folder"):
        load_model("some-org/some-model-that-is-not-cached")


def test_unknown_settings():
    with pytest.raises(FailureLensError, match="Unknown rule"):
        load_model("zoo:whatever", rule="lrp-epsilon")
    with pytest.raises(FailureLensError, match="No model given"):
        resolve_source("  ")


def test_unknown_dtype_and_quantization(tiny_model_dir):
    with pytest.raises(FailureLensError, match="Unknown dtype"):
        load_model(str(tiny_model_dir("qwen3")), dtype="float8")
    with pytest.raises(FailureLensError, match="Unknown quantization"):
        load_model(str(tiny_model_dir("qwen3")), quantize="3bit")


def test_four_bit_impossible_is_reported(tiny_model_dir, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_bnb(name, *a, **k):
        if name == "bitsandbytes":
            raise ImportError("bitsandbytes is not installed")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(FailureLensError, match="4-bit loading is not possible on this machine"):
        load_model(str(tiny_model_dir("qwen3")), quantize="4bit")


def test_prompt_and_token_errors(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")))
    with pytest.raises(FailureLensError, match="prompt is empty"):
        attribute(h, "   ")
    with pytest.raises(FailureLensError, match="is 3 tokens, not one"):
        attribute(h, PROMPT, contrast="the of")
    with pytest.raises(FailureLensError, match="outside the vocabulary"):
        attribute(h, PROMPT, contrast=10**7)
    top = attribute(h, PROMPT).target.token_id
    with pytest.raises(FailureLensError, match="same token as the target"):
        attribute(h, PROMPT, contrast=top)
    with pytest.raises(FailureLensError, match="outside the prompt"):
        attribute(h, PROMPT, position=500)
    with pytest.raises(FailureLensError, match="out of range"):
        attribute(h, PROMPT, mode="logit_diff", strategy="by_topk_avg", k=0)
    with pytest.raises(FailureLensError, match="more than the model's context"):
        attribute(h, " ".join(["the"] * 600))


def test_objectives(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")), rule="cp-lrp")
    base = attribute(h, PROMPT)
    assert base.objective == pytest.approx(base.logit_diff)
    assert base.warnings and "runner-up" in base.warnings[0]
    top1 = base.topk[0]
    ml = attribute(h, PROMPT, mode="max_logit")
    assert ml.objective == pytest.approx(top1.logit, rel=1e-5)
    topk = attribute(h, PROMPT, strategy="by_topk_avg", k=3)
    assert topk.objective == pytest.approx(top1.logit - sum(t.logit for t in base.topk[:3]) / 3, rel=1e-4)
    demean = attribute(h, PROMPT, strategy="demean")
    assert demean.objective > 0 and demean.conservation == pytest.approx(1.0, rel=1e-4)
    of_id = h.tokenizer(" of", add_special_tokens=False)["input_ids"]
    assert len(of_id) == 1
    by_text = attribute(h, PROMPT, target=base.target.token_id, contrast=" of")
    by_id = attribute(h, PROMPT, target=f"#{base.target.token_id}", contrast=of_id[0])
    assert by_text.contrast.token_id == of_id[0] and by_text.relevance == by_id.relevance
    by_pos = attribute(h, PROMPT, position=3)
    assert len(by_pos.tokens) == 4


def test_attribution_round_trips_json(tiny_model_dir):
    from engine.records import Attribution
    import pickle

    res = attribute(load_model(str(tiny_model_dir("qwen3"))), PROMPT)
    assert Attribution.from_json(res.to_json()) == res
    assert pickle.loads(pickle.dumps(res)) == res


def test_attribute_given_token_ids_equals_tokenised_prompt(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")))
    a = attribute(h, PROMPT)
    b = attribute(h, "", token_ids=a.token_ids, offsets=a.offsets)
    assert b.relevance == a.relevance and b.tokens == a.tokens
    with pytest.raises(FailureLensError, match="outside the vocabulary"):
        attribute(h, "", token_ids=[1, 10**7])


def test_batch_token_display_equals_one_by_one(tiny_model_dir):
    from engine.tokens import display, display_many

    tok = load_model(str(tiny_model_dir("gpt2"))).tokenizer
    ids = list(range(len(tok)))
    assert display_many(tok, ids) == [display(tok, i) for i in ids]
