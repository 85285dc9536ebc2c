"""Export an AttributionGraph as JSON (lossless, round-trips), networkx, or GraphML.

Node id: "<stage name>.T<token>", e.g. "emb.T0", "L3.mid.T5". Token strings are untrusted text: stored as data,
never turned into markup here. JSON keeps them verbatim; GraphML (XML 1.0) cannot hold some control characters,
so there every character illegal in XML 1.0, plus "\r" (which XML readers turn into "\n"), is written as a
visible escape like "\x00" — JSON is the format to use when exact token text matters.
"""
from __future__ import annotations

import io
import json
import math
import re
from typing import Optional

import networkx as nx
import numpy as np

from engine.graph.types import AttributionGraph, EdgeSet, PrunedGraph, Stage

SCHEMA_VERSION = 1
PATH_ORDER = ["value", "key", "diagonal"]  # columns of EdgeSet.paths
_XML_ILLEGAL = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def node_id(graph: AttributionGraph, stage: int, token: int) -> str:
    """ "<stage>.T<token>"; in a grouped graph a column of several tokens is "<stage>.T<first>-<last>", so an id
    names the same tokens whatever else is grouped."""
    if graph.spans is not None:
        first, end = graph.spans[token]
        return f"{graph.stages[stage].name}.T{first}" + (f"-{end - 1}" if end - first > 1 else "")
    return f"{graph.stages[stage].name}.T{token}"


