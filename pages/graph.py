"""Graph: how relevance flows from the prompt tokens up through the layers to the prediction."""
import json
from typing import Optional

import pandas as pd
import streamlit as st

from engine.graph.drilldown import node_drilldown
from engine.graph.export import node_id, to_graphml, to_json
from engine.graph.metrics import graph_metrics
from engine.graph.prune import layer_presets, prune, relative_settings, stage_layout
from engine.model_spec import ModelSpec
from engine.present import charts, glossary, render, summary
from ui import layout, loaders, safe, state, widgets
from ui.graph_component import live_graph
from ui.sections import check_views, inputs, long_views, story, views, whatif_views

layout.page("Graph")
handle = loaders.active_model()
if handle is None:
    st.stop()
# presentation mode: the folded controls share one row and the caption is left out (the summary says it), so the
# drawing, which ends on the first screen, gets more of its height (it was squeezed to ~290 px at 1280x720)
present = bool(state.get(state.PRESENT))
top = st.columns(2) if present else (st, st)
with top[0].expander("Prompt and tokens", expanded=not state.get(state.PROMPT)):
    prompt = inputs.prompt_picker()
    inputs.token_inputs(handle)
spec = ModelSpec.parse(state.active_param())
views.unknown_words(handle.tokenizer, prompt, spec.title)
att = loaders.view_attribution(handle, prompt)
versus = f" vs contrast {att.contrast.text!r}" if att.contrast else ""
if not present:
    st.caption(f"Explaining target {views.md(repr(att.target.text))}{views.md(versus)} "
               f"after {len(att.tokens)} tokens. "
               "Red: supports the target; blue: supports the contrast. Size: |R| of a node; width: |w| of an edge. "
               "The top node of the last token is where the model says its word.")
check = check_views.page_curves(handle, att)  # the causal checks decide the category, as on the Heatmap page
story_, figctx = story.show(att, prompt, full=False, check=check, r_zero=check_views.known_r_zero(handle, att))

with top[1] if present else st.container():  # st.container(): `with st` is no context
    controls = layout.controls("Rows")
c1, c2 = controls.columns(2, gap="large")
with c2:
    split = widgets.toggle("Split Attention / MLP", state.SPLIT, help="Adds a row after each attention block.")
with c1:
    layout_stages = stage_layout(handle.n_layers, split)
    presets = layer_presets(handle.n_layers, split)
    preset = widgets.selectbox("Layers", state.LAYERS, list(presets) + ["Custom"])
    if preset == "Custom":
        widgets.multiselect("Stages", state.STAGES, list(range(len(layout_stages))),
                            format_func=lambda i: glossary.stage_label(layout_stages[i].name))
    stages = sorted(state.get(state.STAGES)) if preset == "Custom" else presets[preset]
if len(stages) < 2:
    st.warning("Nothing to draw: choose at least two stages (layers) to see edges between them.")
    st.stop()

# one engine call (cached by content; pruning below never recomputes it)
full = list(range(len(layout_stages)))
graph, key = loaders.graph(handle, prompt, att, None if stages == full else stages, split, layout.run_task)
if graph is None:
    st.stop()
for note in graph.notes:
    st.caption(f"ℹ {safe.plain(note)}")
if len(graph.stages) != len(layout_stages):  # the engine turned the split off for this architecture
    stages = list(range(len(graph.stages)))
graph = long_views.grouped_graph(graph, key, att, prompt)  # supernodes for long prompts


LIVE = "graph:live"  # the live graph component's key; its value is the vis id "<stage>:<token>" last clicked


def _take_click(graph, ids: dict, clicked: Optional[str]) -> bool:
    """A new click in the drawing selects that node, as choosing it in the list would; True when it did."""
    if not clicked or clicked == state.get(state.GRAPH_CLICK):
        return False
    state.put(state.GRAPH_CLICK, clicked)
    try:
        stage, token = (int(x) for x in str(clicked).split(":"))
        name = node_id(graph, stage, token)
    except (ValueError, IndexError):  # not a node of this drawing (e.g. a stale click after a new prompt)
        return False
    if name not in ids or name == state.get(state.NODE):
        return False
    state.put(state.NODE, name)
    return True


@st.fragment
def pruned_view(graph, stages: list[int], title: str) -> None:
    """Pruning controls, the drawing, node details and metrics. A fragment: moving a pruning slider re-runs only
    this part (prune + draw), not the prompt, model and graph lookups above it."""
    try:
        _pruned_view(graph, stages, title)
    finally:  # a fragment re-run does not reach app.py's sync at the end of the script
        state.sync_url()


