"""Checkpoint evolution: what training fixed and what it broke, for the case at hand and a set of cases."""
import streamlit as st

from engine.compare import verdicts as V
from engine.compare.deltas import checkpoint_labels, evolution_table, mean_by_model, mean_line
from engine.compare.robust import Y_SCALES, fences, outliers
from engine.present import compare_charts, set_deck
from engine.records import FailureLensError
from ui import layout, safe, state, widgets
from ui.sections import case_views as hv
from ui.sections import compare_views as cv

SOURCES = {"zoo": "Zoo training points", "local": "Local folders", "hub": "Hub model with revisions"}

layout.page("Checkpoint evolution")
series = cv.zoo.checkpoint_series()
first_series = list(series)[-1] if series else ""
cv.defaults_once("evolution", {state.EV_SERIES: first_series, state.EV_POINTS: series.get(first_series, []),
                               state.EV_CASES: hv.LAST})
st.caption("The same cases at several points of one training run. Each checkpoint's own next token decides: "
           "**fixed**, **still wrong** or **different wrong answer**. Δℓ = ℓ(target) − ℓ(contrast): above 0 the "
           "checkpoint prefers the wrong token.")

source = widgets.radio("Checkpoints", state.EV_SOURCE, list(SOURCES), format_func=SOURCES.get, horizontal=True)
case_model = state.get(state.CASE).partition("/")[0] if state.get(state.CASE) else ""
shown = state.get(state.EV_SERIES) if source == "zoo" else ""
if source == "zoo" and shown and case_model and case_model != shown:  # whose training this is, said first
    if case_model in series:
        st.warning(f"The case at hand comes from **zoo:{safe.plain(case_model)}**, but the series shown is the "
                   f"training of **zoo:{safe.plain(shown)}**: pick zoo:{safe.plain(case_model)} under Series to "
                   "follow the case's own model.")
    else:
        st.info(f"**zoo:{safe.plain(case_model)}**, the model the case at hand comes from, has no saved training "
                f"checkpoints. Shown instead: the training of **zoo:{safe.plain(shown)}**, another model of the "
                "same zoo, on the same cases.")
try:
    if source == "zoo":
        if not series:
            st.warning("The zoo has no training checkpoints (run `python -m engine.zoo.train`).")
            st.stop()
        c1, c2 = st.columns([1, 3])
        size = c1.selectbox("Series", list(series), format_func=lambda s: f"zoo:{s} ({len(series[s])} points)",
                            **widgets.choice(state.EV_SERIES, list(series)))
        with c2:
            widgets.multiselect("Training points (in order)", state.EV_POINTS, series[size])
        chosen = [p for p in series[size] if p in state.get(state.EV_POINTS)]
        checkpoints = checkpoint_labels("zoo", chosen) if chosen else []
    elif source == "local":
        widgets.text_area("Folders, one per line, in training order", state.EV_REVS, height=110,
                          placeholder="/runs/ckpt-1000\n/runs/ckpt-2000")
        checkpoints = [cp for folder in state.get(state.EV_REVS).splitlines() if folder.strip()
                       for cp in checkpoint_labels(folder)]
    else:
        widgets.text_input("Hub id", state.EV_PATH, placeholder="EleutherAI/pythia-160m")
        widgets.text_input("Revisions (branches or tags, in order)", state.EV_REVS, placeholder="step1000, step2000")
        checkpoints = checkpoint_labels(state.get(state.EV_PATH), state.get(state.EV_REVS)) \
            if state.get(state.EV_PATH).strip() else []
except FailureLensError as e:
    st.error(safe.plain(e))
    st.stop()
labels = [cp.label for cp in checkpoints]
if len(checkpoints) < 2:
    st.warning("Pick at least two checkpoints to follow the cases across.")
    st.stop()
if len(set(labels)) < len(labels):
    st.error(f"Two checkpoints share a name ({safe.plain(', '.join(labels))}); give each folder its own name.")
    st.stop()
params = [cv.checkpoint_param(cp) for cp in checkpoints]
whose_run = f" of zoo:{size}" if source == "zoo" else ""  # exports name the series (local / hub labels name it)

