"""Drill-down of one graph node: top hidden dimensions, top MLP neurons, and its in-edges split by head and path."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..records import FailureLensError
from .types import AttributionGraph


@dataclass(frozen=True)
class NodeDetail:
    stage: int
    stage_name: str
    token: int
    token_text: str
    relevance: float
    top_dims: pd.DataFrame  # dim, relevance
    top_neurons: pd.DataFrame  # neuron, relevance (post stages only; empty otherwise)
    in_edges: pd.DataFrame  # source stage, source token, weight, value, key, diagonal, head_0..head_{H-1}


def node_drilldown(graph: AttributionGraph, stage: int, token: int, limit: int = 20) -> NodeDetail:
    """Everything the graph stored about node (stage, token); no model needed."""
    if not 0 <= stage < len(graph.stages) or not 0 <= token < graph.n_tokens:
        raise FailureLensError(
            f"Node ({stage}, {token}) is outside the graph ({len(graph.stages)} stages x {graph.n_tokens} tokens)."
        )
    st = graph.stages[stage]
    dims = pd.DataFrame(columns=["dim", "relevance"])
    if graph.dims_idx is not None:
        dims = pd.DataFrame({"dim": graph.dims_idx[stage, token], "relevance": graph.dims_val[stage, token]})
    neurons = pd.DataFrame(columns=["neuron", "relevance"])
    if st.kind == "post" and graph.neurons_idx is not None:
        neurons = pd.DataFrame({"neuron": graph.neurons_idx[st.layer, token],
                                "relevance": graph.neurons_val[st.layer, token]})
    rows = []
    for e in graph.transitions:
        if e.dst_stage != stage:
            continue
        sel = np.nonzero(e.dst_tok == token)[0]
        for i in sel[np.argsort(-np.abs(e.weight[sel]))][:limit]:
            row = {"source": graph.stages[e.src_stage].name, "source_token": int(e.src_tok[i]),
                   "source_text": graph.tokens[int(e.src_tok[i])], "weight": float(e.weight[i])}
            if e.paths is not None:
                row.update(value=float(e.paths[i, 0]), key=float(e.paths[i, 1]), diagonal=float(e.paths[i, 2]))
            if e.heads is not None:
                row.update({f"head_{h}": float(v) for h, v in enumerate(e.heads[i])})
            rows.append(row)
    return NodeDetail(stage, st.name, token, graph.tokens[token], float(graph.node_relevance[stage, token]),
                      dims, neurons, pd.DataFrame(rows))
