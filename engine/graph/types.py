"""Typed records of a cross-layer attribution graph.

Stages are the rows of the graph: the embedding, optionally a mid-block node per layer (between
attention and MLP), and the residual stream after every layer. A node is (stage index, token index).

Edges are stored per transition (src stage -> dst stage) as sparse COO arrays, so pruning, drawing
and metrics never need a dense T x T matrix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Stage:
    name: str  # "emb", "L3.mid", "L3"
    layer: int  # -1 for the embedding
    kind: str  # "emb" | "mid" | "post"

    @property
    def label(self) -> str:
        """The row in words, as people see it (charts, drawings, lists); `name` stays the code in files."""
        if self.kind == "emb":
            return "embedding"
        return f"layer {self.layer} after attention" if self.kind == "mid" else f"after layer {self.layer}"


@dataclass(frozen=True)
class EdgeSet:
    """Edges of one transition; edge e goes from (src_stage, src_tok[e]) to (dst_stage, dst_tok[e]).

    weight[e]: signed relevance share of the target node that reaches the source node.
    heads: [E, H] per-head split of the attention part of each edge (None for MLP-only transitions).
    paths: [E, 3] split of each weight into (value path, key path, diagonal: query + residual + MLP).
    absorbed: [T] per destination token, node relevance minus the sum of its in-edges (bias, softmax).
    """

    src_stage: int
    dst_stage: int
    src_tok: np.ndarray  # int32 [E]
    dst_tok: np.ndarray  # int32 [E]
    weight: np.ndarray  # float32 [E]
    absorbed: np.ndarray  # float32 [T]
    method: str  # "closed_form" | "batch_packed"
    heads: Optional[np.ndarray] = None  # float32 [E, H]
    paths: Optional[np.ndarray] = None  # float32 [E, 3]
    dropped_mass: float = 0.0  # sum |w| of edges discarded while computing (below the storage floor)

    @property
    def n_edges(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class AttributionGraph:
    """tokens: display strings; node_relevance: [stages, tokens] float32 (h * dObjective/dh summed over d)."""

    model: str
    tokens: list[str]
    token_ids: list[int]
    stages: list[Stage]
    node_relevance: np.ndarray
    transitions: list[EdgeSet]
    objective: float
    rule: str
    notes: list[str] = field(default_factory=list)  # e.g. "layer 3: closed form not applicable, used batch-packed"
    target: str = ""
    contrast: str = ""
    dims_idx: Optional[np.ndarray] = None  # int32 [stages, tokens, K] top hidden dimensions by |h * g|
    dims_val: Optional[np.ndarray] = None  # float32 [stages, tokens, K] their signed relevance
    neurons_idx: Optional[np.ndarray] = None  # int32 [layers, tokens, K] top MLP neurons (act * grad)
    neurons_val: Optional[np.ndarray] = None  # float32 [layers, tokens, K]
    # grouped graphs (graph.supernodes): token range [start, end) of each column
    spans: Optional[tuple[tuple[int, int], ...]] = None
    path: str = "kept"  # memory path that ran: "kept" activations or per-layer "recompute" (same edges)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def where(self, column: int) -> str:
        """ "token 5", or for a supernode of a grouped graph "tokens 4–3684" (its column is not a token index)."""
        if self.spans is None:
            return f"token {column}"
        a, b = self.spans[column]
        return f"tokens {a}–{b - 1}" if b - a > 1 else f"token {a}"


DEFAULT_TOP_P = 0.8  # the one default cumulative mass: Graph page, deck, CLI export and sweeps


@dataclass(frozen=True)
class PruneSettings:
    mode: str = "cum_mass"  # "cum_mass" | "global"
    top_p: float = DEFAULT_TOP_P  # per-transition cumulative |w| mass kept (cum_mass mode)
    edge_threshold: float = 0.01  # |w| floor (global mode)
    node_threshold: float = 0.0  # |R| floor for nodes
    connected_to: Optional[tuple[int, int]] = None  # (stage, token): keep only ancestors of this node
    hide_first_token: bool = False

    def __post_init__(self) -> None:
        from ..records import FailureLensError

        if self.mode not in ("cum_mass", "global"):
            raise FailureLensError(f"Unknown pruning mode {self.mode!r}: use 'cum_mass' or 'global'.")
        if not 0.0 < self.top_p <= 1.0:
            raise FailureLensError(f"Cumulative mass {self.top_p} is out of range: use a value in (0, 1], e.g. 0.8.")
        for name in ("edge_threshold", "node_threshold"):
            value = getattr(self, name)
            if not (value >= 0.0 and value != float("inf")):
                raise FailureLensError(f"{name.replace('_', ' ').capitalize()} {value} is out of range: "
                                       "use a finite value >= 0.")


@dataclass(frozen=True)
class PrunedGraph:
    """Result of pruning: which nodes and edges survive; arrays index into the source graph."""

    node_mask: np.ndarray  # bool [stages, tokens]
    edge_masks: list[np.ndarray]  # one bool [E] per transition
    details: list[dict]  # per transition: threshold, kept_edges, total_edges, kept_fraction
    stages: tuple[int, ...] = ()  # the stage indices that were selected (empty: all)

    def shown_stages(self) -> list[int]:
        """The selected stage indices, or every stage when none were selected."""
        return list(self.stages) or list(range(self.node_mask.shape[0]))

    def visible(self) -> list[tuple[int, int]]:
        """(stage, token) of every node that survives, stage by stage, tokens in order."""
        return [(s, int(t)) for s in self.shown_stages() for t in np.flatnonzero(self.node_mask[s])]
