"""Charts and tables of the causal checks (engine.cases.checks, engine.cases.ablation); no streamlit.

Colours keep their one meaning: red = the target-supporting (red) tokens or nodes, blue = the contrast-supporting
ones; the random baseline and the insertion curve are grey.
"""
from __future__ import annotations

from typing import Optional

import altair as alt
import pandas as pd

from engine.cases.ablation import AblationReport, NodeAblation
from engine.cases.checks import DeletionCurves
from engine.present.render import BLUE, RED

CURVES = {  # column -> legend text
    "target": "red tokens removed (heatmap's top)",
    "random": "random tokens removed (mean ± std)",
    "contrast": "blue tokens removed",
    "insertion": "only the red tokens kept",
}
_COLOURS = ["rgb(%d,%d,%d)" % RED, "#7f7f7f", "rgb(%d,%d,%d)" % BLUE, "#3b3b3b"]
DELTA = "Δℓ = ℓ(target) − ℓ(contrast)"


TABLE_NAMES = {"target": "red removed", "random": "random mean", "random_std": "random std",
               "contrast": "blue removed", "insertion": "only red kept"}


def curves_table(c: DeletionCurves) -> pd.DataFrame:
    """`curves_frame` with readable column names, rounded, for the page."""
    return curves_frame(c).rename(columns=TABLE_NAMES).round(3)


def curves_frame(c: DeletionCurves) -> pd.DataFrame:
    """One row per k: the four curves (empty where a curve is shorter) and the random spread."""
    n = len(c.random_mean)
    col = lambda values: [values[k] if k < len(values) else None for k in range(n)]  # noqa: E731
    removed = [c.target_tokens[k - 1] if 0 < k <= len(c.target_tokens) else "" for k in range(n)]
    return pd.DataFrame({"k": range(n), "removed token": removed, "target": col(c.target),
                         "random": list(c.random_mean), "random_std": list(c.random_std),
                         "contrast": col(c.contrast), "insertion": col(c.insertion)})


def deletion_chart(c: DeletionCurves, scale: float = 1.0) -> alt.LayerChart:
    """Δℓ against the number of tokens removed; the dashed line at 0 is where the answer flips."""
    df = curves_frame(c)
    long = df.melt(id_vars=["k"], value_vars=list(CURVES), var_name="curve", value_name="dl").dropna()
    long["curve"] = long["curve"].map(CURVES)
    colour = alt.Color("curve:N", scale=alt.Scale(domain=list(CURVES.values()), range=_COLOURS),
                       legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=400))
    x = alt.X("k:Q", title="tokens removed (k)", axis=alt.Axis(tickMinStep=1))
    band = alt.Chart(df.assign(lo=df["random"] - df["random_std"], hi=df["random"] + df["random_std"])).mark_area(
        opacity=0.18, color="#7f7f7f").encode(x=x, y="lo:Q", y2="hi:Q")
    lines = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("dl:Q", title="Δℓ (target − contrast)"), color=colour,
        strokeDash=alt.condition(alt.datum.curve == CURVES["insertion"], alt.value([5, 3]), alt.value([1, 0])),
        tooltip=["curve", "k", alt.Tooltip("dl:Q", format="+.3f", title="Δℓ")])
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#222", strokeDash=[3, 3]).encode(y="y:Q")
    return (band + zero + lines).properties(width=round(520 * scale), height=round(300 * scale))