def _pruned_view(graph, stages: list[int], title: str) -> None:
    long_views.follow_grouping()
    c3, c4 = layout.controls("Pruning").columns(2, gap="large")
    with c4:
        hide_bos = widgets.toggle("Hide the first token (BOS)", state.HIDE_BOS)
        connected = widgets.toggle("Only what reaches the prediction", state.CONNECTED,
                                   help="Keep the last token's top node and the nodes with a path of kept edges "
                                        "into it.")
    with c3:
        mode = widgets.radio("Pruning", state.PRUNE, ["cum_mass", "global"], horizontal=True,
                             format_func={"cum_mass": "Cumulative mass", "global": "Global threshold"}.get)
        if mode == "cum_mass":
            widgets.slider("Edge mass kept per layer", state.TOP_P, 0.05, 1.0, 0.05,
                           help="Keep the strongest edges until they hold this share of each layer's total |w|.")
        else:
            widgets.slider("Edge threshold (share of the strongest edge)", state.EDGE_THR, 0.0, 1.0, 0.01)
        widgets.slider("Node threshold (share of the largest |R|)", state.NODE_THR, 0.0, 1.0, 0.01)

    settings = relative_settings(graph, stages, mode=mode, top_p=state.get(state.TOP_P),
                                 edge_share=state.get(state.EDGE_THR), node_share=state.get(state.NODE_THR),
                                 connected=connected, hide_first_token=hide_bos)
    settings = long_views.capped(graph, settings, stages)
    pruned = prune(graph, settings, stages)
    whatif_views.show_graph(att, graph, pruned)  # a case file saved now keeps the graph as shown
    visible = pruned.visible()
    if not visible:
        st.warning("Every node is pruned away. Lower the node threshold or keep more edge mass.")
        return
    ids = {node_id(graph, s, t): (s, t) for s, t in sorted(visible, key=lambda n: -abs(graph.node_relevance[n]))}
    selected = ids.get(state.get(state.NODE))
    height = int((90 * len(stages) + 90) * layout.scale())
    clicked = live_graph(render.graph_data(graph, pruned, selected=selected), height, key=LIVE,
                         present=bool(state.get(state.PRESENT)))
    if _take_click(graph, ids, clicked):
        st.rerun(scope="fragment")  # draw the selection and its details
    n_edges = sum(int(m.sum()) for m in pruned.edge_masks)
    st.caption(f"{len(visible)} nodes, {n_edges:d} edges shown. Hover a node or edge for its numbers; click a node "
               "(or pick it in the list below) for its details.")
    shown_as = f"Pruned as shown: {len(visible)} nodes, {n_edges} edges."
    layout.downloads("graph", key="graph", chart=lambda: charts.graph_chart(graph, pruned),
                     figure=(figctx, "Attribution graph through the layers", [shown_as]), extra={
        "HTML": (lambda: render.graph_html(graph, pruned, title=title, intro_html=summary.to_html(story_)),
                 "text/html", "html"),
        "JSON": (lambda: json.dumps({**to_json(graph, pruned), "summary": story_.to_dict()}, ensure_ascii=False),
                 "application/json", "json"),
        "GraphML": (lambda: to_graphml(graph, pruned), "application/xml", "graphml"),
    })
    story.slides(handle, att, prompt, story_, figctx, graph=graph, pruned=pruned, graph_note=shown_as, key="graph",
                 check=check)

    st.subheader("Node details")
    names = [""] + list(ids)
    widgets.selectbox("Node (largest |R| first)", state.NODE, names,
                      format_func=lambda n: "choose a node …" if not n else
                      f"{graph.stages[ids[n][0]].label} · {graph.where(ids[n][1])} {graph.tokens[ids[n][1]]!r} · "
                      f"R = {graph.node_relevance[ids[n]]:+.4f}")
    if state.get(state.NODE) in ids:
        long_views.supernode(graph, *ids[state.get(state.NODE)])
        check_views.node_numbers(handle, att, graph, *ids[state.get(state.NODE)])  # the node in words, then numbers
        detail = node_drilldown(graph, *ids[state.get(state.NODE)])
        with st.expander("Details: hidden dimensions, MLP neurons, incoming edges"):
            d1, d2, d3 = st.columns([1, 1, 2], gap="medium")
            with d1:
                st.markdown("**Top hidden dimensions**")
                layout.table(detail.top_dims, "node_dims", key="dims")
            with d2:
                st.markdown("**Top MLP neurons**")
                if len(detail.top_neurons):
                    layout.table(detail.top_neurons, "node_neurons", key="neurons")
                else:
                    st.caption("Only the rows after a whole layer have MLP neurons.")
            with d3:
                st.markdown("**Incoming edges** (per-head split where available)")
                rows = {s.name: s.label for s in graph.stages}
                if len(detail.in_edges):
                    layout.table(detail.in_edges.assign(source=detail.in_edges["source"].map(rows)), "node_in_edges",
                                 key="in_edges")
                else:
                    st.caption("No incoming edges: this is a row of the embeddings, or every edge into it is pruned.")

    check_views.top_nodes_section(handle, att, graph, hide_bos)
    st.subheader("Per-layer metrics")
    metrics = graph_metrics(graph, pruned, skip_first_token=hide_bos)
    m1, m2 = st.columns(2)
    m1.metric("Input entropy", f"{metrics.input_entropy:.3f}",
              help="0: one token holds all relevance; 1: evenly spread.")
    m2.metric("Early / late relevance", f"{metrics.early_late:.3f}",
              help="Relevance in the first half of the prompt ÷ the second half.")
    rows = {s.name: s.label for s in graph.stages}
    per_stage = metrics.per_stage.assign(stage=metrics.per_stage["stage"].map(lambda n: rows.get(n, n)))
    layout.table(per_stage, "graph_metrics", key="metrics")
    g1, g2 = st.columns(2)
    with g1:
        layout.chart(charts.metrics_chart(metrics.per_stage, ("nodes", "edges"), layout.scale()), "graph_size",
                     table=pd.DataFrame(metrics.per_stage[["stage", "nodes", "edges"]]), key="size",
                     figure=(figctx, "Graph size per row", ()))
    with g2:
        cols = ("verticality", "local_share", "n90_share")
        layout.chart(charts.metrics_chart(metrics.per_stage, cols, layout.scale()), "graph_shape",
                     table=pd.DataFrame(metrics.per_stage[["stage", *cols]]), key="shape",
                     figure=(figctx, "Graph shape per row", ()))


pruned_view(graph, stages, f"Attribution graph: {att.target.text!r}{versus}")
whatif_views.section(handle, att, prompt, check, graph_page=True)  # edits, case files, notes: as on the Heatmap
