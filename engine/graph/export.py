"""Export an AttributionGraph as columnar JSON (lossless, round-trips), networkx, or GraphML.

Node id: "<stage name>.T<token>", e.g. "emb.T0", "L3.mid.T5". Token strings are untrusted text: stored as data,
never turned into markup here. JSON keeps them verbatim; GraphML (XML 1.0) cannot hold some control characters,
so there every character illegal in XML 1.0, plus "\r" (which XML readers turn into "\n"), is written as a
visible escape like "\x00" — JSON is the format to use when exact token text matters.
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
from typing import IO, Optional

import networkx as nx
import numpy as np

from engine.graph.types import AttributionGraph, EdgeSet, PrunedGraph, Stage
from engine.records import dumps

SCHEMA_VERSION = 2  # 2: columnar nodes and edges; 1 (an object per node and edge) still loads
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


def _column(a: np.ndarray, binary: bool):
    """A numeric column: a flat JSON list, or {"dtype", "shape", "base64"} of its little-endian bytes."""
    if binary:
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        return {"dtype": a.dtype.str, "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode()}
    return a.reshape(-1).tolist()


def _read_column(c, dtype, shape=None) -> np.ndarray:
    if isinstance(c, dict):
        return np.frombuffer(base64.b64decode(c["base64"]),
                             dtype=np.dtype(c["dtype"])).astype(dtype).reshape(c["shape"])
    a = np.array(c, dtype=dtype)
    return a.reshape(shape) if shape is not None else a


def to_json(graph: AttributionGraph, pruned: Optional[PrunedGraph] = None, binary: bool = False) -> dict:
    """A JSON-ready dict. Without `pruned` it holds every node and edge and `from_json` restores the graph
    exactly; with it, only the shown nodes/edges plus the pruning details (meta.pruned = true).

    Columnar (schema 2): nodes and each transition's edges are parallel arrays, not one object per edge, so a
    long prompt's millions of edges cost arrays, not dicts. A grouped graph's token spans are in meta.groups.
    `binary=True` writes each array as base64 bytes (smaller and faster); the default writes plain lists.
    A node's id is `node_id`: "<stage name>.T<token>".
    """
    return {**_shell(graph, pruned, binary),
            "transitions": [{**t, "edges": _edges(tr, m, binary)} for t, tr, m in _transitions(graph, pruned)]}


def write_json(graph: AttributionGraph, fp: IO[str], pruned: Optional[PrunedGraph] = None,
               binary: bool = False) -> None:
    """`to_json` written to a text file one transition at a time: the same JSON (json.loads of it equals
    to_json's dict), but only one transition's columns are ever held as text, so a long prompt's millions of
    edges are not copied into one string (at 2.8M edges json.dumps(to_json(...)) grew the process by ~0.8 GiB)."""
    shell = dumps(_shell(graph, pruned, binary), ensure_ascii=False)  # NaN / Inf written as null, as `dumps` does
    fp.write(shell[:-1] + ', "transitions": [')
    for i, (t, tr, m) in enumerate(_transitions(graph, pruned)):
        fp.write((", " if i else "") + dumps({**t, "edges": _edges(tr, m, binary)}, ensure_ascii=False))
    fp.write("]}")


def _edges(tr: EdgeSet, m: np.ndarray, binary: bool) -> dict:
    return {"src_tok": _column(tr.src_tok[m], binary), "dst_tok": _column(tr.dst_tok[m], binary),
            "weight": _column(tr.weight[m], binary),
            "heads": None if tr.heads is None else _column(tr.heads[m], binary),
            "paths": None if tr.paths is None else _column(tr.paths[m], binary)}


def _transitions(graph: AttributionGraph, pruned: Optional[PrunedGraph]):
    """(transition's fields without its edges, the EdgeSet, its shown-edge mask) per transition."""
    _, edge_masks = _visible(graph, pruned)
    for i, (tr, m) in enumerate(zip(graph.transitions, edge_masks)):
        t = {"src_stage": tr.src_stage, "dst_stage": tr.dst_stage, "method": tr.method,
             "absorbed": [_num(v) for v in tr.absorbed.tolist()], "dropped_mass": _num(tr.dropped_mass),
             "n_heads": None if tr.heads is None else int(tr.heads.shape[1]), "has_paths": tr.paths is not None,
             "n_edges": int(m.sum())}
        if pruned is not None:
            t["details"] = {k: (_num(v) if isinstance(v, float) else v) for k, v in pruned.details[i].items()}
        yield t, tr, m


def _shell(graph: AttributionGraph, pruned: Optional[PrunedGraph], binary: bool) -> dict:
    """Everything of `to_json` but the transitions."""
    node_mask, _ = _visible(graph, pruned)
    s_idx, t_idx = np.nonzero(node_mask)
    nodes = {"stage_index": _column(s_idx.astype(np.int32), binary), "token": _column(t_idx.astype(np.int32), binary),
             "relevance": _column(graph.node_relevance[s_idx, t_idx].astype(np.float32), binary)}
    meta = {"schema_version": SCHEMA_VERSION, "model": graph.model, "objective": _num(graph.objective),
            "rule": graph.rule, "notes": list(graph.notes), "pruned": pruned is not None,
            "selected_stages": list(pruned.stages) if pruned is not None else None, "path_order": PATH_ORDER,
            "groups": None if graph.spans is None else [list(sp) for sp in graph.spans], "path": graph.path}
    return {"meta": meta, "tokens": list(graph.tokens), "token_ids": [int(t) for t in graph.token_ids],
            "stages": [{"name": s.name, "layer": s.layer, "kind": s.kind} for s in graph.stages],
            "nodes": nodes}


def _from_v1(d: dict) -> dict:
    """Schema 1 (one object per node and per edge) -> schema 2 (columns)."""
    where = {n["id"]: (n["stage_index"], n["token"]) for n in d["nodes"]}
    nodes = {"stage_index": [n["stage_index"] for n in d["nodes"]], "token": [n["token"] for n in d["nodes"]],
             "relevance": [n["relevance"] for n in d["nodes"]]}
    by_tr: list[list[dict]] = [[] for _ in d["transitions"]]
    for e in d["edges"]:
        by_tr[e["transition"]].append(e)
    transitions = []
    for t, es in zip(d["transitions"], by_tr):
        edges = {"src_tok": [where[e["source"]][1] for e in es], "dst_tok": [where[e["target"]][1] for e in es],
                 "weight": [e["weight"] for e in es],
                 "heads": [h for e in es for h in e["heads"]] if t["n_heads"] is not None else None,
                 "paths": [p for e in es for p in e["paths"]] if t["has_paths"] else None}
        transitions.append({**t, "n_edges": len(es), "edges": edges})
    return {**d, "meta": {**d["meta"], "schema_version": 2}, "nodes": nodes, "transitions": transitions}


def from_json(d: dict) -> AttributionGraph:
    """Inverse of `to_json` (schema 1 files load too). Nodes absent from a pruned export get relevance 0."""
    version = d["meta"].get("schema_version")
    if version == 1:
        d = _from_v1(d)
    elif version != SCHEMA_VERSION:
        raise ValueError(f"graph JSON schema {version} is not {SCHEMA_VERSION} (or 1)")
    stages = [Stage(s["name"], int(s["layer"]), s["kind"]) for s in d["stages"]]
    rel = np.zeros((len(stages), len(d["tokens"])), dtype=np.float32)
    n = d["nodes"]
    rel[_read_column(n["stage_index"], np.int64), _read_column(n["token"], np.int64)] = \
        _read_column(n["relevance"], np.float32)
    objective = d["meta"]["objective"]
    return AttributionGraph(
        model=d["meta"]["model"], tokens=list(d["tokens"]), token_ids=[int(t) for t in d["token_ids"]],
        stages=stages, node_relevance=rel, transitions=[_edge_set(t) for t in d["transitions"]],
        objective=float("nan") if objective is None else float(objective), rule=d["meta"]["rule"],
        notes=list(d["meta"]["notes"]), path=d["meta"].get("path", "kept"),
        spans=None if d["meta"].get("groups") is None else tuple((int(a), int(b)) for a, b in d["meta"]["groups"]))


def _edge_set(t: dict) -> EdgeSet:
    e, h, n = t["edges"], t["n_heads"], int(t["n_edges"])
    return EdgeSet(
        src_stage=int(t["src_stage"]), dst_stage=int(t["dst_stage"]),
        src_tok=_read_column(e["src_tok"], np.int32), dst_tok=_read_column(e["dst_tok"], np.int32),
        weight=_read_column(e["weight"], np.float32), absorbed=np.array(t["absorbed"], dtype=np.float32),
        method=t["method"],
        heads=None if h is None else _read_column(e["heads"], np.float32, (n, h)),
        paths=_read_column(e["paths"], np.float32, (n, 3)) if t["has_paths"] else None,
        dropped_mass=float(t["dropped_mass"]),
    )


def _rows(graph: AttributionGraph, pruned: Optional[PrunedGraph]):
    """(node rows, edge rows) of the shown graph as plain dicts, for networkx (small, pruned graphs)."""
    node_mask, edge_masks = _visible(graph, pruned)
    nodes = [
        {"id": node_id(graph, s, t), "stage": graph.stages[s].name, "stage_index": int(s),
         "layer": graph.stages[s].layer, "token": int(t), "token_str": graph.tokens[t],
         "relevance": float(graph.node_relevance[s, t])}
        | ({} if graph.spans is None else {"token_start": graph.spans[t][0], "token_end": graph.spans[t][1]})
        for s, t in zip(*np.nonzero(node_mask))
    ]
    edges = []
    for i, (tr, m) in enumerate(zip(graph.transitions, edge_masks)):
        heads = tr.heads[m].tolist() if tr.heads is not None else None
        paths = tr.paths[m].tolist() if tr.paths is not None else None
        for k, (a, b, w) in enumerate(zip(tr.src_tok[m].tolist(), tr.dst_tok[m].tolist(), tr.weight[m].tolist())):
            e = {"source": node_id(graph, tr.src_stage, a), "target": node_id(graph, tr.dst_stage, b),
                 "transition": i, "weight": w}
            if heads is not None:
                e["heads"] = heads[k]
            if paths is not None:
                e["paths"] = paths[k]
            edges.append(e)
    return nodes, edges


def to_networkx(graph: AttributionGraph, pruned: Optional[PrunedGraph] = None) -> nx.DiGraph:
    """DiGraph of the shown nodes/edges (all without `pruned`), ids as in `node_id`.

    Node attrs: stage, stage_index, layer, token, token_str, relevance. Edge attrs: weight, transition,
    heads (list, when split per head), path_value / path_key / path_diagonal (when split per path).
    """
    nodes, edges = _rows(graph, pruned)
    g = nx.DiGraph(model=graph.model, rule=graph.rule, objective=float(graph.objective))
    for n in nodes:
        g.add_node(n["id"], **{k: v for k, v in n.items() if k != "id"})
    for e in edges:
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
