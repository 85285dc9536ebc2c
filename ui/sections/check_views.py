"""The causal checks beside the heatmap and the graph: does the explanation hold?

Heatmap page: the deletion check's verdict in words, computed from the rows it needs only (engine.cases.checks),
with the number of model runs and the time it took; the full deletion / insertion curves on request.
Graph page: the selected node's predicted and measured change of Δℓ, and the top-N nodes' scatter
(engine.cases.ablation). Results are cached by content (model fingerprint, token ids, target, contrast, settings).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import streamlit as st

from engine.cases.ablation import AblationReport, ablate_nodes, node_states
from engine.cases.checks import PARTLY_SHARE, RANDOM_MARGIN_STD, REPLACEMENTS, DeletionCurves, deletion_curves
from engine.present import check_charts
from engine.records import Attribution, FailureLensError
from ui import layout, safe, state, timings, widgets

VERDICT_NAMES = {"explains": "Explains", "fragile": "Fragile", "partly": "Partly", "not_explained": "Does not explain",
                 "no_failure": "No failure"}
AUTO_TOKENS = 256  # longer prompts run the checks on request (each check re-runs the model many times)
REPLACEMENT_NAMES = {"neutral": "neutral (unk, else pad, else a space)", "pad": "pad token", "unk": "unk token"}
HOW_TO_READ = (f"Each curve is Δℓ after replacing k tokens with the replacement token (same length and positions). "
               "Red: the heatmap's most target-supporting tokens first; grey: random tokens (mean ± spread over the "
               "seeds); blue: the most contrast-supporting tokens; dashed: every ordinary token replaced except the "
               "top k red ones. Below the dotted line at 0 the model prefers the right answer. Verdicts: *explains* = "
               "the red curve crosses 0 within K while the random mean at that k is still above 0; *fragile* = it "
               f"crosses, but so does the random mean; *partly* = no crossing, but Δℓ falls by ≥ {PARTLY_SHARE:.0%} "
               f"and more than {RANDOM_MARGIN_STD:g} random spreads below the random mean; otherwise *does not "
               "explain*. Area = mean gap between the grey and the red curve (logits).")
ABLATION_HELP = ("Ablating a node replaces its state at that token with zero (or with the mean state over the prompt's "
                 "positions, first token left out) and runs the model again. Predicted change = −R for zero "
                 "ablation, (mean − state)·gradient for mean ablation: what the relevance promises; measured "
                 "change = the real change of Δℓ. Negative: removing the node lowers the wrong answer's lead.")


@st.cache_data(max_entries=64, show_spinner=False)
def _curves(model_key: str, _handle, ids: tuple, relevance: tuple, special: tuple, target: int, contrast: int,
            k: int, seeds: int, replacement: str, curves: str) -> DeletionCurves:
    with timings.phase("causal check"), _handle.lock:  # timed on a cache miss only: the model runs
        return deletion_curves(_handle.model, _handle.tokenizer, ids, relevance, target, contrast, special, k,
                               tuple(range(seeds)), replacement, curves=curves)


STATES_BYTES = 256 << 20  # node states kept between clicks up to this size (states and gradients of every node)


@st.cache_resource(max_entries=2, show_spinner=False)
def _states(model_key: str, _handle, ids: tuple, target: int, contrast: int, split: bool):
    """The case's node states (read-only once cached): a click on another node ablates it without a new backward."""
    with timings.phase("node states"):
        return node_states(_handle, ids, target, contrast, split)


@st.cache_resource(max_entries=16, show_spinner=False)
def _scatter(key: str, which: str, scale: float, _rep: AblationReport):
    """The top nodes' scatter (read-only once made): a slider move or a node click does not change it."""
    return check_charts.ablation_scatter(_rep, which, scale)


def forget_states() -> None:
    """Drop the cached node states (an unloaded model's tensors must not stay alive in them)."""
    _states.clear()


@st.cache_data(max_entries=64, show_spinner=False)
def _ablation(model_key: str, _handle, ids: tuple, target: int, contrast: int, nodes: Optional[tuple], top_n: int,
              split: bool, skip_first: bool) -> AblationReport:
    stages = _handle.n_layers * (2 if split else 1) + 1
    small = len(ids) * stages * int(_handle.model.config.hidden_size) * 8 <= STATES_BYTES
    states = _states(model_key, _handle, ids, target, contrast, split) if small else None
    with timings.phase("node ablation"):
        return ablate_nodes(_handle, ids, target, contrast, nodes=nodes, top_n=top_n, split=split,
                            skip_first=skip_first, states=states)