# ---- 1. the case at hand across the checkpoints: verdicts and a film strip
st.subheader("The case at hand")
here = hv.case_at_hand()
cases_here = ([here] if here else []) + hv.add_cases(state.EV_ADD, here)
if cases_here:
    if here:
        st.markdown(f"From the Heatmap page: {hv.describe(here)}")  # md-safe: describe uses safe
    hv.verdicts(params, labels, cases_here, "ev_here", series=True)
    st.markdown("**Film strip**: the same prompt at every checkpoint, one row each.")
    by_id = {f"{c.case_id}|{i}": c for i, c in enumerate(cases_here)}
    pick = widgets.selectbox("Case shown", state.EV_CASE, list(by_id), format_func=lambda k: by_id[k].case_id) \
        if len(by_id) > 1 else next(iter(by_id))
    hv.film_strip(params, labels, by_id[pick], "evolution", series=True)

# ---- 2. the set view
st.subheader("What training fixed and what it broke")
zoo_names = cv.zoo.zoo_names()
pick_from = [hv.LAST] + zoo_names + [p for p in state.model_params()
                                     if cv.label(p).removeprefix("zoo:") not in zoo_names]


def whose_label(n: str) -> str:
    if n == hv.LAST:
        return f"failing at the last checkpoint ({labels[-1]})"
    return f"the failures of {'zoo:' + n if n in zoo_names else cv.label(n)}"



c1, c2, c3 = st.columns([2, 1, 2], gap="large")
with c1:
    whose = widgets.selectbox("Cases", state.EV_CASES, pick_from, format_func=whose_label,
                              help="Failing at the last checkpoint asks what training fixed and broke "
                                   "without building improvement in.")
with c2:
    cv.number("Cases", state.NCASES, 1, 1000, help="How many failure cases (families in turn, shortest first).")
with c3:
    y_scale = widgets.radio("Chart scale", state.Y_SCALE, list(Y_SCALES), format_func=Y_SCALES.get, horizontal=True)
n = state.get(state.NCASES)
cases = hv.failing_cases(params[-1] if whose == hv.LAST else f"zoo:{whose}" if whose in zoo_names else whose, n)
if not cases:
    st.warning("No failure cases to follow: none of the zoo's failure cases fails here.")
    st.stop()
result = cv.compare(params, labels, cases, layout.run_task)  # one long task (cached): Δℓ and segment relevance
if result is None:
    st.stop()
rows = V.verdicts([d for name in labels for d in result.deltas[name]], cases)
hv.training_summary(rows, labels[0], labels[-1])
slides = st.container()  # the set view's deck, filled once every chart below is known
layout.chart(compare_charts.verdict_bars(V.counts(rows, labels), layout.scale(), series=True, by="checkpoint"),
             "verdicts_by_checkpoint", V.table(rows), key="verdicts_set",
             figure=f"What became of the failures over training{whose_run} ({labels[0]} → {labels[-1]})")
with st.expander("Verdict table (one row per case and checkpoint)"):
    layout.table(V.table(rows), "verdicts_by_checkpoint_table", key="verdicts_set_table")

evolution = evolution_table(result.deltas)
st.caption("Δℓ per case (thin lines, colour: family) and the mean (bold; dots in the checkpoint's colour). Below the "
           "dashed line the right token beats the wrong one.")
layout.chart(compare_charts.evolution_chart(evolution, mean_line(evolution), layout.scale(), y_scale),
             "delta_evolution", evolution, key="evolution",
             figure=f"Δℓ over training{whose_run}, {labels[0]} → {labels[-1]} (> 0: wrong answer)")
st.subheader("Relevance by segment per checkpoint")
st.caption("Mean over cases of each segment's relevance ÷ the case's max |R| (± standard error).")
means = mean_by_model(result.breakdown).rename(columns={"model": "checkpoint"})
layout.chart(compare_charts.segment_bars(means, "checkpoint", layout.scale(), y_scale, series=True),
             "segments_by_checkpoint", result.breakdown, key="segments",
             figure=f"Relevance by segment per checkpoint{whose_run} (> 0: toward the wrong answer)")
with slides:
    cv.set_slides(lambda: set_deck.evolution_view(rows, labels, evolution, mean_line(evolution), means, y_scale,
                                                  whose_run), "evolution", series=True)
if y_scale == "clip":
    far = outliers(evolution, "delta", fences(evolution["delta"]), ["case_id", "family", "checkpoint"])
    far_seg = outliers(means, "mean", fences(means["mean"]), ["checkpoint", "segment", "n"])
    cv.outside_the_charts([("Δℓ value(s)", far, "delta_outliers"), ("segment mean(s)", far_seg, "segment_outliers")])
