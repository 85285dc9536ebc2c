"""Checkpoint evolution: how the Δℓ of failure cases and their relevance by segment change during training."""
import streamlit as st

from engine.present import compare_charts, render
from engine.compare.deltas import checkpoint_labels, evolution_table, mean_by_model, mean_line
from engine.records import FailureLensError
from ui import compare_views as cv
from ui import layout, loaders, state, views, widgets

SOURCES = {"zoo": "Zoo training points", "local": "Local folders", "hub": "Hub model with revisions"}

layout.page("Checkpoint evolution")
points = cv.zoo.zoo_checkpoints()
cv.defaults_once("evolution", {state.EV_POINTS: points, state.EV_CASES: points[0] if points else ""})
st.caption("The same failure cases at several points of one training run. Δℓ = ℓ(target) − ℓ(contrast): "
           "above 0 the checkpoint prefers the wrong token.")

c1, c2 = st.columns([3, 2], gap="large")
with c1:
    source = widgets.radio("Checkpoints", state.EV_SOURCE, list(SOURCES), format_func=SOURCES.get, horizontal=True)
    if source == "zoo":
        widgets.multiselect("Training points (in order)", state.EV_POINTS, points)
    elif source == "local":
        widgets.text_area("Folders, one per line, in training order", state.EV_REVS, height=110,
                          placeholder="/runs/ckpt-1000\n/runs/ckpt-2000")
    else:
        widgets.text_input("Hub id", state.EV_PATH, placeholder="EleutherAI/pythia-160m")
        widgets.text_input("Revisions (branches or tags, in order)", state.EV_REVS, placeholder="step1000, step2000")
with c2:
    names = cv.zoo.zoo_names()
    if names:
        widgets.selectbox("Cases: the zoo failures of", state.EV_CASES, names,
                          help="Target and contrast are matched by text, so any tokenizer works.")
    cv.number("Cases", state.NCASES, 1, 1000, help="How many failure cases (families in turn, shortest first).")
try:
    if source == "zoo":
        chosen = [p for p in points if p in state.get(state.EV_POINTS)]
        checkpoints = checkpoint_labels("zoo", chosen) if chosen else []
    elif source == "local":
        checkpoints = [cp for folder in state.get(state.EV_REVS).splitlines() if folder.strip()
                       for cp in checkpoint_labels(folder)]
    else:
        checkpoints = checkpoint_labels(state.get(state.EV_PATH), state.get(state.EV_REVS)) \
            if state.get(state.EV_PATH).strip() else []
except FailureLensError as e:
    st.error(str(e))
    st.stop()
labels = [cp.label for cp in checkpoints]
if len(checkpoints) < 2:
    st.warning("Pick at least two checkpoints to follow the cases across.")
    st.stop()
if len(set(labels)) < len(labels):
    st.error(f"Two checkpoints share a name ({', '.join(labels)}); give each folder its own name.")
    st.stop()
cases = cv.zoo_cases(f"zoo:{state.get(state.EV_CASES)}" if names else None, state.get(state.NCASES))
if not cases:
    st.warning("No failure cases to follow: the zoo has no failures (run `python -m engine.zoo.train`).")
    st.stop()

# one long engine task (cached): Δℓ and segment relevance of every case at every checkpoint
result = cv.compare([cv.checkpoint_param(cp) for cp in checkpoints], labels, cases, layout.run_task)
if result is None:
    st.stop()
evolution = evolution_table(result.deltas)
mean = mean_line(evolution)

st.subheader("Δℓ across checkpoints")
st.caption("Thin lines: one case each (colour: family). Bold: the mean. Below the dashed line the right token wins.")
layout.chart(compare_charts.evolution_chart(evolution, mean, layout.scale()), "delta_evolution", evolution,
             key="evolution")
st.subheader("Relevance by segment per checkpoint")
st.caption("Mean over cases of each segment's relevance ÷ the case's max |R| (± standard error).")
means = mean_by_model(result.breakdown).rename(columns={"model": "checkpoint"})
layout.chart(compare_charts.segment_bars(means, "checkpoint", layout.scale()), "segments_by_checkpoint",
             result.breakdown, key="segments")

st.subheader("One case at one checkpoint")
by_id = {c.case_id: c for c in cases}
p1, p2 = st.columns([2, 3], gap="large")
with p1:
    case = by_id[widgets.selectbox("Case", state.EV_CASE, list(by_id), format_func=lambda i: cv.case_label(by_id[i]))]
with p2:
    point = st.select_slider("Checkpoint", labels, **widgets.choice(state.EV_POINT, labels))
handle = loaders.model(cv.checkpoint_param(checkpoints[labels.index(point)]))
att = handle and cv.case_attribution(handle, case)
if not att:
    st.stop()
mask = views.shown(att)
values = views.colour_values(att, mask)
st.caption(f"{point}: Δℓ {att.logit_diff:+.3f} · conservation {att.conservation:.2f}")
views.heatmap(att, mask, values)
title = f"{point} · {case.case_id}: {att.target.text!r} vs {att.contrast.text!r}"
layout.downloads(f"heatmap_{point}_{case.case_id}", key="heatmap", extra={
    "HTML": (lambda: render.heatmap_html(att.tokens, values, att.relevance, mask, title=title, target=att.target.text,
                                         contrast=att.contrast.text, norm=state.get(state.NORM),
                                         notes=[f"Prompt: {case.prompt}", f"Δℓ = {att.logit_diff:+.3f}"]),
             "text/html", "html")})
