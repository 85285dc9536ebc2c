"""Graph edges: the closed form equals batch-packed backprop on every architecture and both rules."""
from __future__ import annotations

import numpy as np
import pytest
from graph_fixtures import LONG_PROMPT as PROMPT
from graph_fixtures import dense
from tiny_models import ARCHS

from engine import load_model
from engine.graph.build import build_graph
from engine.graph.cache import GraphCache, graph_key
from engine.records import FailureLensError


@pytest.mark.parametrize("rule", ["attnlrp", "cp-lrp"])
@pytest.mark.parametrize("arch", ARCHS)
def test_closed_form_equals_batch_packed(tiny_model_dir, arch, rule):
    handle = load_model(str(tiny_model_dir(arch)), rule=rule)
    fast = build_graph(handle, PROMPT, split=True)
    slow = build_graph(handle, PROMPT, split=True, method="batch_packed", batch=7)
    t = fast.n_tokens
    assert t > 40
    assert all(e.method == "closed_form" for e in fast.transitions)
    assert all(e.method == "batch_packed" for e in slow.transitions)
    np.testing.assert_allclose(fast.node_relevance, slow.node_relevance, rtol=0,
                               atol=1e-5 * max(1.0, float(np.abs(slow.node_relevance).max())))
    for a, b in zip(fast.transitions, slow.transitions):
        da, db = dense(a, t), dense(b, t)
        scale = np.abs(db).max()
        assert np.abs(da - db).max() <= 1e-5 * scale, (a.src_stage, a.dst_stage)
        np.testing.assert_allclose(a.absorbed, b.absorbed, atol=1e-5 * max(1.0, scale))


@pytest.mark.parametrize("arch", ["qwen3", "gpt2"])
def test_in_edges_sum_to_node_relevance_up_to_absorbed(tiny_model_dir, arch):
    handle = load_model(str(tiny_model_dir(arch)))
    g = build_graph(handle, PROMPT, split=True)
    for e in g.transitions:
        in_sum = np.zeros(g.n_tokens)
        np.add.at(in_sum, e.dst_tok, e.weight.astype(np.float64))
        np.testing.assert_allclose(in_sum + e.absorbed, g.node_relevance[e.dst_stage], atol=1e-4)
        out_sum = np.zeros(g.n_tokens)  # adjacent transitions: a source's out-edges carry all its relevance
        np.add.at(out_sum, e.src_tok, e.weight.astype(np.float64))
        np.testing.assert_allclose(out_sum, g.node_relevance[e.src_stage], atol=1e-4)
    # the softmax rule makes AttnLRP non-conservative: some relevance is absorbed, and it is reported
    assert max(np.abs(e.absorbed).max() for e in g.transitions) > 1e-3


def test_path_and_head_splits_add_up(tiny_model_dir):
    g = build_graph(load_model(str(tiny_model_dir("llama"))), PROMPT, split=True)
    attn = g.transitions[0]
    np.testing.assert_allclose(attn.paths.sum(1), attn.weight, atol=1e-5)
    off = attn.src_tok != attn.dst_tok
    np.testing.assert_allclose(attn.heads[off].sum(1), attn.weight[off], atol=1e-5)
    assert attn.heads.shape[1] == 4


def test_skipping_layers_uses_batch_packed_and_matches_forced(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    auto = build_graph(handle, PROMPT, stages=[0, 2])  # embedding -> layer 1 skips layer 0
    assert auto.transitions[0].method == "batch_packed"
    with pytest.raises(FailureLensError, match="skips blocks"):
        build_graph(handle, PROMPT, stages=[0, 2], method="closed_form")


def test_max_edges_keeps_largest_and_reports_dropped_mass(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    full = build_graph(handle, PROMPT)
    small = build_graph(handle, PROMPT, max_edges=50)
    a, b = full.transitions[0], small.transitions[0]
    off_a = np.abs(a.weight[a.src_tok != a.dst_tok])
    off_b = np.abs(b.weight[b.src_tok != b.dst_tok])
    assert len(off_b) == 50
    assert np.isclose(off_b.min(), np.sort(off_a)[-50])
    assert b.dropped_mass == pytest.approx(off_a.sum() - off_b.sum(), rel=1e-4)


def test_graph_cache_hits_only_same_content(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    g = build_graph(handle, PROMPT)
    cache = GraphCache(max_bytes=1 << 30)
    key = graph_key(handle.key, g.token_ids, "logit_diff/by_ref_token", handle.rule, (0, 1, 2), False)
    cache.put(key, g)
    assert cache.get(key) is g
    other_prompt = graph_key(handle.key, g.token_ids[:-1], "logit_diff/by_ref_token", handle.rule, (0, 1, 2), False)
    other_model = graph_key(load_model(str(tiny_model_dir("llama"))).key, g.token_ids, "logit_diff/by_ref_token",
                            handle.rule, (0, 1, 2), False)
    assert cache.get(other_prompt) is None and cache.get(other_model) is None


def test_drilldown_data_present(tiny_model_dir):
    handle = load_model(str(tiny_model_dir("qwen3")))
    g = build_graph(handle, PROMPT, split=True)
    s, t = len(g.stages) - 1, g.n_tokens - 1
    assert g.dims_idx.shape == (len(g.stages), g.n_tokens, 8)
    assert g.neurons_idx.shape == (handle.n_layers, g.n_tokens, 8)
    vals = np.abs(g.dims_val[s, t])
    assert np.all(np.diff(vals) <= 1e-7)  # sorted by |relevance|


@pytest.mark.parametrize("arch", ["qwen3", "gpt2"])
def test_checkpointed_recompute_path_equals_kept_activations(tiny_model_dir, arch):
    kept = build_graph(load_model(str(tiny_model_dir(arch))), PROMPT, split=True)
    recomputed = build_graph(load_model(str(tiny_model_dir(arch)), gradient_checkpointing=True), PROMPT, split=True)
    assert any("recomputed one layer at a time" in n for n in recomputed.notes)
    np.testing.assert_allclose(recomputed.node_relevance, kept.node_relevance, atol=1e-5)
    for a, b in zip(recomputed.transitions, kept.transitions):
        t = kept.n_tokens
        np.testing.assert_allclose(dense(a, t), dense(b, t), atol=1e-5)
    np.testing.assert_allclose(recomputed.neurons_val, kept.neurons_val, atol=1e-5)
