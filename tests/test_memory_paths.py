"""Memory paths give the same numbers: per-layer recompute == kept activations; reduced rows == full rows;
the memory guard picks recompute (and says so) when kept activations would not fit."""
from __future__ import annotations

import numpy as np
import pytest
from graph_fixtures import LONG_PROMPT as PROMPT
from graph_fixtures import dense
from tiny_models import ARCHS, build_tiny

from engine import attribute, load_model
from engine.graph.build import build_graph
from engine.heatmap import Picker
from engine.lrp.architectures import architecture_of
from engine.memory import check_memory, estimate
from engine.records import FailureLensError
from engine.trace import decoder_layers, relevance, run_trace


@pytest.mark.parametrize("rule", ["attnlrp", "cp-lrp"])
@pytest.mark.parametrize("arch", ARCHS)
def test_recompute_heatmap_equals_kept(tiny_model_dir, arch, rule):
    handle = load_model(str(tiny_model_dir(arch)), rule=rule)
    kept = attribute(handle, PROMPT, recompute=False)
    lean = attribute(handle, PROMPT, recompute=True)
    assert (kept.path, lean.path) == ("kept", "recompute")
    assert lean.objective == pytest.approx(kept.objective, abs=1e-6)
    np.testing.assert_allclose(lean.relevance, kept.relevance, atol=1e-6, rtol=0)
    np.testing.assert_allclose(lean.layer_relevance, kept.layer_relevance, atol=1e-6, rtol=0)
    # the recompute wrapper is scoped: no instance forward is left on the layers
    assert all("forward" not in layer.__dict__ for layer in decoder_layers(handle.model))


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("rule", ["attnlrp", "cp-lrp"])
@pytest.mark.parametrize("arch", ARCHS)
def test_recompute_graph_equals_kept(tiny_model_dir, arch, rule, split):
    handle = load_model(str(tiny_model_dir(arch)), rule=rule)
    kept = build_graph(handle, PROMPT, split=split, recompute=False)
    lean = build_graph(handle, PROMPT, split=split, recompute=True)
    assert (kept.path, lean.path) == ("kept", "recompute")
    assert [s.name for s in lean.stages] == [s.name for s in kept.stages]
    np.testing.assert_allclose(lean.node_relevance, kept.node_relevance, atol=1e-6, rtol=0)
    t = kept.n_tokens
    for a, b in zip(lean.transitions, kept.transitions):
        da, db = dense(a, t), dense(b, t)
        assert np.abs(da - db).max() <= 1e-6 * max(1.0, np.abs(db).max()), (a.src_stage, a.dst_stage)
        np.testing.assert_allclose(a.absorbed, b.absorbed, atol=1e-6 * max(1.0, np.abs(db).max()))
    if kept.neurons_val is not None:
        np.testing.assert_allclose(lean.neurons_val, kept.neurons_val, atol=1e-6)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_recompute_graph_runs_each_layer_twice(tiny_model_dir, arch, split):
    """The single-pass stream: each layer runs in the forward and in the backward's recompute, never a third
    time after it; every transition is the closed form and every layer's neurons are kept."""
    handle = load_model(str(tiny_model_dir(arch)))
    calls = [0]
    layers = decoder_layers(handle.model)
    hooks = [getattr(layer.mlp, architecture_of(handle).mlp_down).register_forward_pre_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)) for layer in layers]
    try:
        g = build_graph(handle, PROMPT, recompute=True, split=split)
    finally:
        for h in hooks:
            h.remove()
    assert calls[0] == 2 * len(layers)
    assert all(e.method == "closed_form" for e in g.transitions)
    assert g.neurons_val is not None and g.neurons_val.shape[0] == len(layers)
    assert any("edges built during the backward" in n for n in g.notes)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_recompute_graph_with_skipped_stages_equals_kept(tmp_path, arch):
    """Stages that skip a layer mix streamed closed-form edges (emb -> L0) with batch-packed ones (L0 -> L2)."""
    handle = load_model(str(build_tiny(arch, tmp_path, num_hidden_layers=3)))
    kept = build_graph(handle, PROMPT, stages=[0, 1, 3], recompute=False)
    lean = build_graph(handle, PROMPT, stages=[0, 1, 3], recompute=True)
    assert [e.method for e in lean.transitions] == [e.method for e in kept.transitions] == ["closed_form",
                                                                                          "batch_packed"]
    for a, b in zip(lean.transitions, kept.transitions):
        da, db = dense(a, kept.n_tokens), dense(b, kept.n_tokens)
        assert np.abs(da - db).max() <= 1e-5 * max(1.0, np.abs(db).max()), (a.src_stage, a.dst_stage)


