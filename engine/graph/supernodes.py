"""Supernodes: an AttributionGraph whose columns are token groups (engine.token_groups) instead of tokens.

Per stage s and group G: R[s, G] = Σ_{t in G} R[s, t]. Per transition, the edge G -> H is the sum of every
edge t -> u with t in G and u in H (weights, per-head splits and per-path splits alike), and absorbed[H] =
Σ_{u in H} absorbed[u]. All three are sums of the same token-level terms, so the token-level identity
"in-edges + absorbed == node relevance" holds for groups too, and total relevance per stage is unchanged.

The result is an ordinary AttributionGraph (tokens = group texts, spans = each column's token range), so
pruning, drawing, metrics and every export work on it unchanged. Per-node dimension and neuron tables are
not summed (they are top-K lists per token, not additive) and are left out.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.graph.types import AttributionGraph, EdgeSet
from engine.token_groups import Grouping, group_sum


def group_graph(graph: AttributionGraph, grouping: Grouping) -> AttributionGraph:
    """The graph with one node per (stage, group). A grouping of single tokens gives back the same numbers."""
    if grouping.n_tokens != graph.n_tokens:
        raise ValueError(f"grouping of {grouping.n_tokens} tokens for a graph of {graph.n_tokens}")
    gid = grouping.group_of()  # [tokens]
    rel = group_sum(graph.node_relevance, grouping).astype(np.float32)  # [stages, groups]
    first_ids = [graph.token_ids[s] for s in grouping.starts]
    return replace(graph, tokens=list(grouping.texts), token_ids=first_ids, node_relevance=rel,
                   transitions=[_group_edges(tr, gid, grouping) for tr in graph.transitions],
                   dims_idx=None, dims_val=None, neurons_idx=None, neurons_val=None,
                   spans=tuple(grouping.spans))


def _group_edges(tr: EdgeSet, gid: np.ndarray, grouping: Grouping) -> EdgeSet:
    """Edges summed per (source group, destination group) pair, in float64, stored as float32."""
    n = grouping.n_groups
    src, dst = gid[tr.src_tok], gid[tr.dst_tok]
    pair, inv = np.unique(src.astype(np.int64) * n + dst, return_inverse=True)  # one entry per group pair

    def summed(x: np.ndarray) -> np.ndarray:  # [E, ...] -> [pairs, ...]
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        cols = [np.bincount(inv, weights=flat[:, j], minlength=pair.size) for j in range(flat.shape[1])]
        return np.stack(cols, axis=1).reshape((pair.size,) + x.shape[1:]).astype(np.float32)

    return replace(tr, src_tok=(pair // n).astype(np.int32), dst_tok=(pair % n).astype(np.int32),
                   weight=summed(tr.weight), absorbed=group_sum(tr.absorbed, grouping).astype(np.float32),
                   heads=None if tr.heads is None else summed(tr.heads),
                   paths=None if tr.paths is None else summed(tr.paths))


def node_cap_threshold(graph: AttributionGraph, stages: list[int], max_nodes: int) -> float:
    """The smallest |R| floor that leaves at most `max_nodes` nodes with |R| above it on the given stages
    (0.0 when there are no more than that anyway). Used as PruneSettings.node_threshold, which is strict (>)."""
    r = np.sort(np.abs(graph.node_relevance[stages]).ravel())[::-1]
    return float(r[max_nodes]) if r.size > max_nodes else 0.0