def _num(x: float) -> Optional[float]:
    """JSON has no inf/nan: they become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _visible(graph: AttributionGraph, pruned: Optional[PrunedGraph]):
    """(node mask [stages, tokens], one edge mask per transition); everything when not pruned."""
    if pruned is None:
        return (np.ones(graph.node_relevance.shape, dtype=bool),
                [np.ones(tr.n_edges, dtype=bool) for tr in graph.transitions])
    return pruned.node_mask, pruned.edge_masks


def to_json(graph: AttributionGraph, pruned: Optional[PrunedGraph] = None) -> dict:
    """A JSON-ready dict. Without `pruned` it holds every node and edge and `from_json` restores the graph
    exactly; with it, only the shown nodes/edges plus the pruning details (meta.pruned = true)."""
    node_mask, edge_masks = _visible(graph, pruned)
    ids = [[node_id(graph, s, t) for t in range(graph.n_tokens)] for s in range(len(graph.stages))]
    nodes = [
        {"id": ids[s][t], "stage": graph.stages[s].name, "stage_index": int(s), "layer": graph.stages[s].layer,
         "token": int(t), "token_str": graph.tokens[t], "relevance": float(graph.node_relevance[s, t])}
        | ({} if graph.spans is None else {"token_start": graph.spans[t][0], "token_end": graph.spans[t][1]})
        for s, t in zip(*np.nonzero(node_mask))
    ]
    edges, transitions = [], []
    for i, (tr, m) in enumerate(zip(graph.transitions, edge_masks)):
        src, dst = ids[tr.src_stage], ids[tr.dst_stage]
        heads = tr.heads[m].tolist() if tr.heads is not None else None
        paths = tr.paths[m].tolist() if tr.paths is not None else None
        for k, (a, b, w) in enumerate(zip(tr.src_tok[m].tolist(), tr.dst_tok[m].tolist(), tr.weight[m].tolist())):
            e = {"source": src[a], "target": dst[b], "transition": i, "weight": w}
            if heads is not None:
                e["heads"] = heads[k]
            if paths is not None:
                e["paths"] = paths[k]
            edges.append(e)
        t = {"src_stage": tr.src_stage, "dst_stage": tr.dst_stage, "method": tr.method,
             "absorbed": tr.absorbed.tolist(), "dropped_mass": float(tr.dropped_mass),
             "n_heads": None if tr.heads is None else int(tr.heads.shape[1]), "has_paths": tr.paths is not None}
        if pruned is not None:
            t["details"] = {k: (_num(v) if isinstance(v, float) else v) for k, v in pruned.details[i].items()}
        transitions.append(t)
    meta = {"schema_version": SCHEMA_VERSION, "model": graph.model, "objective": _num(graph.objective),
            "rule": graph.rule, "notes": list(graph.notes), "pruned": pruned is not None,
            "selected_stages": list(pruned.stages) if pruned is not None else None, "path_order": PATH_ORDER,
            "groups": None if graph.spans is None else [list(sp) for sp in graph.spans]}
    return {"meta": meta, "tokens": list(graph.tokens), "token_ids": [int(t) for t in graph.token_ids],
            "stages": [{"name": s.name, "layer": s.layer, "kind": s.kind} for s in graph.stages],
            "nodes": nodes, "transitions": transitions, "edges": edges}


def from_json(d: dict) -> AttributionGraph:
    """Inverse of `to_json`. Nodes absent from a pruned export get relevance 0."""
    if d["meta"].get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"graph JSON schema {d['meta'].get('schema_version')} is not {SCHEMA_VERSION}")
    stages = [Stage(s["name"], int(s["layer"]), s["kind"]) for s in d["stages"]]
    rel = np.zeros((len(stages), len(d["tokens"])), dtype=np.float32)
    where = {}
    for n in d["nodes"]:
        where[n["id"]] = (n["stage_index"], n["token"])
        rel[n["stage_index"], n["token"]] = n["relevance"]
    by_tr = [[] for _ in d["transitions"]]
    for e in d["edges"]:
        by_tr[e["transition"]].append(e)
    transitions = [_edge_set(t, es, where) for t, es in zip(d["transitions"], by_tr)]
    objective = d["meta"]["objective"]
    return AttributionGraph(
        model=d["meta"]["model"], tokens=list(d["tokens"]), token_ids=[int(t) for t in d["token_ids"]],
        stages=stages, node_relevance=rel, transitions=transitions,
        objective=float("nan") if objective is None else float(objective), rule=d["meta"]["rule"],
        notes=list(d["meta"]["notes"]),
        spans=None if d["meta"].get("groups") is None else tuple((int(a), int(b)) for a, b in d["meta"]["groups"]))


def _edge_set(t: dict, es: list[dict], where: dict) -> EdgeSet:
    h = t["n_heads"]
    return EdgeSet(
        src_stage=int(t["src_stage"]), dst_stage=int(t["dst_stage"]),
        src_tok=np.array([where[e["source"]][1] for e in es], dtype=np.int32),
        dst_tok=np.array([where[e["target"]][1] for e in es], dtype=np.int32),
        weight=np.array([e["weight"] for e in es], dtype=np.float32),
        absorbed=np.array(t["absorbed"], dtype=np.float32),
        method=t["method"],
        heads=None if h is None else np.array([e["heads"] for e in es], dtype=np.float32).reshape(len(es), h),
        paths=np.array([e["paths"] for e in es], dtype=np.float32).reshape(len(es), 3) if t["has_paths"] else None,
        dropped_mass=float(t["dropped_mass"]),
    )


def to_networkx(graph: AttributionGraph, pruned: Optional[PrunedGraph] = None) -> nx.DiGraph:
    """DiGraph of the shown nodes/edges (all without `pruned`), ids as in `node_id`.

    Node attrs: stage, stage_index, layer, token, token_str, relevance. Edge attrs: weight, transition,
    heads (list, when split per head), path_value / path_key / path_diagonal (when split per path).
    """
    d = to_json(graph, pruned)
    g = nx.DiGraph(model=graph.model, rule=graph.rule, objective=float(graph.objective))
    for n in d["nodes"]:
        g.add_node(n["id"], **{k: v for k, v in n.items() if k != "id"})
    for e in d["edges"]:
        attrs = {"weight": e["weight"], "transition": e["transition"]}
        if "heads" in e:
            attrs["heads"] = e["heads"]
        if "paths" in e:
            attrs.update({f"path_{name}": v for name, v in zip(PATH_ORDER, e["paths"])})
        g.add_edge(e["source"], e["target"], **attrs)
    return g


def xml_safe(s: str) -> str:
    """Replace characters XML 1.0 cannot hold (and "\r") with a visible escape: "\x00", "\ud800"."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                            else f"\\u{ord(m.group()):04x}", s)


def to_graphml(graph: AttributionGraph, pruned: Optional[PrunedGraph] = None) -> str:
    """GraphML text of `to_networkx`; heads become a JSON-list string, strings are made XML-safe."""
    g = to_networkx(graph, pruned)
    g.graph.update({k: xml_safe(v) for k, v in g.graph.items() if isinstance(v, str)})
    for _, attrs in g.nodes(data=True):
        attrs["token_str"] = xml_safe(attrs["token_str"])
    for _, _, attrs in g.edges(data=True):
        if "heads" in attrs:
            attrs["heads"] = json.dumps(attrs["heads"])
    buf = io.BytesIO()
    nx.write_graphml(g, buf, encoding="utf-8")
    return buf.getvalue().decode("utf-8")
