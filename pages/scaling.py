"""Scaling: does a bigger model fix the case at hand (and others), and where does its relevance move?"""
import pandas as pd
import streamlit as st

from engine.compare import verdicts as V
from engine.compare.deltas import ecdf, mean_by_model, scaling_table
from engine.compare.robust import Y_SCALES, fences, outliers
from engine.present import compare_charts, set_deck
from ui import layout, safe, state, widgets
from ui.sections import case_views as hv
from ui.sections import compare_views as cv

layout.page("Model scaling")
sizes = [f"zoo:{s}" for s in cv.zoo.zoo_sizes()]
cv.defaults_once("scaling", {state.CMP_MODELS: sizes, state.CMP_REF: sizes[0] if sizes else ""})
st.caption("Does a bigger model fix this failure? Each model's own next token decides: **fixed** (the right token), "
           "**still wrong** (the same wrong token) or **different wrong answer**. "
           "Δℓ = ℓ(target) − ℓ(contrast) on the same token pair: above 0 the wrong token beats the right one.")

options = cv.model_options(state.get(state.CMP_MODELS))
chosen = widgets.multiselect("Models", state.CMP_MODELS, options, format_func=cv.label,
                             help="Zoo sizes and the models loaded on the Models page.")
if len(chosen) < 2:
    st.warning("Pick at least two models to compare (for example two zoo sizes).")
    st.stop()
names = [cv.label(p) for p in chosen]

# ---- 1. the case at hand (from the Heatmap page), and any cases added to it
st.subheader("The case at hand")
here = hv.case_at_hand()
more = hv.add_cases(state.CMP_ADD, here)
cases_here = ([here] if here else []) + more
if cases_here:
    if here:
        st.markdown(f"From the Heatmap page: {hv.describe(here)}")  # md-safe: describe uses safe
    hv.verdicts(chosen, names, cases_here, "here")
    st.markdown("**Row over row**: the same prompt in every model, tokens aligned by the characters they cover.")
    by_id = {f"{c.case_id}|{i}": c for i, c in enumerate(cases_here)}
    pick = widgets.selectbox("Case shown", state.CMP_CASE, list(by_id), format_func=lambda k: by_id[k].case_id) \
        if len(by_id) > 1 else next(iter(by_id))
    hv.film_strip(chosen, names, by_id[pick], "scaling")

# ---- 2. the set view: the reference model's failures in every model
st.subheader("The set view")
c1, c2 = st.columns([2, 1], gap="large")
with c1:
    ref = widgets.selectbox("Cases: the failures of", state.CMP_REF, chosen, format_func=cv.label,
                            help="Its zoo failures are the cases; x axis of the scatter.")
with c2:
    cv.number("Cases", state.NCASES, 1, 1000, help="How many failure cases (families in turn, shortest first).")
cases = cv.zoo_cases(ref, state.get(state.NCASES))
if not cases:
    st.warning("No failure cases to compare: the zoo has no failures (run `python -m engine.zoo.train`).")
    st.stop()
order = [ref] + [p for p in chosen if p != ref]
labels = [cv.label(p) for p in order]
result = cv.compare(order, labels, cases, layout.run_task)  # one long task (cached): Δℓ and segment relevance
if result is None:
    st.stop()
rows = V.verdicts([d for name in labels for d in result.deltas[name]], cases)
st.caption(f"{len(cases)} failure cases of {safe.plain(labels[0])} (by construction still wrong there). "
           "The counts below, the verdict bars and the scatter's shapes all come from the same verdicts.")
hv.headline([r for r in rows if r.model != labels[0]], labels[1:], single=False)
slides = st.container()  # the set view's deck, filled once every chart below is known
layout.chart(compare_charts.verdict_bars(V.counts(rows, labels), layout.scale()), "verdicts_set", V.table(rows),
             key="verdicts_set", figure=f"What became of {len(cases)} failures of {labels[0]} in the other models")
o1, o2, o3, o4 = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
with o4:
    y_scale = widgets.radio("Chart scale", state.Y_SCALE, list(Y_SCALES), format_func=Y_SCALES.get, horizontal=True,
                            help="One far-out case can squeeze every other point into a corner: a symmetric log "
                                 "keeps every point, clipping leaves out those beyond 3 × the interquartile range "
                                 "and lists them below the charts.")
with o1:
    overlay = widgets.toggle("Show the old threshold region on the scatter", state.OVERLAY,
                             help="Shade Δℓ(reference) > x and Δℓ(other) < y, as earlier versions counted "
                                  "'corrected'. The counts above do not use it.")
if overlay:
    with o2:
        cv.number("Δℓ(reference) above", state.CORR_X, -50.0, 50.0, step=0.5)
    with o3:
        cv.number("… and Δℓ(other) below", state.CORR_Y, -50.0, 50.0, step=0.5)
corrected = (state.get(state.CORR_X), state.get(state.CORR_Y))
table = scaling_table(labels[0], result.deltas, corrected=corrected)
verdict_of = {(r.case_id, r.model): r.verdict for r in rows}
table.insert(5, "verdict", [verdict_of.get((c, m), V.NOT_SCORED) for c, m in zip(table["case_id"], table["model"])])
if not overlay:
    table = table.drop(columns="corrected")
left, right = st.columns(2, gap="large")
with left:
    st.caption("Δℓ in the reference vs each other model; shape: verdict. Dashed: y = x.")
    layout.chart(compare_charts.scaling_scatter(table, labels[0], corrected if overlay else None, layout.scale(),
                                                y_scale),
                 "scaling_scatter", table, key="scatter",
                 figure=f"Δℓ in {labels[0]} vs the other models ({len(cases)} failure cases; > 0: wrong answer)")
with right:
    st.caption("Cumulative distribution of Δℓ per model (left of the dashed line the right token beats the wrong "
               "one, though a third token may still win).")
    curves = pd.concat([ecdf(d.delta for d in deltas).assign(model=name) for name, deltas in result.deltas.items()],
                       ignore_index=True)
    layout.chart(compare_charts.ecdf_chart(curves, layout.scale()), "delta_ecdf", curves, key="ecdf",
                 figure=f"How far each model prefers the wrong answer ({len(cases)} failures of {labels[0]})")
with st.expander("Scaling table (one row per case and model; notes say which token was scored)"):
    layout.table(table, "scaling_table", key="scaling_table")

st.subheader("Relevance by segment")
st.caption("Mean over cases of each segment's relevance ÷ the case's max |R| (± standard error).")
means = mean_by_model(result.breakdown)
layout.chart(compare_charts.segment_bars(means, "model", layout.scale(), y_scale),
             "segments_by_model", result.breakdown, key="segments",
             figure="Relevance by segment per model (> 0: toward the wrong answer)")
with slides:
    cv.set_slides(lambda: set_deck.scaling_view(rows, labels, table, curves, means, y_scale), "scaling")
if y_scale == "clip":
    far = compare_charts.scatter_outliers(table)
    far_seg = outliers(means, "mean", fences(means["mean"]), ["model", "segment", "n"])
    cv.outside_the_charts([("scatter point(s)", far, "scatter_outliers"),
                           ("segment mean(s)", far_seg, "segment_outliers")])
