"""Pruning an AttributionGraph for display: cheap, re-run on every slider move, never recomputes edges.

Order of the steps (each one documented in `prune`):
  1. stage selection   2. node filter (|R| and hide_first_token)   3. edge filter per transition
  4. connected subgraph (ancestors of a target node through kept edges).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from engine.graph.types import DEFAULT_TOP_P, AttributionGraph, EdgeSet, PrunedGraph, PruneSettings, Stage

EPS_EDGE = 1e-9  # |w| at or below this is not an edge (for counts and as the floor of the cum-mass cut)
EPS_MASS = 1e-12  # total |w| at or below this counts as no mass


def stage_layout(n_layers: int, split: bool) -> list[Stage]:
    """[emb, (L0.mid), L0, (L1.mid), L1, ...]: mid stages (after attention, before MLP) only when `split`."""
    out = [Stage("emb", -1, "emb")]
    for layer in range(n_layers):
        if split:
            out.append(Stage(f"L{layer}.mid", layer, "mid"))
        out.append(Stage(f"L{layer}", layer, "post"))
    return out


def layer_presets(n_layers: int, split: bool) -> dict[str, list[int]]:
    """Stage-index lists into `stage_layout(n_layers, split)`.

    "All": every stage. "Evenly spaced (6)": the embedding plus layers round(i*(N-1)/5), i=0..5 (deduplicated;
    with `split` a chosen layer brings its mid stage too). "Last half": layers N//2 .. N-1 (no embedding).
    """
    layout = stage_layout(n_layers, split)

    def pick(layers: set[int]) -> list[int]:
        return [i for i, s in enumerate(layout) if s.layer in layers]

    even = {round(i * (n_layers - 1) / 5) for i in range(6)} if n_layers > 0 else set()
    return {
        "All": list(range(len(layout))),
        "Evenly spaced (6)": pick({-1} | even),
        "Last half": pick(set(range(n_layers // 2, n_layers))),
    }


def cum_mass_threshold(abs_w: np.ndarray, p: float, dropped: float = 0.0) -> float:
    """Cut value tau so that keeping |w| >= tau keeps at least fraction p of sum|w| (ties at the cut kept).

    a = |w| sorted descending, c = cumsum(a), k = first index with c[k] >= p*(c[-1] + dropped) (clipped to
    the last); tau = max(a[k], 1e-9). `dropped` is the mass of edges too small to be stored when the graph
    was computed (all smaller than the stored ones), so p stays a share of the transition's whole mass.
    No mass (sum <= 1e-12) or no edges -> inf, i.e. keep nothing.
    """
    if abs_w.size == 0:
        return float("inf")
    a = np.sort(abs_w.astype(np.float64))[::-1]
    c = np.cumsum(a)
    if c[-1] <= EPS_MASS:
        return float("inf")
    k = min(int(np.searchsorted(c, p * (c[-1] + dropped) * (1 - 1e-12))), a.size - 1)  # forgive rounding at p
    return max(float(a[k]), EPS_EDGE)


def ancestors(
    transitions: list[EdgeSet], edge_masks: list[np.ndarray], target: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """bool [stages, tokens]: the target plus every node with a path of kept edges into it.

    Edges go from a lower to a higher stage, so one sweep over transitions by descending dst stage suffices.
    """
    reached = np.zeros(shape, dtype=bool)
    reached[target] = True
    for i in sorted(range(len(transitions)), key=lambda i: -transitions[i].dst_stage):
        tr = transitions[i]
        if tr.src_stage >= tr.dst_stage:
            raise ValueError(f"transition {tr.src_stage}->{tr.dst_stage} does not go up the stages")
        hit = edge_masks[i] & reached[tr.dst_stage, tr.dst_tok]
        reached[tr.src_stage, tr.src_tok[hit]] = True
    return reached


def resolve_target(target: tuple[int, int], selected: list[int], n_tokens: int) -> tuple[int, int]:
    """A negative stage counts from the end of the selected stages, a negative token from the end of the prompt;
    so (-1, -1) is the last token at the last selected stage."""
    stage, tok = target
    return (selected[stage] if stage < 0 else stage, tok + n_tokens if tok < 0 else tok)


def prune(graph: AttributionGraph, settings: PruneSettings, stages: Optional[list[int]] = None) -> PrunedGraph:
    """Which nodes and edges to show.

    1. Stages: `stages` (indices into graph.stages; None = all). A transition is shown only when both its src
       and dst stage are selected.
    2. Nodes: visible iff on a selected stage, |R| > node_threshold (so threshold 0 keeps the nonzero nodes), and
       not token 0 when hide_first_token. The node filter is strict: an edge touching a hidden node is dropped,
       so a node with strong edges but |R| under the threshold stays hidden.
    3. Edges, per transition, among the candidates (edges whose two ends are visible):
       "global": keep |w| > edge_threshold.
       "cum_mass": keep |w| >= cum_mass_threshold(|w| of candidates, top_p), i.e. top_p of the mass *between
       visible nodes* (so hiding token 0 rescales to what is shown). Zero mass keeps nothing.
    4. connected_to = (stage, token), negatives allowed (see resolve_target): keep only that node and its
       ancestors through kept edges (the induced subgraph). The target itself is shown only if visible by step 2.
    Nodes without kept edges stay visible (as in the reference system) unless step 4 removes them.

    details[i] (transition i): selected, threshold (nan when not selected, inf when nothing could be kept),
    kept_edges, total_edges (|w| > 1e-9 over the whole transition), kept_fraction, kept_mass_fraction
    (kept sum|w| / whole transition's sum|w|); counts are of the final masks.
    """
    n_stages, n_tokens = graph.node_relevance.shape
    selected = list(range(n_stages)) if stages is None else sorted(set(int(s) for s in stages))
    on = np.zeros(n_stages, dtype=bool)
    on[selected] = True

    node = on[:, None] & (np.abs(graph.node_relevance) > settings.node_threshold)  # [stages, tokens]
    if settings.hide_first_token:
        node[:, 0] = False

    masks, thresholds = [], []
    for tr in graph.transitions:
        if not (on[tr.src_stage] and on[tr.dst_stage]):
            masks.append(np.zeros(tr.n_edges, dtype=bool))
            thresholds.append(float("nan"))
            continue
        aw = np.abs(tr.weight)
        cand = node[tr.src_stage, tr.src_tok] & node[tr.dst_stage, tr.dst_tok]
        if settings.mode == "global":
            thr = float(settings.edge_threshold)
            keep = cand & (aw > thr)
        elif settings.mode == "cum_mass":
            thr = cum_mass_threshold(aw[cand], settings.top_p, tr.dropped_mass)
            keep = cand & (aw >= thr)
        else:
            raise ValueError(f"unknown pruning mode {settings.mode!r}; use 'cum_mass' or 'global'")
        masks.append(keep)
        thresholds.append(thr)

    if settings.connected_to is not None and selected:
        target = resolve_target(settings.connected_to, selected, n_tokens)
        node &= ancestors(graph.transitions, masks, target, node.shape)
        masks = [m & node[tr.src_stage, tr.src_tok] & node[tr.dst_stage, tr.dst_tok]
                 for m, tr in zip(masks, graph.transitions)]

    details = [_details(tr, m, thr, bool(on[tr.src_stage] and on[tr.dst_stage]))
               for tr, m, thr in zip(graph.transitions, masks, thresholds)]
    return PrunedGraph(node_mask=node, edge_masks=masks, details=details, stages=tuple(selected))


def _details(tr: EdgeSet, keep: np.ndarray, threshold: float, selected: bool) -> dict:
    aw = np.abs(tr.weight).astype(np.float64)
    total = int(np.count_nonzero(aw > EPS_EDGE))
    kept = int(np.count_nonzero(keep))
    mass = float(aw.sum())
    return {
        "selected": selected,
        "threshold": threshold,
        "kept_edges": kept,
        "total_edges": total,
        "kept_fraction": kept / total if total else 0.0,
        "kept_mass_fraction": float(aw[keep].sum()) / mass if mass > EPS_MASS else 0.0,
    }


def relative_settings(graph: AttributionGraph, stages: list[int], *, mode: str = "cum_mass",
                      top_p: float = DEFAULT_TOP_P, edge_share: float = 0.0, node_share: float = 0.0,
                      connected: bool = False, hide_first_token: bool = False) -> PruneSettings:
    """Pruning settings from shares, as the Graph page's sliders give them: the edge threshold as a share of the
    strongest edge, the node threshold as a share of the largest |R| among `stages` (a hair under it, so a share of
    1 keeps the strongest node)."""
    w_max = max((float(np.abs(tr.weight).max()) for tr in graph.transitions if tr.n_edges), default=0.0)
    r_max = float(np.abs(graph.node_relevance[stages]).max()) if len(stages) else 0.0
    return PruneSettings(mode=mode, top_p=top_p, edge_threshold=edge_share * w_max,
                         node_threshold=node_share * r_max * (1 - 1e-6),
                         connected_to=(-1, -1) if connected else None, hide_first_token=hide_first_token)
