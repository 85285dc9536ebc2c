import json

import networkx as nx
import numpy as np
from graph_fixtures import edge_set, make_graph, small_graph

from engine.graph.export import from_json, to_graphml, to_json, to_networkx, write_json
from engine.graph.prune import prune
from engine.graph.types import PruneSettings

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
        assert ((x.src_stage, x.dst_stage, x.method, x.dropped_mass)
                == (y.src_stage, y.dst_stage, y.method, y.dropped_mass))
        for name in ("src_tok", "dst_tok", "weight", "absorbed", "heads", "paths"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                np.testing.assert_array_equal(u, v)
                assert u.dtype == v.dtype and u.shape == v.shape, name


def test_json_round_trip_is_exact():
    for g in (rich_graph(), small_graph()):
        for binary in (False, True):
            text = json.dumps(to_json(g, binary=binary), allow_nan=False)
            assert_same(g, from_json(json.loads(text)))


def test_streamed_json_is_the_same_document(tmp_path):
    """write_json (one transition at a time, for long prompts) writes what to_json holds, pruned or not."""
    for g in (rich_graph(), small_graph()):
        for binary in (False, True):
            for pruned in (None, prune(g, PruneSettings(mode="cum_mass", top_p=0.5))):
                path = tmp_path / "g.json"
                with open(path, "w", encoding="utf-8") as f:
                    write_json(g, f, pruned, binary=binary)
                got = json.loads(path.read_text(encoding="utf-8"))
                assert got == json.loads(json.dumps(to_json(g, pruned, binary=binary)))
                if pruned is None:
                    assert_same(g, from_json(got))


def test_json_content_is_columnar():
    d = to_json(rich_graph())
    nodes = d["nodes"]
    k = next(i for i, (s, t) in enumerate(zip(nodes["stage_index"], nodes["token"])) if (s, t) == (1, 3))
    assert nodes["relevance"][k] == 0.75 and d["stages"][1]["name"] == "L0" and d["tokens"][3] == "\x00\x0b\r\n"
    tr = d["transitions"][0]
    e = tr["edges"]
    assert (e["src_tok"][0], e["dst_tok"][0], e["weight"][0]) == (0, 0, 0.5)
    assert e["heads"][:2] == [0.25, 0.25] and tr["n_heads"] == 2  # flat, row-major [E, H]
    assert e["paths"][:3] == [np.float32(0.1), np.float32(0.2), np.float32(0.2)]
    assert d["tokens"] == NASTY and d["meta"]["pruned"] is False and d["meta"]["schema_version"] == 2
    assert tr["absorbed"] == [0, 0, 0, 0]
    assert all(isinstance(v, list) for v in e.values())  # columns, never an object per edge


def test_binary_columns_are_compact_and_exact():
    g = small_graph()
    d = to_json(g, binary=True)
    assert set(d["transitions"][0]["edges"]["weight"]) == {"dtype", "shape", "base64"}
    assert_same(g, from_json(json.loads(json.dumps(d))))


def test_schema_1_files_still_load():
    v1 = {"meta": {"schema_version": 1, "model": "m", "objective": 1.5, "rule": "attnlrp", "notes": [],
                   "pruned": False},
          "tokens": ["a", "b"], "token_ids": [5, 6],
          "stages": [{"name": "emb", "layer": -1, "kind": "emb"}, {"name": "L0", "layer": 0, "kind": "post"}],
          "nodes": [{"id": "emb.T0", "stage_index": 0, "token": 0, "relevance": 0.5},
                    {"id": "emb.T1", "stage_index": 0, "token": 1, "relevance": 0.25},
                    {"id": "L0.T1", "stage_index": 1, "token": 1, "relevance": 0.75}],
          "transitions": [{"src_stage": 0, "dst_stage": 1, "method": "closed_form", "absorbed": [0.0, 0.0],
                           "dropped_mass": 0.0, "n_heads": 2, "has_paths": True}],
          "edges": [{"source": "emb.T0", "target": "L0.T1", "transition": 0, "weight": 0.5, "heads": [0.25, 0.25],
                     "paths": [0.5, 0.0, 0.0]}]}
    g = from_json(v1)
    np.testing.assert_array_equal(g.node_relevance, np.array([[0.5, 0.25], [0.0, 0.75]], np.float32))
    tr = g.transitions[0]
    assert (tr.src_tok.tolist(), tr.dst_tok.tolist(), tr.weight.tolist()) == ([0], [1], [0.5])
    assert tr.heads.shape == (1, 2) and tr.paths.shape == (1, 3)


def test_pruned_json_holds_only_what_is_shown():
    g = small_graph()
    p = prune(g, PruneSettings(mode="global", edge_threshold=0.15, connected_to=(-1, -1)))
    d = to_json(g, p)
    names = [s["name"] for s in d["stages"]]
    n = d["nodes"]
    assert sorted(f"{names[s]}.T{t}" for s, t in zip(n["stage_index"], n["token"])) == \
        ["L0.T0", "L0.T3", "L1.T3", "emb.T0", "emb.T2"]
    edges = [(f"{names[t['src_stage']]}.T{a}", f"{names[t['dst_stage']]}.T{b}")
             for t in d["transitions"] for a, b in zip(t["edges"]["src_tok"], t["edges"]["dst_tok"])]
    assert sorted(edges) == [
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
