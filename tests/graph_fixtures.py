"""Hand-built AttributionGraphs for the graph tests (numbers small enough to check by hand)."""
from __future__ import annotations

import numpy as np

from engine.graph.types import AttributionGraph, EdgeSet, Stage

# 40+ tokens: longer than the tiny models' sliding windows (16), so windowed layers are exercised.
LONG_PROMPT = ("the of and to in is was for on that with as by at from it his her their its an "
               "be are were this which or have has had not but they he she we you i me my our your")


def dense(edges, t: int) -> np.ndarray:
    """[t, t] edge weights of a sparse edge set, summed per (destination, source) token."""
    m = np.zeros((t, t))
    np.add.at(m, (edges.dst_tok, edges.src_tok), edges.weight)
    return m

STAGES3 = [Stage("emb", -1, "emb"), Stage("L0", 0, "post"), Stage("L1", 1, "post")]


def edge_set(src_stage: int, dst_stage: int, edges: list[tuple[int, int, float]], n_tokens: int,
             heads: list | None = None, paths: list | None = None) -> EdgeSet:
    """edges: (src_tok, dst_tok, weight) triples."""
    src, dst, w = zip(*edges) if edges else ((), (), ())
    return EdgeSet(
        src_stage=src_stage, dst_stage=dst_stage,
        src_tok=np.array(src, dtype=np.int32), dst_tok=np.array(dst, dtype=np.int32),
        weight=np.array(w, dtype=np.float32), absorbed=np.zeros(n_tokens, dtype=np.float32),
        method="closed_form",
        heads=None if heads is None else np.array(heads, dtype=np.float32),
        paths=None if paths is None else np.array(paths, dtype=np.float32),
    )


def make_graph(relevance: list[list[float]], transitions: list[EdgeSet], stages: list[Stage] | None = None,
               tokens: list[str] | None = None) -> AttributionGraph:
    rel = np.array(relevance, dtype=np.float32)
    n_tokens = rel.shape[1]
    return AttributionGraph(
        model="test-model", tokens=tokens or [f"t{i}" for i in range(n_tokens)], token_ids=list(range(n_tokens)),
        stages=stages or STAGES3[: rel.shape[0]], node_relevance=rel, transitions=transitions,
        objective=1.5, rule="attn_lrp")


def small_graph() -> AttributionGraph:
    """emb, L0, L1 x 4 tokens; transitions emb->L0, L0->L1 and a skip emb->L1.

    Zero-relevance nodes: emb token 3 and L1 token 1.
    """
    return make_graph(
        [[0.5, 0.1, 0.2, 0.0],
         [0.4, -0.2, 0.1, 0.3],
         [0.1, 0.0, 0.2, 0.7]],
        [edge_set(0, 1, [(0, 0, 0.4), (1, 1, -0.2), (0, 2, 0.05), (2, 2, 0.05), (0, 3, 0.1), (2, 3, 0.2),
                         (3, 3, 0.0)], 4),
         edge_set(1, 2, [(0, 0, 0.1), (1, 3, -0.1), (2, 2, 0.2), (3, 3, 0.5), (0, 3, 0.3)], 4),
         edge_set(0, 2, [(0, 3, 0.25), (2, 3, -0.05)], 4)],
        tokens=["<s>", "a", "b", "c"])
