"""Several sessions on one shared model: results identical to sequential runs; rules never leak."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine import attribute, load_model
from engine.graph.build import build_graph
from engine.graph.types import PruneSettings
from engine.objectives import Objective
from engine.records import FailureLensError

PROMPTS = [
    "the of and to in is was for on that",
    "with as by at from it his her their its an",
    "be are were this which or have has had not",
    "but they he she we you i me my our your",
]


def test_four_threads_share_one_model_like_streamlit_sessions(tiny_model_dir):
    shared = load_model(str(tiny_model_dir("qwen3")))
    sequential = [attribute(shared, p) for p in PROMPTS]
    graphs = [build_graph(shared, p) for p in PROMPTS[:2]]

    def session(i):
        res = attribute(shared, PROMPTS[i % 4])
        g = build_graph(shared, PROMPTS[i % 2]) if i % 3 == 0 else None
        return i, res, g

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(session, range(12)))
    for i, res, g in outcomes:
        assert res.relevance == sequential[i % 4].relevance
        if g is not None:
            for a, b in zip(g.transitions, graphs[i % 2].transitions):
                np.testing.assert_array_equal(a.weight, b.weight)
    # the model is clean afterwards: plain config, no instance patches
    assert not shared.model.config._attn_implementation.startswith("failure_lens")
    assert not any("forward" in m.__dict__ for m in shared.model.modules())


@pytest.mark.parametrize("kwargs, message", [
    (dict(top_p=0.0), "Cumulative mass 0.0 is out of range"),
    (dict(top_p=1.5), "out of range"),
    (dict(edge_threshold=-1.0), "Edge threshold -1.0 is out of range"),
    (dict(node_threshold=float("nan")), "Node threshold nan is out of range"),
    (dict(mode="random"), "Unknown pruning mode"),
])
def test_pruning_settings_out_of_range(kwargs, message):
    with pytest.raises(FailureLensError, match=message):
        PruneSettings(**kwargs)


def test_overflow_is_reported_not_drawn(tiny_model_dir):
    import torch

    h = load_model(str(tiny_model_dir("llama")), dtype="float16")
    with torch.no_grad():
        for p in h.model.parameters():
            if p.ndim == 2:
                p.mul_(300.0)  # activations overflow float16
    with pytest.raises(FailureLensError, match="NaN or infinite"):
        attribute(h, PROMPTS[0], Objective(target=5, contrast=6))


def test_sessions_loading_the_same_tied_model_at_once_all_get_it_whole():
    """Three sessions open the dashboard at once: each load of a tied-embedding zoo model succeeds (transformers'
    from_pretrained is not thread-safe: unserialised, the lm_head tie was reported missing) and equals a lone load."""
    from engine import zoo

    name = zoo.zoo_names()[-1]  # the largest: its load is long enough for the threads to overlap
    with ThreadPoolExecutor(3) as pool:
        handles = list(pool.map(lambda _: load_model(f"zoo:{name}"), range(3)))
    alone = load_model(f"zoo:{name}")
    ids = alone.tokenizer("the cat")["input_ids"]
    import torch

    with torch.no_grad():
        want = alone.model(torch.tensor([ids])).logits
        for h in handles:
            got = h.model(torch.tensor([ids])).logits
            torch.testing.assert_close(got, want, atol=1e-5 * max(1.0, float(want.abs().max())), rtol=0)
