"""Loading: sources, fingerprints, and every user error asserted by its message."""
from __future__ import annotations

import json
import shutil

import pytest

from engine import attribute, load_model
from engine.models import resolve_source
from engine.objectives import Objective
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


def _hub(monkeypatch, meta=None, error=None, config=None, tmp_path=None):
    """Stand-ins for the hub's metadata and download calls; returns the list of downloads asked for."""
    import huggingface_hub
    from huggingface_hub.file_download import HfFileMetadata

    asked = []

    def metadata(url, **kw):
        if error is not None:
            raise error.__new__(error) if isinstance(error, type) else error
        return HfFileMetadata(commit_hash="0" * 40, etag="x", location=url, size=meta, xet_file_data=None)

    def download(repo_id, filename, **kw):
        asked.append((repo_id, filename, kw.get("local_files_only")))
        if config is None:
            raise OSError("not cached")
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        return str(path)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return asked


def test_hub_config_is_checked_before_transformers_and_weights(monkeypatch, tmp_path):
    """A hub id's config.json: its size from the metadata first, then the file alone through the same checks as a
    local folder's; transformers never parses a hostile config and no weights are asked for."""
    import transformers

    def never(*a, **kw):
        raise AssertionError("transformers was asked to read the config")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", never)
    asked = _hub(monkeypatch, meta=50 << 20)
    with pytest.raises(FailureLensError, match="52,428,800 bytes"):
        load_model("org/huge-config")
    assert asked == []  # refused from the metadata, nothing downloaded
    asked = _hub(monkeypatch, meta=200, config={"num_hidden_layers": 10**9, "architectures": ["Qwen3ForCausalLM"]},
                 tmp_path=tmp_path)
    with pytest.raises(FailureLensError, match="num_hidden_layers is 1000000000"):
        load_model("org/hostile")
    assert asked == [("org/hostile", "config.json", False)]


def test_hub_problems_are_named_at_once(monkeypatch, tmp_path):
    from huggingface_hub import errors as hub

    for error, words in ((hub.RepositoryNotFoundError, "was not found on the Hugging Face hub"),
                         (hub.RevisionNotFoundError, "Revision 'v9' was not found"),
                         (hub.GatedRepoError, "is gated"),
                         (hub.RemoteEntryNotFoundError, "has no config.json")):
        _hub(monkeypatch, error=error)
        with pytest.raises(FailureLensError, match=words):
            load_model("org/name", revision="v9")
    # no connection and no cached copy: the offline message now, not after transformers' retries
    asked = _hub(monkeypatch, error=OSError("Name or service not known"))
    with pytest.raises(FailureLensError, match="seems offline.*local folder"):
        load_model("org/name")
    assert asked == [("org/name", "config.json", True)]  # only the cache was looked at


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
        attribute(h, PROMPT, Objective(contrast="the of"))
    with pytest.raises(FailureLensError, match="outside the vocabulary"):
        attribute(h, PROMPT, Objective(contrast=10**7))
    top = attribute(h, PROMPT).target.token_id
    with pytest.raises(FailureLensError, match="same token as the target"):
        attribute(h, PROMPT, Objective(contrast=top))
    with pytest.raises(FailureLensError, match="outside the prompt"):
        attribute(h, PROMPT, Objective(position=500))
    with pytest.raises(FailureLensError, match="out of range"):
        attribute(h, PROMPT, Objective(mode="logit_diff", strategy="by_topk_avg", k=0))
    with pytest.raises(FailureLensError, match="more than the model's context"):
        attribute(h, " ".join(["the"] * 600))


def test_objectives(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")), rule="cp-lrp")
    base = attribute(h, PROMPT)
    assert base.objective == pytest.approx(base.logit_diff)
    assert base.warnings and "runner-up" in base.warnings[0]
    top1 = base.topk[0]
    ml = attribute(h, PROMPT, Objective(mode="max_logit"))
    assert ml.objective == pytest.approx(top1.logit, rel=1e-5)
    topk = attribute(h, PROMPT, Objective(strategy="by_topk_avg", k=3))
    assert topk.objective == pytest.approx(top1.logit - sum(t.logit for t in base.topk[:3]) / 3, rel=1e-4)
    demean = attribute(h, PROMPT, Objective(strategy="demean"))
    assert demean.objective > 0 and demean.conservation == pytest.approx(1.0, rel=1e-4)
    of_id = h.tokenizer(" of", add_special_tokens=False)["input_ids"]
    assert len(of_id) == 1
    by_text = attribute(h, PROMPT, Objective(target=base.target.token_id, contrast=" of"))
    by_id = attribute(h, PROMPT, Objective(target=f"#{base.target.token_id}", contrast=of_id[0]))
    assert by_text.contrast.token_id == of_id[0] and by_text.relevance == by_id.relevance
    by_pos = attribute(h, PROMPT, Objective(position=3))
    assert len(by_pos.tokens) == 4


def test_attribution_round_trips_json(tiny_model_dir):
    import pickle

    from engine.records import Attribution

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
