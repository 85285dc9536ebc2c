"""Node ablation (engine.cases.ablation): known answers, batched == one at a time, relevance == the graph's."""
import pytest
import torch
from test_cases_checks import bigram  # noqa: F401 (fixture)
from tiny_models import ARCHS

from engine.cases.ablation import AblationReport, ablate_nodes, node_states, top_nodes
from engine.models import load_model
from engine.objectives import Objective
from engine.records import FailureLensError


def _ids(handle, text="the cat sat on the mat"):
    return handle.tokenizer(text)["input_ids"]


def test_bigram_only_the_last_token_matters(bigram):  # noqa: F811
    tok = bigram.tokenizer
    ids = tok("xyz d")["input_ids"]
    e, a = tok("e")["input_ids"][0], tok("a")["input_ids"][0]
    last = len(ids) - 1
    nodes = [(s, t) for s in (0, 1) for t in range(len(ids))]
    rep = ablate_nodes(bigram, ids, e, a, nodes=nodes)
    assert rep.base_logit_diff > 1
    for n in rep.nodes:
        if n.token != last:  # no path from an earlier token to the prediction: nothing changes, nothing predicted
            scale = 1e-5 * max(1.0, abs(rep.base_logit_diff))  # batched rows vs a plain run: same maths, not same sums
            assert abs(n.measured_zero) <= scale and abs(n.measured_mean) <= scale and abs(n.predicted_zero) <= scale
        else:  # a zero state at the last position: every logit 0, so Δℓ drops to 0
            assert n.measured_zero == pytest.approx(-rep.base_logit_diff, rel=1e-5)
            assert n.predicted_zero == pytest.approx(n.measured_zero, rel=1e-4)  # linear here: prediction exact
    assert top_nodes(torch.tensor([[0.1, -3.0], [2.0, 0.5]]).numpy(), 3) == [(0, 1), (1, 0), (1, 1)]
    assert top_nodes(torch.tensor([[5.0, -3.0], [2.0, 0.5]]).numpy(), 1, skip_first=True) == [(0, 1)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = load_model(str(tiny_model_dir(arch)), device="cpu")
        return cache[arch]

    return get


def test_zero_state_changes_nothing_and_matches_an_embedding_reference(tiny):
    h = tiny("qwen3")
    ids = _ids(h)
    emb = h.model.get_input_embeddings()
    p, q = 2, 3
    saved = emb.weight[ids[p]].clone()
    try:
        with torch.no_grad():
            emb.weight[ids[p]] = 0.0  # the token at p now has a zero embedding
        rep = ablate_nodes(h, ids, 5, 7, nodes=[(0, p), (0, q)])
        zero = rep.nodes[0]
        # a zero state replaced by zero: nothing changes; the row runs batched on a cached prefix and the base on its
        # own, so the two Δℓ agree to rounding (how far depends on the thread count), not bit for bit
        scale = 1e-5 * max(1.0, abs(rep.base_logit_diff))
        assert abs(zero.measured_zero) <= scale and abs(zero.predicted_zero) <= scale
        # independent path: the model run on embeddings with row q zeroed
        with torch.no_grad():
            e = emb(torch.tensor([ids]))
            e[0, q] = 0
            logits = h.model(inputs_embeds=e, logits_to_keep=1).logits[0, -1]
        assert rep.nodes[1].measured_zero == pytest.approx(float(logits[5] - logits[7]) - rep.base_logit_diff, abs=1e-5)
        assert rep.nodes[1].measured_zero != 0
    finally:
        with torch.no_grad():
            emb.weight[ids[p]] = saved


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_with_cached_prefix_equals_one_full_forward_at_a_time(tiny, arch):
    h = tiny(arch)
    ids = _ids(h, "the cat sat on the mat and the dog lay by the door of the house")
    split = arch != "gpt_neox"  # parallel attention + MLP: no mid-block rows
    many = ablate_nodes(h, ids, 5, 7, top_n=8, split=split)
    ones = ablate_nodes(h, ids, 5, 7, top_n=8, split=split, chunk=1, reuse_prefix=False)
    assert len(many.nodes) == 8 and many.forward_rows >= 16
    assert many.base_logit_diff == pytest.approx(ones.base_logit_diff, abs=1e-5)
    for a, b in zip(many.nodes, ones.nodes):
        for field in ("measured_zero", "measured_mean", "block_measured_zero", "block_measured_mean"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                assert x == pytest.approx(y, abs=2e-5), (a.stage_name, a.token, field)
    assert {n.block for n in many.nodes} <= {"attention", "mlp", None}
    if arch in ("olmo2", "olmo3", "gemma3"):  # post-norm: a mid row's residual cannot be set alone
        assert any("Post-norm" in n for n in many.notes)
        assert all(n.measured_zero is None for n in many.nodes if n.stage_name.endswith(".mid"))
    assert AblationReport.from_dict(many.to_dict()) == many


def test_relevance_is_the_graphs_node_relevance(tiny):
    from engine.graph.build import build_graph

    h = tiny("qwen3")
    prompt = "the cat sat on the mat"
    g = build_graph(h, prompt, Objective(target="#5", contrast="#7"), split=True)
    rep = ablate_nodes(h, g.token_ids, 5, 7, top_n=10, split=True)
    for n in rep.nodes:
        assert n.relevance == pytest.approx(float(g.node_relevance[n.stage, n.token]), rel=1e-4, abs=1e-6)
        assert n.predicted_zero == pytest.approx(-n.relevance, rel=1e-5, abs=1e-7)


def test_states_captured_once_serve_every_later_node(tiny):
    """A node click on the Graph page ablates with the case's cached node states: the same numbers as capturing
    them again, for the top nodes and for single nodes, split or not."""
    h = tiny("qwen3")
    ids = _ids(h, "the cat sat on the mat and the dog lay by the door")
    for split in (False, True):
        states = node_states(h, ids, 5, 7, split=split)
        for kw in (dict(top_n=6), dict(nodes=[(1, 3)]), dict(nodes=[(2, 5), (0, 1)])):
            fresh, reused = ablate_nodes(h, ids, 5, 7, split=split, **kw), ablate_nodes(h, ids, 5, 7, split=split,
                                                                                       states=states, **kw)
            assert fresh.base_logit_diff == pytest.approx(reused.base_logit_diff, abs=1e-5)
            assert [(n.stage, n.token) for n in fresh.nodes] == [(n.stage, n.token) for n in reused.nodes]
            for a, b in zip(fresh.nodes, reused.nodes):
                for field in ("relevance", "predicted_zero", "measured_zero", "predicted_mean", "measured_mean",
                              "block_predicted_zero", "block_measured_zero"):
                    x, y = getattr(a, field), getattr(b, field)
                    assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, abs=1e-5)), field


