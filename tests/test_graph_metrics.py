import math

import numpy as np
import pytest
from graph_fixtures import edge_set, make_graph, small_graph

from engine.graph.metrics import early_late_ratio, gini, graph_metrics, group_gini, n_for_mass, normalized_entropy
from engine.graph.prune import prune
from engine.graph.types import PrunedGraph, PruneSettings


def hand_graph():
    """emb -> L0, 4 tokens; emb token 2 hidden; edge e6 present but not kept."""
    g = make_graph([[4, 2, 0, 2], [1, 3, -2, 2]],
                   [edge_set(0, 1, [(0, 0, 1), (0, 1, 2), (1, 1, 1), (0, 3, 1), (1, 3, 1), (3, 3, 2), (0, 2, -4)], 4)])
    pruned = PrunedGraph(node_mask=np.array([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=bool),
                         edge_masks=[np.array([1, 1, 1, 1, 1, 1, 0], dtype=bool)], details=[{}])
    return g, pruned


def test_helpers_by_hand():
    assert gini([3, 1, 2]) == pytest.approx(4 / 18)  # sorted 1 2 3: (-2*1 + 0*2 + 2*3) / (3*6)
    assert gini([-2, 2]) == 0.0 and gini([0, 0]) == 0.0 and gini([]) == 0.0
    out = group_gini(np.array([0, 0, 0, 2, 2, 3]), np.array([1, 2, 1, 1, 1, -2]), 5)
    assert out[0] == pytest.approx(2 / 12) and out[2] == 0.0 and out[3] == 1.0
    assert math.isnan(out[1]) and math.isnan(out[4])
    assert n_for_mass([4, -2, 2]) == 3 and n_for_mass([9, 1]) == 1 and n_for_mass([0, 0]) == 0
    assert normalized_entropy([1, 1, 1, 1]) == pytest.approx(1.0)
    assert normalized_entropy([0, 5, 0]) == 0.0
    assert normalized_entropy([4, 2, 0, -2]) == pytest.approx(1.5 * math.log(2) / math.log(4))
    assert early_late_ratio([4, 2, 0, 2]) == 3.0
    assert early_late_ratio([1, 0]) == math.inf


def test_per_stage_metrics_by_hand():
    g, pruned = hand_graph()
    df = graph_metrics(g, pruned).per_stage.set_index("stage")
    emb, l0 = df.loc["emb"], df.loc["L0"]
    assert list(df.index) == ["emb", "L0"]
    # embedding: 3 visible nodes, out-degrees 3 (tok 0), 2 (tok 1), 1 (tok 3)
    assert (emb.nodes, emb.edges, emb.edges_per_node, emb.fan_in, emb.fan_out) == (3, 6, 2, 0, 2)
    assert emb.sparsity == 0.25
    assert emb.rel_mean == pytest.approx(8 / 3)
    assert emb.rel_gini == pytest.approx(4 / 24)  # sorted 2 2 4: (-2*2 + 0*2 + 2*4) / (3*8)
    assert emb.gini_out_by_node == pytest.approx((1 / 6 + 0 + 1) / 3)  # [1,2,1] -> 1/6, [1,1] -> 0, [2] -> 1
    assert math.isnan(emb.gini_in_by_node) and math.isnan(emb.verticality) and math.isnan(emb.lookback_mean)
    assert (emb.n90, emb.n90_pos, emb.n90_neg) == (3, 3, 0)
    assert (emb.hubs_in, emb.hubs_out) == (0, 1)  # degrees 3 2 1: mean 2, std .82 -> only tok 0
    assert emb.centre_of_mass == pytest.approx((0 * 4 + 1 * 2 + 3 * 2) / 8)
    # L0: in-degrees 1 2 0 3, in-edge |w| 1 2 1 1 1 2 (the -4 edge is not kept)
    assert (l0.nodes, l0.edges, l0.fan_in, l0.fan_out, l0.sparsity) == (4, 0, 1.5, 0, 0)
    assert l0.rel_mean == 2.0
    assert l0.rel_gini == pytest.approx(6 / 32)  # sorted 1 2 2 3: (-3 - 2 + 2 + 9) / (4*8)
    assert l0.w_in_mean == pytest.approx(8 / 6)
    assert l0.w_in_gini == pytest.approx(8 / 48)  # coefficients -5 -3 -1 1 3 5 on 1 1 1 1 2 2
    assert l0.gini_in_by_node == pytest.approx((1 + 1 / 6 + 1 / 6) / 3)  # [1] [2,1] [1,1,2]
    assert l0.verticality == pytest.approx(4 / 8)  # same-token edges 1 + 1 + 2
    assert (l0.n90, l0.n90_pos, l0.n90_neg) == (4, 3, 1)
    assert (l0.hubs_in, l0.hubs_out) == (1, 0)  # 1 2 0 3: mean 1.5, std 1.12 -> only tok 3
    assert l0.centre_of_mass == pytest.approx(13 / 8)
    assert l0.lookback_mean == pytest.approx((0 + 1 + 0 + 3 + 2 + 0) / 6)
    assert l0.local_share == pytest.approx(3 / 6)


def test_per_prompt_metrics():
    g, pruned = hand_graph()
    m = graph_metrics(g, pruned)
    assert m.input_entropy == pytest.approx(0.75)  # p = .5 .25 0 .25: 1.5 ln2 / ln4
    assert m.early_late == 3.0  # (4+2) / (0+2)
    m = graph_metrics(g, pruned, skip_first_token=True)  # [2, 0, 2]
    assert m.input_entropy == pytest.approx(math.log(2) / math.log(3))
    assert m.early_late == 1.0


def test_metrics_follow_pruning_and_stage_selection():
    g = small_graph()
    p = prune(g, PruneSettings(mode="global", edge_threshold=0.15), stages=[1, 2])
    df = graph_metrics(g, p).per_stage
    assert list(df.stage) == ["L0", "L1"]
    assert df.nodes.tolist() == [4, 3] and df.edges.tolist() == [3, 0]
