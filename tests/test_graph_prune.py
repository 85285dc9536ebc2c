import math

import numpy as np
import pytest
from graph_fixtures import small_graph

from engine.graph.prune import cum_mass_threshold, layer_presets, prune, stage_layout
from engine.graph.types import AttributionGraph, EdgeSet, PruneSettings

T, F = True, False


def masks(p):
    return [m.tolist() for m in p.edge_masks]


@pytest.mark.parametrize("w,p,tau", [
    ([4, 3, 2, 1], 0.5, 3),   # need 5: 4, 7 -> cut at 3
    ([1, 3, 4, 2], 0.7, 3),   # exactly reaching p keeps the cut there; order of input does not matter
    ([4, 3, 2, 1], 0.71, 2),
    ([2, 2, 2, 1], 0.3, 2),   # ties at the cut value: all three 2s kept by |w| >= tau
    ([4, 3, 2, 1], 1.0, 1),
    ([4, 3, 2, 1], 0.0, 4),
])
def test_cum_mass_threshold(w, p, tau):
    assert cum_mass_threshold(np.array(w, dtype=np.float32), p) == tau


def test_cum_mass_threshold_no_mass_keeps_nothing():
    assert cum_mass_threshold(np.zeros(3), 0.9) == math.inf
    assert cum_mass_threshold(np.zeros(0), 0.9) == math.inf


def test_global_threshold_and_details():
    p = prune(small_graph(), PruneSettings(mode="global", edge_threshold=0.15))
    assert masks(p) == [[T, T, F, F, F, T, F], [F, F, T, T, T], [T, F]]
    assert p.node_mask.tolist() == [[T, T, T, F], [T, T, T, T], [T, F, T, T]]  # |R| > 0
    d = p.details[0]
    # zero edge not counted
    assert (d["selected"], d["threshold"], d["kept_edges"], d["total_edges"]) == (True, 0.15, 3, 6)
    assert d["kept_fraction"] == pytest.approx(0.5)
    assert d["kept_mass_fraction"] == pytest.approx(0.8 / 1.0)
    assert p.stages == (0, 1, 2)


def test_cum_mass_per_transition():
    p = prune(small_graph(), PruneSettings(mode="cum_mass", top_p=0.5))
    # t0 |w| .4 .2 .2 .1 .05 .05 (mass 1): .4+.2 >= .5 -> cut .2, both .2 kept; t1 mass 1.2: .5+.3 -> cut .3
    assert masks(p) == [[T, T, F, F, F, T, F], [F, F, F, T, T], [T, F]]
    assert p.details[1]["threshold"] == pytest.approx(0.3)


def test_hide_first_token_rescales_mass_to_what_is_shown():
    p = prune(small_graph(), PruneSettings(mode="cum_mass", top_p=0.5, hide_first_token=True))
    assert not p.node_mask[:, 0].any()
    # t0 without token 0: .2 .2 .05 (mass .45) -> cut .2; t1: .5 .2 .1 -> cut .5; t2: only -.05 left
    assert masks(p) == [[F, T, F, F, F, T, F], [F, F, F, T, F], [F, T]]


def test_node_threshold_drops_nodes_and_their_edges():
    p = prune(small_graph(), PruneSettings(mode="global", edge_threshold=0.0, node_threshold=0.15))
    assert p.node_mask.tolist() == [[T, F, T, F], [T, T, F, T], [F, F, T, T]]
    assert masks(p) == [[T, F, F, F, T, T, F], [F, T, F, T, T], [T, T]]


def test_connected_subgraph_default_target_is_last_token_last_stage():
    p = prune(small_graph(), PruneSettings(mode="global", edge_threshold=0.15, connected_to=(-1, -1)))
    assert p.node_mask.tolist() == [[T, F, T, F], [T, F, F, T], [F, F, F, T]]
    assert masks(p) == [[T, F, F, F, F, T, F], [F, F, F, T, T], [T, F]]
    assert p.details[0]["kept_edges"] == 2


def test_connected_subgraph_explicit_target():
    p = prune(small_graph(), PruneSettings(mode="global", edge_threshold=0.15, connected_to=(1, 1)))
    assert p.node_mask.tolist() == [[F, T, F, F], [F, T, F, F], [F, F, F, F]]
    assert masks(p) == [[F, T, F, F, F, F, F], [F] * 5, [F, F]]