def _settings() -> tuple[int, int, str]:
    return int(state.get(state.CHK_K)), int(state.get(state.CHK_SEEDS)), str(state.get(state.CHK_REPL))


def _key(handle, att: Attribution, what: str, *settings) -> str:
    """The content key of a check result: model, tokens, target, contrast and the check's settings."""
    con = att.contrast.token_id if att.contrast is not None else None
    return repr((what, handle.key, hash(tuple(att.token_ids)), att.target.token_id, con, *settings))


def _done(key: str) -> Any:
    return state.get(state.CHK_DONE).get(key)


def _remember(key: str, value: Any) -> bool:
    """Keep a result for this session; True when it is new (the summary above then needs a redraw)."""
    done = state.get(state.CHK_DONE)
    if key in done and done[key] == value:
        return False
    keep = dict(list(done.items())[-31:])  # a bounded, fresh dict (the field's default is shared)
    keep[key] = value
    state.put(state.CHK_DONE, keep)
    return True


def page_curves(handle, att: Attribution) -> Optional[DeletionCurves]:
    """The deletion check of the view as the Heatmap page shows it, for the summary above it: computed (cached)
    when the check is on and runs without a click, or was run on request before; None otherwise."""
    if att.contrast is None or not state.get(state.CHK_ON):
        return None
    if len(att.token_ids) > AUTO_TOKENS and not _done(_key(handle, att, "curves", *_settings())):
        return None
    try:
        with st.spinner("Checking the heatmap: removing its red tokens and re-running the model …"):
            return _curves(handle.key, handle, tuple(att.token_ids), tuple(att.relevance), tuple(att.special_mask),
                           att.target.token_id, att.contrast.token_id, *_settings(), "verdict")
    except FailureLensError:
        return None  # the section below says why


def known_r_zero(handle, att: Attribution) -> Optional[float]:
    """The top nodes' zero-ablation correlation of the view when the Graph page measured it in this session."""
    return _done(_key(handle, att, "r_zero"))


def check_settings() -> tuple[int, int, str]:
    """K, seeds and replacement as set on the page (for the deck, which runs the check when the page did not)."""
    return _settings()


def heatmap_section(handle, att: Attribution) -> Optional[DeletionCurves]:
    """The deletion check of the heatmap on view: controls, verdict in words, curves, table. A check run on
    request (long prompts) is remembered, and the page re-runs once so that the summary above says its verdict."""
    st.subheader("Does the heatmap explain the failure?")
    if att.contrast is None:
        st.info("The deletion check compares the target with a contrast token: choose the logit difference "
                "against a contrast (Objective) to run it.")
        return None
    c0, c1, c2, c3 = st.columns([1.2, 1, 1, 1.6], vertical_alignment="bottom")
    with c0:
        on = widgets.toggle("Run the check", state.CHK_ON, help="Removes tokens and re-runs the model: the red "
                            "tokens one by one up to the flip, then one row per random seed.")
    c1.number_input("K (tokens removed)", 1, 50, help="Remove up to K tokens.", **widgets.bind(state.CHK_K))
    c2.number_input("Random seeds", 1, 20, help="Random orders for the baseline.", **widgets.bind(state.CHK_SEEDS))
    with c3:
        widgets.selectbox("Replacement token", state.CHK_REPL, list(REPLACEMENTS), format_func=REPLACEMENT_NAMES.get,
                          help="The token put in place of a removed one.")
    if not on:
        st.caption("Turn on the check to see whether removing the highlighted tokens changes the answer.")
        return None
    key = _key(handle, att, "curves", *_settings())
    if not _done(key) and not _go(len(att.token_ids), "check:curves:run", "Run the deletion check"):
        return None
    args = (handle.key, handle, tuple(att.token_ids), tuple(att.relevance), tuple(att.special_mask),
            att.target.token_id, att.contrast.token_id, *_settings())
    try:
        with st.spinner("Removing tokens and re-running the model …"):
            curves = _curves(*args, "verdict")
    except FailureLensError as e:
        st.error(safe.plain(e))
        return None
    if len(att.token_ids) > AUTO_TOKENS and _remember(key, True):
        st.rerun()  # the summary at the top of the page was drawn before this result existed
    fast = curves
    box = {"explains": st.success, "partly": st.info, "no_failure": st.info}.get(curves.verdict, st.warning)
    box(f"**{VERDICT_NAMES[curves.verdict]}.** {safe.plain(curves.sentence)}")
    show = widgets.toggle("Show the curves", state.CHK_CURVES, help="Every curve at every k (blue, random and "
                          "insertion rows too): several times the verdict's model runs.")
    if show:
        try:
            with st.spinner("Computing every curve …"):
                curves = _curves(*args, "full")
        except FailureLensError as e:
            st.error(safe.plain(e))
            return fast
    m1, m2, m3 = st.columns([3, 2, 2])
    m1.metric("Verdict", VERDICT_NAMES[fast.verdict], help=HOW_TO_READ)
    m2.metric("Area between curves", "–" if curves.area is None else f"{curves.area:+.2f}",
              help="Mean over k of (random mean − red curve), in logits: how much more removing the heatmap's top "
                   "tokens lowers Δℓ than removing as many random tokens (with the curves).")
    m3.metric("Answer flips after", f"{fast.flip_k} token{'s' if fast.flip_k != 1 else ''}" if fast.flip_k
              else "no flip", help=f"Tokens removed before Δℓ < 0 (tried up to {fast.k_max:d}).")
    st.caption(run_line(fast, curves if show else None))  # md-safe: run_line formats counts and seconds only
    if not show:
        return fast
    chart_col, table_col = st.columns([3, 2], gap="large")
    with chart_col:
        layout.chart(check_charts.deletion_chart(curves, layout.scale()), "deletion_curves",
                     table=check_charts.curves_frame(curves), key="check:curves", stretch=True)
    with table_col:
        layout.table(check_charts.curves_table(curves), "deletion_curves_table", key="check:table")
    st.caption(HOW_TO_READ + f" Replacement: token id {curves.mask_id:d} ({safe.plain(curves.replacement)}).")
    return curves