def test_bad_nodes(tiny):
    h = tiny("qwen3")
    with pytest.raises(FailureLensError, match="outside the graph"):
        ablate_nodes(h, _ids(h), 5, 7, nodes=[(99, 0)])
    with pytest.raises(FailureLensError, match="empty"):
        ablate_nodes(h, [], 5, 7)


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_starting_at_their_own_layer_equal_the_full_rerun(tiny, arch):
    """Every stage at three tokens: rows from the node's layer and token on the prompt's states == full forwards."""
    from engine.graph.capture import attention_module
    from engine.graph.prune import stage_layout
    from engine.trace import decoder_layers

    h = tiny(arch)
    ids = _ids(h, "the cat sat on the mat and the dog lay by the door")
    split = arch != "gpt_neox"
    n_stages = len(stage_layout(h.n_layers, split))
    nodes = [(s, t) for s in range(n_stages) for t in (0, len(ids) // 2, len(ids) - 1)]
    first = attention_module(decoder_layers(h.model)[0])
    calls = []
    hook = first.register_forward_hook(lambda *_: calls.append(1))
    try:
        fast = ablate_nodes(h, ids, 5, 7, nodes=nodes, split=split)
        skipped = len(calls)
        calls.clear()
        full = ablate_nodes(h, ids, 5, 7, nodes=nodes, split=split, chunk=1, reuse_prefix=False)
    finally:
        hook.remove()
    # the full re-run runs layer 0 for every row (+ the rule pass); the fast one only for rows that start there
    assert skipped < len(calls)
    assert fast.base_logit_diff == pytest.approx(full.base_logit_diff, abs=1e-5)
    for a, b in zip(fast.nodes, full.nodes):
        for field in ("measured_zero", "measured_mean", "block_measured_zero", "block_measured_mean"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                assert x == pytest.approx(y, abs=2e-5 * max(1.0, abs(y))), (a.stage_name, a.token, field)
