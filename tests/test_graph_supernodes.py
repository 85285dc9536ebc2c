"""Supernodes (engine.graph.supernodes) on hand-built graphs: exact sums, the in-edges + absorbed identity per group,
identity for single-token groups, expand, exports that follow the grouping."""
import json

import numpy as np
import pytest
from graph_fixtures import edge_set, make_graph, small_graph

from engine.graph.export import from_json, node_id, to_graphml, to_json
from engine.graph.prune import prune
from engine.graph.supernodes import group_graph, node_cap_threshold
from engine.graph.types import PruneSettings
from engine.token_groups import Grouping, expand, group_tokens


def _grouping(spans: list[tuple[int, int]], n: int) -> Grouping:
    return Grouping("test", tuple(s for s, _ in spans), n, tuple(f"g{s}" for s, _ in spans))


def _conserving_graph():
    """5 tokens, emb -> L0 -> L1; every node's relevance = its in-edges + absorbed (absorbed set to make it so),
    with per-head and per-path splits. Values are dyadic, so sums are exact in float32."""
    rel = [[0.5, 0.25, -0.125, 1.0, 0.0],
           [0.75, -0.5, 0.25, 0.5, 2.0],
           [1.0, 0.0, -0.25, 0.5, 3.0]]
    e01 = [(0, 0, 0.5), (1, 1, -0.25), (0, 2, 0.125), (1, 2, 0.25), (3, 3, 0.5), (0, 4, 1.0), (2, 4, 0.25), (3, 4, 0.5)]
    e12 = [(0, 0, 0.75), (1, 2, -0.5), (2, 2, 0.25), (3, 3, 0.25), (2, 4, 1.0), (4, 4, 1.5), (0, 4, 0.25)]
    trs = []
    for i, edges in enumerate((e01, e12)):
        heads = [[w / 2, w / 2] for _, _, w in edges]
        paths = [[w / 4, w / 4, w / 2] for _, _, w in edges]
        tr = edge_set(i, i + 1, edges, 5, heads=heads, paths=paths)
        in_sum = np.bincount(tr.dst_tok, weights=tr.weight, minlength=5)
        absorbed = (np.array(rel[i + 1]) - in_sum).astype(np.float32)
        trs.append(type(tr)(**{**tr.__dict__, "absorbed": absorbed}))
    return make_graph(rel, trs, tokens=["<s>", "a", "b", "c", "?"])


SPANS = [(0, 1), (1, 3), (3, 5)]


def test_group_relevance_and_edges_are_exact_sums():
    g = _conserving_graph()
    gg = group_graph(g, _grouping(SPANS, 5))
    assert gg.spans == tuple(SPANS) and gg.tokens == ["g0", "g1", "g3"] and gg.token_ids == [0, 1, 3]
    np.testing.assert_array_equal(gg.node_relevance[1], [0.75, -0.25, 2.5])
    np.testing.assert_array_equal(gg.node_relevance.sum(1), g.node_relevance.sum(1))
    # emb -> L0 by group pair: (0,0) .5; (0,1) .125; (0,2) 1.0; (1,1) -.25+.25; (1,2) .25; (2,2) 1.0
    tr = gg.transitions[0]
    got = {(int(a), int(b)): float(w) for a, b, w in zip(tr.src_tok, tr.dst_tok, tr.weight)}
    assert got == {(0, 0): 0.5, (0, 1): 0.125, (0, 2): 1.0, (1, 1): 0.0, (1, 2): 0.25, (2, 2): 1.0}
    np.testing.assert_array_equal(tr.heads.sum(1), tr.weight)
    np.testing.assert_array_equal(tr.paths.sum(1), tr.weight)


def test_in_edges_plus_absorbed_equal_group_relevance():
    g = _conserving_graph()
    for spans in (SPANS, [(0, 5)], [(0, 2), (2, 3), (3, 4), (4, 5)]):
        gg = group_graph(g, _grouping(spans, 5))
        for tr in gg.transitions:
            in_sum = np.bincount(tr.dst_tok, weights=tr.weight.astype(np.float64), minlength=len(spans))
            np.testing.assert_allclose(in_sum + tr.absorbed, gg.node_relevance[tr.dst_stage], atol=1e-7)


def test_single_token_groups_give_back_the_graph():
    g = small_graph()
    gg = group_graph(g, group_tokens("tokens", g.tokens))
    np.testing.assert_array_equal(gg.node_relevance, g.node_relevance)
    for a, b in zip(g.transitions, gg.transitions):
        order = np.lexsort((a.dst_tok, a.src_tok))
        np.testing.assert_array_equal(b.src_tok, a.src_tok[order])
        np.testing.assert_array_equal(b.dst_tok, a.dst_tok[order])
        np.testing.assert_array_equal(b.weight, a.weight[order])
    # the skip transition emb -> L1 groups the same way as adjacent ones
    assert gg.transitions[2].src_stage == 0 and gg.transitions[2].dst_stage == 2


def test_expand_a_supernode_back_to_its_tokens():
    g = _conserving_graph()
    coarse = _grouping(SPANS, 5)
    opened = expand(coarse, 1, g.tokens)  # group 1 (tokens 1, 2) into its tokens
    gg = group_graph(g, opened)
    assert gg.spans == ((0, 1), (1, 2), (2, 3), (3, 5))
    np.testing.assert_array_equal(gg.node_relevance[:, 1:3], g.node_relevance[:, 1:3])
    np.testing.assert_array_equal(gg.node_relevance[:, 3], g.node_relevance[:, 3:].sum(1))
    assert node_id(gg, 2, 3) == "L1.T3-4" and node_id(gg, 2, 1) == "L1.T1"


def test_exports_follow_the_grouping():
    gg = group_graph(_conserving_graph(), _grouping(SPANS, 5))
    pruned = prune(gg, PruneSettings(mode="global", edge_threshold=0.0))
    d = json.loads(json.dumps(to_json(gg)))
    assert d["meta"]["groups"] == [[0, 1], [1, 3], [3, 5]]
    n = d["nodes"]  # columnar (schema 2): ids follow from stage and column
    assert {node_id(gg, s, t) for s, t in zip(n["stage_index"], n["token"])} >= {"emb.T0", "L0.T1-2", "L1.T3-4"}
    back = from_json(d)
    assert back.spans == gg.spans
    np.testing.assert_array_equal(back.node_relevance, gg.node_relevance)
    xml = to_graphml(gg, pruned)
    assert 'L1.T3-4' in xml and "token_start" in xml
    assert to_json(_conserving_graph())["meta"]["groups"] is None


def test_node_cap_threshold_leaves_at_most_n_nodes():
    g = _conserving_graph()
    thr = node_cap_threshold(g, [0, 1, 2], 4)
    kept = prune(g, PruneSettings(node_threshold=thr)).node_mask.sum()
    assert kept == 4  # |R| 3, 2, 1, 1 lie above the fifth largest, 0.75
    assert node_cap_threshold(g, [0, 1, 2], 100) == 0.0
    with pytest.raises(ValueError, match="grouping of 4 tokens"):
        group_graph(g, _grouping([(0, 4)], 4))
