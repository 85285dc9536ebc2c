"""Heatmap: which prompt tokens push the model towards the wrong token (red) or the right one (blue)."""
import pandas as pd
import streamlit as st

from engine.cases.segments import assign_segments, segment_relevance
from engine.model_spec import ModelSpec
from engine.present import charts, render
from ui import layout, loaders, state, widgets
from ui.sections import check_views, inputs, long_views, story, views, whatif_views

layout.page("Heatmap")
handle = loaders.active_model()
if handle is None:
    st.stop()

with layout.controls("Prompt and tokens"):
    left, right = st.columns([3, 2], gap="large")
    with left:
        prompt = inputs.prompt_picker()
    with right:
        inputs.token_inputs(handle)

spec = ModelSpec.parse(state.active_param())
views.unknown_words(handle.tokenizer, prompt, spec.title)
# one engine call
att = loaders.view_attribution(handle, prompt)
case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
spans = dict(case.segments) if case is not None and case.prompt == prompt else {}
labels = assign_segments(att.offsets, spans, att.special_mask)

if not state.get(state.PRESENT):  # a room sees the numbers, the story and the heatmap on one screen
    st.divider()
views.header(att, expected=views.shipped_logit_diff(att, case, spec.zoo_name, prompt))
# the answer first: the summary now, drawn again with the causal check's category once the check below the
# heatmap has run; the exports (whose notes quote the summary) go in their place after it
summary_box = st.empty()
with summary_box.container():
    story_, figctx = story.show(att, prompt, r_zero=check_views.known_r_zero(handle, att))
main, side = st.columns([3, 2], gap="large")
with side:
    st.subheader("Next-token candidates")
    inputs.topk_pills(att)
    layout.table(inputs.topk_table(att), "topk", key="topk")
with main:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.subheader("Token relevance")
        display = st.popover("Display", icon=":material/tune:", help="Hide tokens, choose the colour scale.")
    with display:
        widgets.toggle("Hide first token", state.HIDE_FIRST, help="The first token often soaks up relevance (a sink).")
        widgets.toggle("Hide special tokens", state.HIDE_SPECIAL, help="BOS and template tokens such as <q> and <a>.")
        widgets.selectbox("Colour scale", state.NORM, list(render.NORMS), format_func=render.NORMS.get)
    mask = views.shown(att)
    if not any(mask):
        st.warning("Every token is hidden. Turn off 'Hide first token' or 'Hide special tokens'.")
        st.stop()
    values = views.colour_values(att, mask)
    long_views.heatmap(att, prompt, mask, values)
    exports = st.container()

check = check_views.page_curves(handle, att)  # after the answer is on screen: its verdict completes the summary
if check is not None:
    with summary_box.container():
        story_, figctx = story.show(att, prompt, check=check, r_zero=check_views.known_r_zero(handle, att))
with exports:
    versus = f" vs {att.contrast.text!r}" if att.contrast else f" ({att.mode})"
    title = f"{spec.title}: {att.target.text!r}{versus}"
    token_chart, crop_notes = story.token_export(att, values, mask)
    notes = list(story_.sentences) + [f"Prompt: {prompt}", f"Conservation = {att.conservation:.3f}"] + \
        ([f"Δℓ = {att.logit_diff:+.3f}"] if att.logit_diff is not None else [])
    layout.downloads("heatmap", chart=token_chart, key="heatmap", figure=(figctx, "Token relevance", crop_notes),
                     extra={
        "HTML": (lambda: render.heatmap_html(att.tokens, values, att.relevance, mask, title=title,
                                             target=att.target.text,
                                             contrast=att.contrast.text if att.contrast else None,
                                             norm=state.get(state.NORM), notes=notes), "text/html", "html"),
        "LaTeX": (lambda: story.latex_notes(story_) + render.heatmap_latex(att.tokens, values, mask, title=title),
                  "application/x-tex", "tex"),
        "CSV": (lambda: render.heatmap_csv(att.tokens, att.token_ids, att.relevance, values, mask, labels,
                                           att.special_mask), "text/csv", "csv"),
    })
    story.slides(handle, att, prompt, story_, figctx, key="heatmap", check=check)

seg_col, layer_col = st.columns([2, 3], gap="large")
with seg_col:
    st.subheader("Relevance by segment")
    seg = segment_relevance(att.relevance, labels)
    if not spans:
        st.caption("Own prompts have no marked segments: every ordinary token counts as Query.")
    seg_df = pd.DataFrame([{"segment": k, "relevance": round(v, 4)} for k, v in seg.items()])
    layout.chart(charts.segment_chart(seg, scale=layout.scale()), "segments", table=seg_df, key="segments",
                 figure=(figctx, "Relevance by segment", ()))
with layer_col:
    st.subheader("Relevance through the layers")
    st.caption("Each row is the residual stream after a layer (bottom: the embeddings). Colour: R / max |R|.")
    layer_df = pd.DataFrame(att.layer_relevance, columns=[f"{i}:{t}" for i, t in enumerate(att.tokens)])
    layer_df.insert(0, "stage", ["emb"] + [f"L{i}" for i in range(len(att.layer_relevance) - 1)])
    layout.chart(charts.layer_chart(att.tokens, att.layer_relevance, mask, scale=layout.scale()), "layers",
                 table=layer_df, key="layers", figure=(figctx, "Relevance through the layers", ()))

curves = check_views.heatmap_section(handle, att)
whatif_views.section(handle, att, prompt, curves)
views.compare(att, prompt)
