"""Metrics of what a PrunedGraph shows: one row per selected stage, plus a few per-prompt numbers.

Notation for stage s: V = visible nodes of s (node_mask[s]), R = their relevance, T = tokens in the prompt,
IN = kept edges into s, OUT = kept edges out of s, w = edge weights; deg_in / deg_out count kept edges per node.
Column -> formula (nan where the denominator is empty or zero):
  nodes                |V|
  edges                |OUT|  (sum of out-degrees, as in the reference system)
  edges_per_node       |OUT| / |V|
  fan_in, fan_out      mean over V of deg_in, deg_out
  sparsity             1 - |V| / T
  rel_mean, rel_gini   mean |R|; gini(R)
  w_in_mean, w_in_gini mean |w| over IN; gini(w over IN)
  gini_in_by_node      mean over nodes of V with >= 1 in-edge of gini(their in-edge w); one edge counts 1.0
  gini_out_by_node     the same over out-edges
  verticality          sum |w| over IN with src_tok == dst_tok / sum |w| over IN
  n90, n90_pos, n90_neg  n_for_mass(R), n_for_mass(R[R > 0]), n_for_mass(R[R < 0]) at 0.9
  n90_share            n90 / |V|
  hubs_in, hubs_out    nodes of V with degree > mean + std (population std) of that degree over V
  centre_of_mass       sum t*|R_t| / sum |R_t| over V (t = token index)
  lookback_mean        mean (dst_tok - src_tok) over IN (unweighted)
  local_share          share of IN with dst_tok == src_tok (unweighted)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.graph.types import AttributionGraph, PrunedGraph

NAN = float("nan")


def gini(x: np.ndarray) -> float:
    """Gini of |x| sorted ascending: sum_i (2i - n - 1) x_i / (n sum x), i = 1..n; 0 when the sum is 0."""
    x = np.sort(np.abs(np.asarray(x, dtype=np.float64)))
    n, s = x.size, x.sum()
    if n == 0 or s == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * s))


def group_gini(group: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """[n_groups] Gini of |x| within each group id; a group of one counts 1.0, an empty group is nan."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    group = np.asarray(group, dtype=np.int64)
    order = np.lexsort((x, group))  # by group, then ascending |x|
    g, xs = group[order], x[order]
    n = np.bincount(g, minlength=n_groups)
    start = np.cumsum(n) - n
    rank = np.arange(g.size) - start[g] + 1  # 1-based rank inside the group
    num = np.bincount(g, weights=(2 * rank - n[g] - 1) * xs, minlength=n_groups)
    tot = np.bincount(g, weights=xs, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(tot > 0, num / (n * tot), 0.0)
    out[n == 1] = 1.0
    out[n == 0] = NAN
    return out


def n_for_mass(x: np.ndarray, frac: float = 0.9) -> int:
    """Smallest number of the largest |x| whose sum reaches frac of sum |x|; 0 when there is no mass."""
    a = np.sort(np.abs(np.asarray(x, dtype=np.float64)))[::-1]
    if a.size == 0 or a.sum() == 0:
        return 0
    c = np.cumsum(a)
    return int(min(np.searchsorted(c, frac * c[-1] * (1 - 1e-12)), a.size - 1) + 1)


def normalized_entropy(r: np.ndarray) -> float:
    """-sum p ln p / ln n with p = |r| / sum |r| (0 ln 0 = 0); 0 for n <= 1, nan when sum |r| = 0."""
    a = np.abs(np.asarray(r, dtype=np.float64))
    if a.size <= 1:
        return 0.0
    if a.sum() == 0:
        return NAN
    p = a[a > 0] / a.sum()
    return float(-(p * np.log(p)).sum() / np.log(a.size))


def early_late_ratio(r: np.ndarray, split: float = 0.5) -> float:
    """sum |r[:k]| / sum |r[k:]| with k = int(n * split); inf when the late sum is 0."""
    a = np.abs(np.asarray(r, dtype=np.float64))
    k = int(a.size * split)
    early, late = a[:k].sum(), a[k:].sum()
    return float("inf") if late == 0 else float(early / late)


@dataclass(frozen=True)
class GraphMetrics:
    per_stage: pd.DataFrame  # one row per selected stage, columns as in the module docstring
    input_entropy: float  # normalized_entropy of the embedding-stage relevance
    early_late: float  # early_late_ratio of the same


def graph_metrics(graph: AttributionGraph, pruned: PrunedGraph, skip_first_token: bool = False) -> GraphMetrics:
    """Per-stage metrics of what `pruned` shows; per-prompt metrics of the embedding row of `graph`.

    The per-prompt numbers describe the input relevance itself, so pruning does not change them; pass
    skip_first_token to leave token 0 (BOS, often a relevance sink) out of them. nan without an embedding stage.
    """
    emb = [i for i, s in enumerate(graph.stages) if s.kind == "emb"]
    r = graph.node_relevance[emb[0]][int(skip_first_token):] if emb else None
    return GraphMetrics(
        per_stage=stage_metrics(graph, pruned),
        input_entropy=normalized_entropy(r) if r is not None else NAN,
        early_late=early_late_ratio(r) if r is not None else NAN,
    )


def stage_metrics(graph: AttributionGraph, pruned: PrunedGraph) -> pd.DataFrame:
    """One row per selected stage (pruned.stages, or all); formulas in the module docstring."""
    n_stages, n_tokens = graph.node_relevance.shape
    stages = list(pruned.stages) or list(range(n_stages))
    ins = {s: [] for s in range(n_stages)}  # stage -> [(src_tok, dst_tok, w)] of kept in-edges
    outs = {s: [] for s in range(n_stages)}
    for tr, m in zip(graph.transitions, pruned.edge_masks):
        if m.any():
            e = (tr.src_tok[m], tr.dst_tok[m], tr.weight[m])
            ins[tr.dst_stage].append(e)
            outs[tr.src_stage].append(e)
    rows = [_stage_row(graph, pruned.node_mask[s], s, _cat(ins[s]), _cat(outs[s]), n_tokens) for s in stages]
    return pd.DataFrame(rows)


def _cat(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate([p[k] for p in parts]).astype(np.float64 if k == 2 else np.int64) for k in range(3))


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else NAN


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else NAN


def _hubs(deg: np.ndarray) -> int:
    return int(np.count_nonzero(deg > deg.mean() + deg.std())) if deg.size else 0


def _stage_row(graph, visible, s, inn, out, n_tokens) -> dict:
    stage = graph.stages[s]
    toks = np.flatnonzero(visible)
    r = graph.node_relevance[s, toks].astype(np.float64)
    ar = np.abs(r)
    in_src, in_dst, in_w = inn
    out_src, _, out_w = out
    deg_in = np.bincount(in_dst, minlength=n_tokens)
    deg_out = np.bincount(out_src, minlength=n_tokens)
    has_in, has_out = visible & (deg_in > 0), visible & (deg_out > 0)
    same = in_src == in_dst
    n = toks.size
    return {
        "stage": stage.name, "stage_index": s, "layer": stage.layer, "kind": stage.kind,
        "nodes": n,
        "edges": out_w.size,
        "edges_per_node": _ratio(out_w.size, n),
        "fan_in": _mean(deg_in[toks]),
        "fan_out": _mean(deg_out[toks]),
        "sparsity": 1 - n / n_tokens if n_tokens else NAN,
        "rel_mean": _mean(ar),
        "rel_gini": gini(r),
        "w_in_mean": _mean(np.abs(in_w)),
        "w_in_gini": gini(in_w),
        "gini_in_by_node": _mean(group_gini(in_dst, in_w, n_tokens)[has_in]),
        "gini_out_by_node": _mean(group_gini(out_src, out_w, n_tokens)[has_out]),
        "verticality": _ratio(np.abs(in_w[same]).sum(), np.abs(in_w).sum()),
        "n90": n_for_mass(r),
        "n90_pos": n_for_mass(r[r > 0]),
        "n90_neg": n_for_mass(r[r < 0]),
        "n90_share": _ratio(n_for_mass(r), n),
        "hubs_in": _hubs(deg_in[toks]),
        "hubs_out": _hubs(deg_out[toks]),
        "centre_of_mass": _ratio((toks * ar).sum(), ar.sum()),
        "lookback_mean": _mean((in_dst - in_src).astype(np.float64)),
        "local_share": _mean(same.astype(np.float64)),
    }