@pytest.mark.parametrize("arch", ["qwen3", "gpt2", "gpt_neox"])
def test_reduced_layer_rows_equal_full_computation(tiny_model_dir, arch):
    handle = load_model(str(tiny_model_dir(arch)))
    ids = handle.tokenizer(PROMPT)["input_ids"]

    def pick():
        return Picker(handle.tokenizer, "logit_diff/by_ref_token", None, None, [])

    full, _, _ = run_trace(handle, ids, pick(), "logit_diff/by_ref_token", keep_grads=True)
    reduced, _, _ = run_trace(handle, ids, pick(), "logit_diff/by_ref_token", keep_grads=False)
    assert reduced.posts == [] and reduced.post_grads == []  # nothing [T, d] per layer is kept
    old = [relevance(h, g) for h, g in zip(full.posts, full.post_grads)]
    assert len(reduced.post_rel) == len(old) == handle.n_layers
    for a, b in zip(reduced.post_rel, old):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)


def _between(handle, tokens, kind):
    """Free memory between the recompute and the kept estimates: only recompute fits."""
    lean, kept = estimate(handle, tokens, kind, recompute=True).needed, estimate(handle, tokens, kind).needed
    assert lean < kept
    return (lean + kept) // 2


@pytest.fixture(scope="module")
def deep_qwen3(tmp_path_factory):
    """Eight layers: enough for recompute (inputs of all layers + one layer's activations) to save memory."""
    return load_model(str(build_tiny("qwen3", tmp_path_factory.mktemp("deep"), num_hidden_layers=8)))


@pytest.mark.parametrize("kind", ["heatmap", "graph"])
def test_guard_picks_recompute_when_kept_does_not_fit(deep_qwen3, monkeypatch, kind):
    handle = deep_qwen3
    tokens = len(handle.tokenizer(PROMPT)["input_ids"])
    assert check_memory(handle, tokens, kind).path == "kept"
    reference = attribute(handle, PROMPT, recompute=False)
    free = _between(handle, tokens, kind)
    monkeypatch.setattr("engine.memory.available_bytes", lambda device: free)
    plan = check_memory(handle, tokens, kind)
    assert plan.path == "recompute" and "recomputed" in plan.note
    if kind == "heatmap":
        res = attribute(handle, PROMPT)
        assert res.path == "recompute" and any("recomputed" in w for w in res.warnings)
        np.testing.assert_allclose(res.relevance, reference.relevance, atol=1e-6, rtol=0)
    else:
        g = build_graph(handle, PROMPT)
        assert g.path == "recompute" and any("recomputed" in n for n in g.notes)
    # forcing the kept path refuses, and the message names the path that fits
    with pytest.raises(FailureLensError, match=r"allow per-layer recompute .*it fits"):
        check_memory(handle, tokens, kind, recompute=False)


def test_guard_refuses_when_nothing_fits(tiny_model_dir, monkeypatch):
    handle = load_model(str(tiny_model_dir("qwen3")))
    monkeypatch.setattr("engine.memory.available_bytes", lambda device: 1 << 10)
    with pytest.raises(FailureLensError, match=r"even with per-layer recompute.*shorten the prompt"):
        attribute(handle, PROMPT)
