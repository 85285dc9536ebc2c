import json

import networkx as nx
import numpy as np

from engine.graph.export import from_json, to_graphml, to_json, to_networkx
from engine.graph.prune import prune
from engine.graph.types import PruneSettings
from graph_fixtures import edge_set, make_graph, small_graph

NASTY = ["<s>", "<script>alert(1)</script>", "a&b\"'", "\x00\x0b\r\n"]


def rich_graph():
    """Two transitions: one with per-head and per-path splits, one without; untrusted token strings."""
    g = make_graph(
        [[0.5, 0.25, -0.125, 1.0], [1.0, 0.0, 0.5, 0.75]],
        [edge_set(0, 1, [(0, 0, 0.5), (0, 3, 0.25), (2, 3, -0.1)], 4,
                  heads=[[0.25, 0.25], [0.2, 0.05], [-0.1, 0.0]], paths=[[0.1, 0.2, 0.2], [0.25, 0, 0], [0, 0, -0.1]])],
        tokens=NASTY)
    empty = edge_set(0, 1, [], 4)  # an empty transition survives the round trip too
    return make_graph(g.node_relevance.tolist(), g.transitions + [empty], tokens=NASTY)


def assert_same(a, b):
    assert (a.model, a.tokens, a.token_ids, a.stages, a.objective, a.rule, a.notes) == \
           (b.model, b.tokens, b.token_ids, b.stages, b.objective, b.rule, b.notes)
    np.testing.assert_array_equal(a.node_relevance, b.node_relevance)
    assert a.node_relevance.dtype == b.node_relevance.dtype
    assert len(a.transitions) == len(b.transitions)
    for x, y in zip(a.transitions, b.transitions):
        assert (x.src_stage, x.dst_stage, x.method, x.dropped_mass) == (y.src_stage, y.dst_stage, y.method, y.dropped_mass)
        for name in ("src_tok", "dst_tok", "weight", "absorbed", "heads", "paths"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                np.testing.assert_array_equal(u, v)
                assert u.dtype == v.dtype and u.shape == v.shape, name


def test_json_round_trip_is_exact():
    for g in (rich_graph(), small_graph()):
        text = json.dumps(to_json(g), allow_nan=False)
        assert_same(g, from_json(json.loads(text)))


def test_json_content():
    d = to_json(rich_graph())
    node = next(n for n in d["nodes"] if n["id"] == "L0.T3")
    assert node == {"id": "L0.T3", "stage": "L0", "stage_index": 1, "layer": 0, "token": 3,
                    "token_str": "\x00\x0b\r\n", "relevance": 0.75}
    e = d["edges"][0]
    assert (e["source"], e["target"], e["weight"], e["heads"], e["paths"]) == \
           ("emb.T0", "L0.T0", 0.5, [0.25, 0.25], [np.float32(0.1), np.float32(0.2), np.float32(0.2)])
    assert d["tokens"] == NASTY and d["meta"]["pruned"] is False
    assert d["transitions"][0]["absorbed"] == [0, 0, 0, 0]


def test_pruned_json_holds_only_what_is_shown():
    g = small_graph()
    p = prune(g, PruneSettings(mode="global", edge_threshold=0.15, connected_to=(-1, -1)))
    d = to_json(g, p)
    assert sorted(n["id"] for n in d["nodes"]) == ["L0.T0", "L0.T3", "L1.T3", "emb.T0", "emb.T2"]
    assert sorted((e["source"], e["target"]) for e in d["edges"]) == [
        ("L0.T0", "L1.T3"), ("L0.T3", "L1.T3"), ("emb.T0", "L0.T0"), ("emb.T0", "L1.T3"), ("emb.T2", "L0.T3")]
    assert d["meta"]["pruned"] is True and d["transitions"][0]["details"]["kept_edges"] == 2
    json.dumps(d, allow_nan=False)
    back = from_json(d)
    assert back.node_relevance[1, 1] == 0 and back.transitions[0].n_edges == 2


def test_networkx():
    g = rich_graph()
    G = to_networkx(g)
    assert G.number_of_nodes() == 8 and G.number_of_edges() == 3
    assert G.nodes["emb.T1"]["token_str"] == NASTY[1]
    attrs = G.edges["emb.T2", "L0.T3"]
    assert attrs["weight"] == np.float32(-0.1) and attrs["heads"] == [np.float32(-0.1), 0.0]
    assert attrs["path_diagonal"] == np.float32(-0.1) and attrs["path_value"] == 0.0
    p = prune(g, PruneSettings(mode="global", edge_threshold=0.3))
    assert list(to_networkx(g, p).edges) == [("emb.T0", "L0.T0")]


def test_graphml_is_legal_and_stores_tokens_as_data():
    g = rich_graph()
    text = to_graphml(g)
    assert "<script>" not in text  # escaped by the XML writer, not interpreted
    G = nx.parse_graphml(text)
    assert G.number_of_nodes() == 8 and G.number_of_edges() == 3
    assert G.nodes["emb.T1"]["token_str"] == "<script>alert(1)</script>"
    assert G.nodes["emb.T2"]["token_str"] == "a&b\"'"
    assert G.nodes["emb.T3"]["token_str"] == "\\x00\\x0b\\x0d\n"  # XML-illegal characters made visible
    e = G.edges["emb.T0", "L0.T3"]
    assert e["weight"] == np.float32(0.25) and json.loads(e["heads"]) == [np.float32(0.2), np.float32(0.05)]
    assert G.graph["model"] == "test-model" and G.graph["objective"] == 1.5
    p = prune(g, PruneSettings(mode="global", edge_threshold=0.3))
    assert nx.parse_graphml(to_graphml(g, p)).number_of_edges() == 1