def run_line(fast: DeletionCurves, full: Optional[DeletionCurves]) -> str:
    """The check's cost in one line: model runs and seconds of the verdict (and of the full curves)."""
    line = f"Verdict from {fast.verdict_rows:d} model runs in {fast.verdict_seconds:.2f} s"
    if fast.random_k:
        line += (f"; random tokens at k = {fast.random_k:d}: Δℓ {fast.random_mean_k:+.2f} ± "
                 f"{fast.random_std_k:.2f} over {len(fast.seeds):d} seeds")
    if full is not None:
        line += f". Curves: {full.forward_rows:d} model runs in {full.verdict_seconds:.2f} s"
    return line + "."


def _go(n_tokens: int, key: str, label: str) -> bool:
    """Short prompts run at once; longer ones on a click (the result stays cached for the next click)."""
    if n_tokens <= AUTO_TOKENS:
        return True
    st.caption(f"This prompt has {n_tokens:d} tokens: the check re-runs the model many times, "  # md-safe: an int
               "so it starts on request.")
    return st.button(label, key=key)  # md-safe: callers build the label from constants and integers


def _split(graph) -> bool:
    return any(s.kind == "mid" for s in graph.stages)


def node_numbers(handle, att: Attribution, graph, stage: int, token: int) -> None:
    """The selected node's relevance beside the predicted and the measured change of Δℓ when it is removed."""
    if att.contrast is None:
        return
    try:
        rep = _ablation(handle.key, handle, tuple(att.token_ids), att.target.token_id, att.contrast.token_id,
                        ((stage, token),), 1, _split(graph), False)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    n = rep.nodes[0]
    st.info(safe.plain(check_charts.node_sentence(n, rep.base_logit_diff)), icon=":material/science:")
    st.caption("The numbers: change of Δℓ when the node's state is set to zero, or to the prompt's mean state; "
               "predicted by the relevance, measured by running the model.")
    cols = st.columns(5)
    cols[0].metric("Relevance R", f"{n.relevance:+.3f}")
    num = lambda v: "–" if v is None else f"{v:+.3f}"  # noqa: E731
    cols[1].metric("Predicted (zero)", num(n.predicted_zero), help=ABLATION_HELP)
    cols[2].metric("Measured (zero)", num(n.measured_zero), help=ABLATION_HELP)
    cols[3].metric("Predicted (mean)", num(n.predicted_mean), help=ABLATION_HELP)
    cols[4].metric("Measured (mean)", num(n.measured_mean), help=ABLATION_HELP)
    if n.block:
        st.caption(f"The {safe.plain(n.block)} block's output at this token: "  # md-safe: num() formats numbers
                   f"predicted {num(n.block_predicted_zero)} / measured {num(n.block_measured_zero)} (zero), "
                   f"predicted {num(n.block_predicted_mean)} / measured {num(n.block_measured_mean)} (mean).")
    for note in rep.notes:
        st.caption(f"ℹ {safe.plain(note)}")


