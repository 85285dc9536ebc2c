"""The claim each figure of a study tests, and this run's answer (holds / does not hold / mixed / not tested).

The rules, in words (each answer's sentence repeats its numbers):
- Fig 1: input attribution explains most failures (share by input > 50 %) of the IFEval-, GAIA- and EvalPlus-like
  families, and the MATH-like family has the largest unexplained share (by graph + no clue). Holds when both parts
  hold, mixed when one does.
- Fig 2: each pattern (URT, OIT, URT+OIT) and "no clue" has an example: holds when all four do, mixed when some.
- Fig 3: some failure the heatmap does not explain is explained by the graph: holds when at least one is.
- Fig 4: most points lie below y = x (a larger model prefers the wrong token less): share below > 50 % for every
  larger model -> holds; for some -> mixed; none -> does not hold.
- Fig 5: larger models put more negative relevance, most in the Instruction: the mean total relevance falls from
  the reference to the largest size, and the Instruction is the most negative segment in the largest size.
- Fig 6: Δℓ falls steadily with training: every step of the mean line falls -> holds; last below first but not
  every step -> mixed; else does not hold.
- Fig 7: the biggest change in segment relevance happens early: the largest step (L1 distance of the four segment
  means between consecutive checkpoints) is in the first half of the steps.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.runs.study_figures import PATTERNS, ROLE, Claim

TEXT = {
    "Fig 1": "Input attribution suffices for most IFEval / GAIA / EvalPlus failures; MATH has more unexplained.",
    "Fig 2": "Each pattern (URT, OIT, URT+OIT) and 'no clue' has a clear example heatmap.",
    "Fig 3": "Some failures the heatmap does not explain are explained by the attribution graph.",
    "Fig 4": "Most points lie below y = x: larger models fix the smaller model's failures.",
    "Fig 5": "Larger models put more negative relevance on the prompt, most of it in the Instruction.",
    "Fig 6": "Δℓ falls steadily as training goes on.",
    "Fig 7": "The biggest change in segment relevance happens early in training.",
}


def _answer(parts: list[bool]) -> str:
    return "holds" if parts and all(parts) else ("mixed" if any(parts) else "does not hold")


def _fig1(t: Any) -> Claim:
    o = t.tables["fig1_outcomes"]
    if o.empty:
        return Claim("Fig 1", TEXT["Fig 1"], "not tested", None, "No failures to count.")
    share = {f: float(g.loc[g["outcome"] == "by input", "share"].sum()) for f, g in o.groupby("family")}
    role = {f: ROLE.get(str(f).lower(), "") for f in share}
    easy = [f for f in share if role[f] in ("IFEval", "GAIA", "EvalPlus")]
    math_f = [f for f in share if role[f] == "MATH"]
    words = ", ".join(f"{f} {share[f]:.0%}" for f in share)
    if not easy or not math_f:
        return Claim("Fig 1", TEXT["Fig 1"], "not tested", None,
                     f"By input: {words}; the study lacks a MATH-like family or the others: not tested.")
    unexplained = {f: 1 - s for f, s in share.items()}
    most = all(share[f] > 0.5 for f in easy)
    math_worst = unexplained[math_f[0]] >= max(unexplained.values())
    return Claim("Fig 1", TEXT["Fig 1"], _answer([most, math_worst]), share[math_f[0]],
                 f"Share explained by input: {words}. Majority by input in {sum(share[f] > 0.5 for f in easy)} of "
                 f"{len(easy)} IFEval/GAIA/EvalPlus-like families; {math_f[0]} (MATH-like) "
                 f"{'has' if math_worst else 'does not have'} the largest unexplained share "
                 f"({unexplained[math_f[0]]:.0%}).")


def _fig2(t: Any) -> Claim:
    have = set(t.tables["fig2_examples"]["example"])
    want = [*PATTERNS, "no clue"]
    got = [w for w in want if w in have]
    return Claim("Fig 2", TEXT["Fig 2"], _answer([w in have for w in want]), float(len(got)),
                 f"Examples found for {len(got)} of 4: {', '.join(got) or 'none'}"
                 + (f"; none for {', '.join(w for w in want if w not in have)}." if len(got) < 4 else "."))


def _fig3(t: Any) -> Claim:
    n = int((t.failures["outcome"] == "by graph").sum())
    g = t.tables["fig3_graph"]
    words = (f"{n} of {len(t.failures)} failures are explained by the graph, not the heatmap"
             + (f"; the clearest, {g.iloc[0]['case_id']}, has node-ablation r = {g.iloc[0]['check_r_zero']:.2f}."
                if len(g) else "; none has a stored graph to show." if n else "; so Fig 3 has no case to show."))
    return Claim("Fig 3", TEXT["Fig 3"], "holds" if n else "does not hold", float(n), words)


def _fig4(t: Any) -> Claim:
    s = t.tables["fig4_scaling"]
    if s.empty:
        return Claim("Fig 4", TEXT["Fig 4"], "not tested", None, "No larger models in this study.")
    below = s.groupby("model", sort=False)["below"].mean()
    words = ", ".join(f"{m} {v:.0%}" for m, v in below.items())
    return Claim("Fig 4", TEXT["Fig 4"], _answer([v > 0.5 for v in below]), float(s["below"].mean()),
                 f"Share of the reference's failures below y = x: {words} (all models: {s['below'].mean():.0%}).")


def _fig5(t: Any) -> Claim:
    seg = t.tables["fig5_segments"]
    models = [t.reference, *t.sizes]
    if len(models) < 2 or seg.empty:
        return Claim("Fig 5", TEXT["Fig 5"], "not tested", None, "No larger models in this study.")
    mean = lambda m, s: float(seg[(seg["model"] == m) & (seg["segment"] == s)]["mean"].iloc[0])  # noqa: E731
    totals = [mean(m, "total") for m in models]
    last = {s: mean(models[-1], s) for s in ("instruction", "query", "answer")}
    most = min(last, key=lambda s: last[s] if math.isfinite(last[s]) else math.inf)
    falls = totals[-1] < totals[0]
    return Claim("Fig 5", TEXT["Fig 5"], _answer([falls, most == "instruction" and last[most] < 0]), totals[-1],
                 "Mean total relevance " + " → ".join(f"{m} {v:+.2f}" for m, v in zip(models, totals))
                 + f"; in {models[-1]} the most negative segment is {most} ({last[most]:+.2f}).")


def _fig6(t: Any) -> Claim:
    line = t.tables["fig6_means"]["mean"].to_numpy(dtype=float)
    if len(line) < 2 or not np.isfinite(line).all():
        return Claim("Fig 6", TEXT["Fig 6"], "not tested", None, "Fewer than two checkpoints with Δℓ.")
    steps = np.diff(line)
    down = int((steps < 0).sum())
    answer = "holds" if down == len(steps) else ("mixed" if line[-1] < line[0] else "does not hold")
    return Claim("Fig 6", TEXT["Fig 6"], answer, float(line[-1] - line[0]),
                 f"Mean Δℓ {line[0]:+.2f} at {t.checkpoints[0]} → {line[-1]:+.2f} at {t.checkpoints[-1]}; "
                 f"{down} of {len(steps)} steps fall.")


def _fig7(t: Any) -> Claim:
    seg = t.tables["fig7_segments"]
    seg = seg[seg["segment"].isin(("instruction", "query", "answer", "special"))]
    wide = seg.pivot(index="order", columns="segment", values="mean").sort_index().to_numpy(dtype=float)
    if len(wide) < 3 or not np.isfinite(wide).all():
        return Claim("Fig 7", TEXT["Fig 7"], "not tested", None, "Fewer than three checkpoints with heatmaps.")
    steps = np.abs(np.diff(wide, axis=0)).sum(axis=1)
    k = int(np.argmax(steps))
    early = k < math.ceil(len(steps) / 2)
    return Claim("Fig 7", TEXT["Fig 7"], "holds" if early else "does not hold", float(steps[k]),
                 f"The largest step is {t.checkpoints[k]} → {t.checkpoints[k + 1]} (step {k + 1} of {len(steps)}, "
                 f"L1 change {steps[k]:.2f} of the segment means; the median step is {np.median(steps):.2f}).")


def claims(t: Any) -> tuple[Claim, ...]:
    return tuple(f(t) for f in (_fig1, _fig2, _fig3, _fig4, _fig5, _fig6, _fig7))