def test_stage_selection_keeps_transitions_inside_it():
    s = PruneSettings(mode="global", edge_threshold=0.15, connected_to=(-1, -1))
    p = prune(small_graph(), s, stages=[0, 2])
    assert masks(p) == [[F] * 7, [F] * 5, [T, F]]
    assert p.node_mask.tolist() == [[T, F, F, F], [F, F, F, F], [F, F, F, T]]
    assert p.details[0]["selected"] is False and math.isnan(p.details[0]["threshold"])
    assert p.stages == (0, 2)
    p = prune(small_graph(), PruneSettings(mode="global", edge_threshold=0.15), stages=[1, 2])
    assert not p.node_mask[0].any() and masks(p)[0] == [F] * 7 and masks(p)[1] == [F, F, T, T, T]


def test_unknown_mode():
    with pytest.raises(ValueError, match="cum_mass"):
        prune(small_graph(), PruneSettings(mode="top_k"))


def test_stage_layout_and_presets():
    assert [s.name for s in stage_layout(2, True)] == ["emb", "L0.mid", "L0", "L1.mid", "L1"]
    assert [(s.layer, s.kind) for s in stage_layout(1, False)] == [(-1, "emb"), (0, "post")]
    pre = layer_presets(12, False)  # layers round(i*11/5) = 0 2 4 7 9 11 -> stage = layer + 1
    assert pre["All"] == list(range(13))
    assert pre["Evenly spaced (6)"] == [0, 1, 3, 5, 8, 10, 12]
    assert pre["Last half"] == list(range(7, 13))
    pre = layer_presets(12, True)  # layer l: mid 2l+1, post 2l+2
    assert pre["Evenly spaced (6)"] == [0, 1, 2, 5, 6, 9, 10, 15, 16, 19, 20, 23, 24]
    assert layer_presets(3, False)["Evenly spaced (6)"] == [0, 1, 2, 3]  # duplicates collapse


def test_prune_handles_large_graphs():
    """2 M edges prune to a non-empty graph (speed is measured by `python -m bench graph`, not asserted here)."""
    rng = np.random.default_rng(0)
    n_tr, n_e, n_tok = 10, 200_000, 2000
    rel = rng.normal(size=(n_tr + 1, n_tok)).astype(np.float32)
    trs = []
    for i in range(n_tr):
        dst = rng.integers(0, n_tok, n_e, dtype=np.int32)
        src = (dst * rng.random(n_e)).astype(np.int32)
        trs.append(EdgeSet(i, i + 1, src, dst, rng.normal(size=n_e).astype(np.float32),
                           np.zeros(n_tok, np.float32), "closed_form"))
    g = AttributionGraph("m", ["x"] * n_tok, list(range(n_tok)), [None] * (n_tr + 1), rel, trs, 0.0, "r")
    prune(g, PruneSettings())  # warm-up
    for s in (PruneSettings(top_p=0.9, connected_to=(-1, -1), hide_first_token=True),
              PruneSettings(mode="global", edge_threshold=0.5, node_threshold=0.1)):
        p = prune(g, s)
        assert sum(int(m.sum()) for m in p.edge_masks) > 0


def test_cum_mass_counts_mass_dropped_while_computing():
    from engine.graph.prune import cum_mass_threshold

    w = np.array([4.0, 3.0, 2.0, 1.0])
    assert cum_mass_threshold(w, 0.5) == 3.0  # 4 + 3 >= 0.5 * 10
    # 10 more units were too small to store: 0.5 of 20 needs every stored edge
    assert cum_mass_threshold(w, 0.5, dropped=10.0) == 1.0


def test_relative_settings_turn_slider_shares_into_thresholds():
    """The Graph page's sliders are shares: of the strongest edge, and of the largest |R| of the shown stages."""
    from engine.graph.prune import relative_settings

    rel = np.array([[0.5, -4.0, 1.0], [2.0, 0.0, -1.0], [0.0, 8.0, 0.0]], np.float32)
    tr = EdgeSet(0, 1, np.array([0, 1], np.int32), np.array([1, 2], np.int32), np.array([0.5, -2.0], np.float32),
                 np.zeros(3, np.float32), "closed_form")
    g = AttributionGraph("m", ["a", "b", "c"], [0, 1, 2], [None] * 3, rel, [tr], 0.0, "r")
    assert relative_settings(g, [0, 1], connected=True).connected_to == (-1, -1)
    s = relative_settings(g, [0, 1], mode="global", edge_share=0.25, node_share=1.0)
    assert s.edge_threshold == pytest.approx(0.5) and s.connected_to is None and s.mode == "global"
    assert s.node_threshold == pytest.approx(4.0, rel=1e-5) and s.node_threshold < 4.0  # stage 2's 8.0 not shown
    p = prune(g, s, [0, 1])
    assert p.visible() == [(0, 1)] and p.shown_stages() == [0, 1]  # a share of 1 keeps the strongest node
