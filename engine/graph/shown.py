"""The pruned graph as shown, in plain lists (for case files, engine.cases.casefile), and back into a graph and a
pruning that draw it read-only (engine.present.charts.graph_chart) when the model is not there to rebuild it.

Only what survived pruning is kept: the shown stages, every token (columns keep their places), the kept nodes with
their relevance and the kept edges with their weight. Rebuilt graphs carry no hidden dimensions, neurons, heads or
absorbed relevance: they are for looking at, not for drill-down or metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from engine.graph.types import AttributionGraph, EdgeSet, PrunedGraph, Stage
from engine.records import FailureLensError

MAX_NODES = 50_000
MAX_EDGES = 100_000
KINDS = ("emb", "mid", "post")


@dataclass(frozen=True)
class ShownGraph:
    stages: tuple[tuple[str, int, str], ...]  # [stages] (name, layer, kind) of every stage of the graph
    shown: tuple[int, ...]  # the stage indices drawn
    tokens: tuple[str, ...]  # [tokens] column labels (a grouped graph: its supernodes)
    nodes: tuple[tuple[int, int, float], ...]  # kept (stage, token, relevance)
    edges: tuple[tuple[int, int, int, int, float], ...]  # kept (src stage, dst stage, src token, dst token, weight)
    target: str = ""
    contrast: str = ""
    spans: Optional[tuple[tuple[int, int], ...]] = None  # a grouped graph: token range [start, end) per column

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def shown_graph(graph: AttributionGraph, pruned: PrunedGraph) -> ShownGraph:
    """What `pruned` keeps of `graph`, as plain values."""
    nodes = tuple((s, t, float(graph.node_relevance[s, t])) for s, t in pruned.visible())
    edges = []
    for es, mask in zip(graph.transitions, pruned.edge_masks):
        for e in np.flatnonzero(mask):
            edges.append((es.src_stage, es.dst_stage, int(es.src_tok[e]), int(es.dst_tok[e]), float(es.weight[e])))
    if len(nodes) > MAX_NODES or len(edges) > MAX_EDGES:
        raise FailureLensError(f"The graph as shown has {len(nodes):,} nodes and {len(edges):,} edges, more than a "
                               f"case file keeps ({MAX_NODES:,} / {MAX_EDGES:,}); prune harder to save it.")
    return ShownGraph(tuple((s.name, s.layer, s.kind) for s in graph.stages), tuple(pruned.shown_stages()),
                      tuple(graph.tokens), nodes, tuple(edges), graph.target, graph.contrast,
                      tuple(graph.spans) if graph.spans is not None else None)


def _bad(what: str) -> FailureLensError:
    return FailureLensError(f"The case file's graph {what}; the file is damaged or was not written by Failure Lens. "
                            "Save the case again.")


def _int(x: Any, hi: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < hi:
        raise _bad(f"names a stage or token out of range ({str(x)[:20]})")
    return x


def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x):
        raise _bad("holds a value that is not a finite number")
    return float(x)


def _rows(v: Any, width: int, limit: int, what: str) -> list:
    if not isinstance(v, list) or len(v) > limit or not all(isinstance(r, list) and len(r) == width for r in v):
        raise _bad(f"{what} must be a list of at most {limit:,} rows of {width} values")
    return v


def read_shown(d: Any, max_tokens: int) -> ShownGraph:
    """A ShownGraph from parsed JSON (hostile input: every field checked, every index in range)."""
    if not isinstance(d, dict):
        raise _bad("must be an object")
    stages = []
    for r in _rows(d.get("stages"), 3, 4096, "stages"):
        name, layer, kind = r
        if not isinstance(name, str) or len(name) > 40 or kind not in KINDS or isinstance(layer, bool) \
                or not isinstance(layer, int) or not -1 <= layer < 4096:
            raise _bad("stages must be (name, layer, kind) rows")
        stages.append((name, layer, kind))
    tokens = d.get("tokens")
    if not isinstance(tokens, list) or len(tokens) > max_tokens or \
            not all(isinstance(t, str) and len(t) <= 1000 for t in tokens):
        raise _bad(f"tokens must be a list of at most {max_tokens:,} texts")
    n_s, n_t = len(stages), len(tokens)
    shown = d.get("shown")
    if not isinstance(shown, list) or len(shown) > n_s:
        raise _bad("shown stages must be a list of stage indices")
    shown = [_int(s, n_s) for s in shown]
    nodes = [(_int(s, n_s), _int(t, n_t), _num(r)) for s, t, r in _rows(d.get("nodes"), 3, MAX_NODES, "nodes")]
    edges = [(_int(a, n_s), _int(b, n_s), _int(i, n_t), _int(j, n_t), _num(w))
             for a, b, i, j, w in _rows(d.get("edges"), 5, MAX_EDGES, "edges")]
    spans = d.get("spans")
    if spans is not None:
        spans = [(_int(a, 1 << 30), _int(b, 1 << 30)) for a, b in _rows(spans, 2, n_t, "spans")]
        if len(spans) != n_t:
            raise _bad("spans must have one range per column")
    for key in ("target", "contrast"):
        if not isinstance(d.get(key, ""), str) or len(d.get(key, "")) > 1000:
            raise _bad(f"{key} must be a text")
    from engine import files

    files.no_lone_surrogates([("The case file's graph", t) for t in [*tokens, *(s[0] for s in stages),
                                                                      d.get("target", ""), d.get("contrast", "")]])
    return ShownGraph(tuple(stages), tuple(shown), tuple(tokens), tuple(nodes), tuple(edges), d.get("target", ""),
                      d.get("contrast", ""), tuple(spans) if spans is not None else None)


def rebuild(g: ShownGraph, model: str = "", rule: str = "") -> tuple[AttributionGraph, PrunedGraph]:
    """A graph holding only the shown nodes and edges, and the pruning that shows all of them."""
    n_s, n_t = len(g.stages), len(g.tokens)
    rel = np.zeros((n_s, n_t), dtype=np.float32)  # [stages, tokens]
    mask = np.zeros((n_s, n_t), dtype=bool)
    for s, t, r in g.nodes:
        rel[s, t], mask[s, t] = r, True
    drawn = set(g.shown) if g.shown else set(range(n_s))
    by_pair: dict[tuple[int, int], list] = {}
    for a, b, i, j, w in (e for e in g.edges if e[0] in drawn and e[1] in drawn):
        by_pair.setdefault((a, b), []).append((i, j, w))
    transitions = [EdgeSet(a, b, np.array([e[0] for e in es], dtype=np.int32),
                           np.array([e[1] for e in es], dtype=np.int32), np.array([e[2] for e in es], np.float32),
                           np.zeros(n_t, dtype=np.float32), "saved") for (a, b), es in sorted(by_pair.items())]
    graph = AttributionGraph(model, list(g.tokens), [], [Stage(*s) for s in g.stages], rel, transitions, 0.0, rule,
                             target=g.target, contrast=g.contrast, spans=g.spans)
    pruned = PrunedGraph(mask, [np.ones(es.n_edges, dtype=bool) for es in transitions], [{} for _ in transitions],
                         tuple(g.shown))
    return graph, pruned