def top_nodes_section(handle, att: Attribution, graph, skip_first: bool) -> None:
    """Top-N nodes ablated at once: predicted vs measured scatter with the correlation, and the table."""
    st.subheader("Do the top nodes matter? Predicted vs measured")
    if att.contrast is None:
        st.info("Node ablation measures Δℓ against a contrast token: choose the logit difference against a contrast.")
        return
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    c1.number_input("Top nodes (by |R|)", 0, 100, help="0 turns the ablation off.", **widgets.bind(state.CHK_NODES))
    top_n = int(state.get(state.CHK_NODES))
    c2.caption(ABLATION_HELP)
    if top_n == 0 or not _go(len(att.token_ids), "check:nodes:run", f"Ablate the top {top_n} nodes"):
        return
    try:
        with st.spinner(f"Ablating the top {top_n:d} nodes …"):
            rep = _ablation(handle.key, handle, tuple(att.token_ids), att.target.token_id, att.contrast.token_id,
                            None, top_n, _split(graph), skip_first)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    r_zero = rep.r_zero if rep.r_zero is not None and math.isfinite(rep.r_zero) else None
    if _remember(_key(handle, att, "r_zero"), r_zero):
        st.rerun(scope="app")  # the summary at the top now says whether the graph explains the failure
    r = check_charts.correlation_text
    cols = st.columns(4 if rep.split else 2)
    cols[0].metric("Correlation (zero ablation)", r(rep.r_zero), help="Pearson r of predicted and measured change.")
    cols[1].metric("Correlation (mean ablation)", r(rep.r_mean))
    if rep.split:
        cols[2].metric("Block outputs (zero)", r(rep.r_block_zero))
        cols[3].metric("Block outputs (mean)", r(rep.r_block_mean))
    st.caption("Each dot is a node; the dashed line is measured = predicted. Red / blue: the node's R supports the "
               "target / the contrast.")
    left, right = st.columns(2, gap="large")
    for col, which in ((left, "zero"), (right, "mean")):
        with col:
            chart = _scatter(_key(handle, att, "nodes", top_n, _split(graph), skip_first), which, layout.scale(), rep)
            layout.chart(chart, f"node_ablation_{which}",
                         key=f"check:scatter:{which}", stretch=True)
    layout.table(check_charts.ablation_frame(rep).round(4), "node_ablation", key="check:nodes")
    for note in rep.notes:
        st.caption(f"ℹ {safe.plain(note)}")


def sweep_section(failures) -> None:
    """Sweeps page: how often the attribution explains the failure, per model, benchmark and category."""
    from engine.cases.checks import R_GRAPH, verdict_table

    st.subheader("Does the attribution explain the failures?")
    table = verdict_table(failures, ("model_label", "benchmark", "outcome"))
    if table.empty:
        st.caption("This run has no causal checks: add `checks: true` under `compute:` in the sweep config.")
        return
    st.caption("Per case: the heatmap's top tokens removed (verdict shares) and the top graph nodes ablated. "
               "Causal outcome: **by input** (M-IA) = explains or partly; **by graph** (NC-IA+M-AG) = otherwise, "
               f"when the top nodes' predicted and measured changes correlate with r ≥ {R_GRAPH}; **no clue** "
               "(NC-IA+AG) = neither. Category: the person's label, else this causal outcome (a guess from the heatmap "
               "alone for a case the sweep did not check).")
    shares = ["by input", "by graph", "no clue", "explains", "fragile", "partly", "not_explained"]
    table = table.rename(columns={"model_label": "model", "outcome": "category"})
    layout.table(table.round(3), "causal_checks", key="sw:checks", column_config={
        **{c: st.column_config.NumberColumn(c.replace("_", " "), format="percent") for c in shares},
        "mean area": st.column_config.NumberColumn(format="%+.2f"),
        "median r (nodes)": st.column_config.NumberColumn(format="%+.2f")})
