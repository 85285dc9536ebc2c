"""Patterns across a study's failures, from the stored heatmaps (what no single-case view shows).

- `tokens`: per family, the tokens that recur among each failure's strongest red (supports the wrong answer) and
  blue (supports the right one) tokens: how many failures have the token among their top `TOP` of that side, with
  the first case ids (to open them).
- `special`: per model, the share of |relevance| on special tokens (BOS, chat template): the attention-sink question.
- `positions`: per family, where in the prompt the relevance sits: |R|-weighted quantiles of the token position
  (0 = first token, 1 = the failure point), averaged over the family's failures, and the mean share per segment.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
import pandas as pd

from engine.present.text import visible
from engine.runs.store import Store
from engine.runs.study import run_id
from engine.runs.sweep import load_case

TOP = 3  # strongest tokens per side and failure
SHOW = 8  # recurring tokens listed per family and side
CASES = 5  # case ids kept per recurring token


def _weighted_quantiles(weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    n = len(weights)
    total = float(weights.sum())
    if n < 2 or total <= 0:
        return [float("nan")] * len(qs)
    cum = np.cumsum(weights) / total
    return [float(np.searchsorted(cum, q) / (n - 1)) for q in qs]


def pattern_tables(store: Store, name: str, fails: pd.DataFrame, others: pd.DataFrame,
                   models: Sequence[str]) -> dict[str, pd.DataFrame]:
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    where: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    positions = []
    special = []
    ref_run, other_run = run_id(name, "reference"), run_id(name, "models")
    for run, frame in ((ref_run, fails), (other_run, others)):
        for r in frame.itertuples(index=False):
            case = load_case(store, run, r.model_label, r.case_id)
            if case is None or not len(case.relevance):
                continue
            rel = np.asarray(case.relevance, dtype=float)  # [tokens]
            spec = np.asarray(case.special_mask, dtype=bool)
            mag = np.abs(rel)
            special.append({"model": r.model_label, "family": r.family,
                            "special_share": float(mag[spec].sum() / mag.sum()) if mag.sum() > 0 else np.nan})
            if run != ref_run:
                continue
            plain = np.flatnonzero(~spec)
            for side, order in (("red", np.argsort(-rel[plain])), ("blue", np.argsort(rel[plain]))):
                picked = [plain[i] for i in order[:TOP]
                          if (rel[plain[i]] > 0) == (side == "red") and rel[plain[i]] != 0]
                for tok in dict.fromkeys(visible(case.tokens[i]) for i in picked):
                    counts[(r.family, side)][tok] += 1
                    if len(where[(r.family, side, tok)]) < CASES:
                        where[(r.family, side, tok)].append(r.case_id)
            q = _weighted_quantiles(mag, (0.25, 0.5, 0.75))
            positions.append({"family": r.family, "q25": q[0], "q50": q[1], "q75": q[2]})
    tokens = [{"family": fam, "side": side, "token": tok, "failures": n, "cases": " ".join(where[(fam, side, tok)])}
              for (fam, side), c in sorted(counts.items()) for tok, n in c.most_common(SHOW)]
    sp = pd.DataFrame(special, columns=["model", "family", "special_share"])
    order = {m: i for i, m in enumerate(models)}
    sp_mean = (sp.groupby("model")["special_share"].agg(["mean", "count"]).reset_index()
               .assign(order=lambda d: d["model"].map(order)).sort_values("order"))
    pos = pd.DataFrame(positions, columns=["family", "q25", "q50", "q75"]).groupby("family").mean().reset_index()
    seg = fails.groupby("family")[[f"seg_{s}" for s in ("instruction", "query", "answer", "special")
                                   if f"seg_{s}" in fails]].mean().reset_index()
    return {"patterns_tokens": pd.DataFrame(tokens, columns=["family", "side", "token", "failures", "cases"]),
            "patterns_special": sp_mean.rename(columns={"mean": "special_share", "count": "cases"})[
                ["model", "order", "special_share", "cases"]],
            "patterns_positions": pos.merge(seg, on="family", how="left")}