def ablation_frame(r: AblationReport) -> pd.DataFrame:
    """The ablated nodes with predicted and measured changes of Δℓ (block columns only for split graphs)."""
    rows = []
    for n in r.nodes:
        row = {"node": f"{n.stage_name} · T{n.token}", "token": n.token_text, "R": n.relevance,
               "predicted (zero)": n.predicted_zero, "measured (zero)": n.measured_zero,
               "predicted (mean)": n.predicted_mean, "measured (mean)": n.measured_mean}
        if r.split:
            row.update({"block": n.block, "block predicted (zero)": n.block_predicted_zero,
                        "block measured (zero)": n.block_measured_zero,
                        "block predicted (mean)": n.block_predicted_mean,
                        "block measured (mean)": n.block_measured_mean})
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_scatter(r: AblationReport, which: str = "zero", scale: float = 1.0) -> alt.LayerChart:
    """Predicted (x) vs measured (y) change of Δℓ per node, the y = x line, colour = the sign of R."""
    df = ablation_frame(r)
    df = df.assign(x=df[f"predicted ({which})"], y=df[f"measured ({which})"],
                   supports=["target" if v > 0 else "contrast" for v in df["R"]]).dropna(subset=["x", "y"])
    values = list(df["x"]) + list(df["y"]) or [0.0]
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo) or 1.0
    axis = alt.Scale(domain=[lo - pad, hi + pad], nice=False)
    diagonal = alt.Chart(pd.DataFrame({"v": [lo - pad, hi + pad]})).mark_line(color="#888", strokeDash=[4, 4]).encode(
        x=alt.X("v:Q", scale=axis), y=alt.Y("v:Q", scale=axis))
    points = alt.Chart(df).mark_circle(size=round(70 * scale), opacity=0.85).encode(
        x=alt.X("x:Q", scale=axis, title="predicted change of Δℓ"),
        y=alt.Y("y:Q", scale=axis, title="measured change of Δℓ"),
        color=alt.Color("supports:N", scale=alt.Scale(domain=["target", "contrast"],
                                                      range=["rgb(%d,%d,%d)" % RED, "rgb(%d,%d,%d)" % BLUE]),
                        legend=alt.Legend(title="R supports", orient="bottom")),
        tooltip=["node", "token", alt.Tooltip("R:Q", format="+.3f"),
                 alt.Tooltip("x:Q", format="+.3f", title="predicted"),
                 alt.Tooltip("y:Q", format="+.3f", title="measured")])
    title = f"{which.capitalize()} ablation · top {len(df)} nodes"
    return (diagonal + points).properties(width=round(440 * scale), height=round(340 * scale), title=title)


def correlation_text(r: Optional[float]) -> str:
    return "–" if r is None else f"{r:+.2f}"


AGREE = 0.25  # measured within 25 % of the predicted change (of the larger of the two): "the graph is right"


def _where(stage_name: str) -> str:
    from engine.present.glossary import stage_label

    label = stage_label(stage_name)
    return "at the embedding" if label == "embedding" else f"{label}" if label.startswith("after") else f"at {label}"


def node_sentence(n: NodeAblation, base: float) -> str:
    """The selected node's ablation in words: what removing it (its state set to zero) does to the wrong answer's
    lead Δℓ, whether the answer flips, and whether the relevance predicted that. base: Δℓ with nothing removed."""
    from engine.present.text import visible

    what = f"Removing '{visible(n.token_text)}' {_where(n.stage_name)} alone"
    if n.measured_zero is None:
        if n.predicted_zero is None:
            return f"{what} could not be measured for this node."
        return (f"{what} should change the wrong answer's lead by {n.predicted_zero:+.1f}, the relevance predicts "
                "(not measured for this node).")
    after = base + n.measured_zero
    verb = "lowers" if n.measured_zero < 0 else "raises"
    if abs(n.measured_zero) < 0.05:
        move = f"barely changes the wrong answer's lead ({base:.1f} → {after:.1f})"
    else:
        move = f"{verb} the wrong answer's lead from {base:.1f} to {after:.1f}"
    if base > 0 > after:
        tail = ": the answer flips to the right one"
    elif base > 0:
        tail = ": the model still prefers the wrong answer"
    else:
        tail = ""
    out = f"{what} {move}{tail}."
    p = n.predicted_zero
    if p is not None:
        gap = abs(n.measured_zero - p)
        if gap <= AGREE * max(abs(p), abs(n.measured_zero), 0.1):
            judge = "the graph is right about this node"
        elif p * n.measured_zero > 0:
            judge = f"the graph has the direction right but {'over' if abs(p) > abs(n.measured_zero) else 'under'}" \
                    "states the size"
        else:
            judge = "the graph gets this node wrong (the real change goes the other way)"
        out += f" The relevance predicted {p:+.1f} (measured {n.measured_zero:+.1f}): {judge}."
    return out
