"""Scaling: do larger models fix the reference model's failures, and where does their relevance move?"""
import pandas as pd
import streamlit as st

from engine.present import compare_charts
from engine.compare.align import align_attributions
from engine.compare.deltas import ecdf, mean_by_model, scaling_table
from engine.records import FailureLensError
from ui import compare_views as cv
from ui import layout, loaders, state, widgets

layout.page("Model scaling")
sizes = [f"zoo:{s}" for s in cv.zoo.zoo_sizes()]
cv.defaults_once("scaling", {state.CMP_MODELS: sizes, state.CMP_REF: sizes[0] if sizes else ""})
st.caption("The same failure cases in several models. Δℓ = ℓ(target) − ℓ(contrast): above 0 the model still "
           "prefers the wrong token. Cases are the reference model's zoo failures.")

c1, c2, c3 = st.columns([3, 2, 2], gap="large")
with c1:
    options = cv.model_options(state.get(state.CMP_MODELS))
    chosen = widgets.multiselect("Models", state.CMP_MODELS, options, format_func=cv.label,
                                 help="Zoo sizes and the models loaded on the Models page.")
with c2:
    if len(chosen) >= 2:
        ref = widgets.selectbox("Reference model", state.CMP_REF, chosen, format_func=cv.label,
                                help="Its failures are the cases; x axis of the scatter.")
    cv.number("Cases", state.NCASES, 1, 1000, help="How many failure cases (families in turn, shortest first).")
with c3:
    cv.number("Corrected: Δℓ(reference) above", state.CORR_X, -50.0, 50.0, step=0.5)
    cv.number("… and Δℓ(other model) below", state.CORR_Y, -50.0, 50.0, step=0.5)
if len(chosen) < 2:
    st.warning("Pick at least two models to compare (for example two zoo sizes).")
    st.stop()
cases = cv.zoo_cases(ref, state.get(state.NCASES))
if not cases:
    st.warning("No failure cases to compare: the zoo has no failures (run `python -m engine.zoo.train`).")
    st.stop()

# one long engine task (cached): Δℓ and segment relevance of every case in every model
order = [ref] + [p for p in chosen if p != ref]
names = [cv.label(p) for p in order]
result = cv.compare(order, names, cases, layout.run_task)
if result is None:
    st.stop()
x_min, y_max = state.get(state.CORR_X), state.get(state.CORR_Y)
table = scaling_table(names[0], result.deltas, corrected=(x_min, y_max))

st.subheader("Δℓ in the reference vs each other model")
summary = table.groupby("model", sort=False).agg(cases=("case_id", "size"), corrected=("corrected", "sum"),
                                                 mean_delta=("delta", "mean")).reset_index()
cols = st.columns(len(summary) + 1)
cols[0].metric(f"mean Δℓ in {names[0]}", f"{table['delta_ref'].mean():+.2f}")
for col, row in zip(cols[1:], summary.itertuples()):
    col.metric(f"corrected by {row.model}", f"{row.corrected} of {row.cases}",
               delta=f"mean Δℓ {row.mean_delta:+.2f}", delta_color="off")
left, right = st.columns(2, gap="large")
with left:
    st.caption(f"Shaded: corrected (Δℓ > {x_min:g} in {names[0]}, < {y_max:g} in the other). Dashed: y = x.")
    layout.chart(compare_charts.scaling_scatter(table, names[0], (x_min, y_max), layout.scale()), "scaling_scatter",
                 table, key="scatter")
with right:
    st.caption("Cumulative distribution of Δℓ per model (left of the dashed line: the right token wins).")
    curves = pd.concat([ecdf(d.delta for d in deltas).assign(model=name) for name, deltas in result.deltas.items()],
                       ignore_index=True)
    layout.chart(compare_charts.ecdf_chart(curves, layout.scale()), "delta_ecdf", curves, key="ecdf")
with st.expander("Scaling table (one row per case and model; notes say which token was scored)"):
    layout.table(table, "scaling_table", key="scaling_table")

st.subheader("Relevance by segment")
st.caption("Mean over cases of each segment's relevance ÷ the case's max |R| (± standard error).")
means = mean_by_model(result.breakdown)
layout.chart(compare_charts.segment_bars(means, "model", layout.scale()), "segments_by_model", result.breakdown,
             key="segments")

st.subheader("One case in two models")
by_id = {c.case_id: c for c in cases}
p1, p2 = st.columns([3, 1])
with p1:
    case = by_id[widgets.selectbox("Case", state.CMP_CASE, list(by_id), format_func=lambda i: cv.case_label(by_id[i]))]
with p2:
    other = widgets.selectbox("Compare with", state.CMP_OTHER, order[1:][::-1], format_func=cv.label)
handle_a, handle_b = loaders.model(order[0]), loaders.model(other)
att_a = handle_a and cv.case_attribution(handle_a, case)
att_b = handle_b and cv.case_attribution(handle_b, case)
if not (att_a and att_b):
    st.stop()
try:
    alignment = align_attributions(case.prompt, att_a, att_b)
except FailureLensError as e:
    st.error(str(e))
    st.stop()
cv.aligned_heatmaps(alignment, names[0], cv.label(other), att_a, att_b)
st.caption("Tokens of the two models are grouped by the characters they cover, so the rows line up even when the "
           "tokenizers differ. How they were aligned:")
layout.table(alignment.table(), f"alignment_{case.case_id}", key="alignment")
