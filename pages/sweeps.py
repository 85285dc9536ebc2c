"""Sweeps: run a sweep from a YAML config in the background, then browse, label and export its stored results."""
import streamlit as st

from engine.cases.categories import shares
from engine.present import compare_charts, glossary
from engine.records import FailureLensError
from ui import layout, safe, state, widgets
from ui.sections import check_views
from ui.sections import sweep_views as sv
from ui.sections.compare_views import defaults_once

layout.page("Sweeps", subject=False)
defaults_once("sweeps", {state.SW_CONFIG: sv.example_config()})
# a link to a store opens on its results
run_tab, browse_tab = st.tabs(["Run a sweep", "Browse results"],
                              default="Browse results" if state.get(state.STORE) else None)

with run_tab:
    st.caption("Every case of every benchmark under every model: first wrong token, heatmap, segments and a "
               "suggested category, stored as it goes. Keys are checked; an error names the key and its line.")
    form_col, yaml_col = st.columns(2, gap="large")
    with form_col:
        sv.sweep_form()  # writes the YAML on the right
    with yaml_col:
        st.file_uploader("Load a YAML config", type=["yaml", "yml"], key=sv.UPLOAD, on_change=sv.take_upload,
                         help=f"At most {sv.MAX_CONFIG_BYTES >> 10} KiB; it replaces the text below.")
        widgets.text_area("Sweep config (YAML)", state.SW_CONFIG, height=420)
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    with c2:
        widgets.toggle("Resume (skip the cases this run has stored)", state.SW_RESUME,
                       help="Continue a stopped run with the same config; without it an existing run is refused.")
    with c1:
        clicked = st.button("Start sweep", icon=":material/play_arrow:", type="primary", key="sw:start")
    if clicked:
        sv.start(state.get(state.SW_CONFIG), state.get(state.SW_RESUME))
    sv.watch()

with browse_tab:
    widgets.text_input("Store folder", state.STORE, placeholder="runs/zoo-demo",
                       help="The `store:` folder of a sweep config (filled in when you start a sweep).")
    if not state.get(state.STORE).strip():
        st.info("Type the folder of a results store, or start a sweep.")
        st.stop()
    store = sv.open_store(state.get(state.STORE))
    if store is None:
        st.stop()
    runs = [r["run_id"] for r in store.runs()][::-1]  # newest first
    if not runs:
        st.info("This store has no runs yet.")
        st.stop()
    run = widgets.selectbox("Run", state.RUN, runs)
    frame = store.results_frame(run)
    if frame.empty:
        st.info(f"Run {safe.plain(run)} has no stored results yet.")
        st.stop()
    frame = sv.with_categories(frame)
    sv.exports(store, run, frame)
    view = sv.filters(frame)
    counts = view["status"].value_counts()
    cols = st.columns(4)
    for col, status in zip(cols, ("ok", "no_failure", "filtered", "error")):
        col.metric(safe.plain(status.replace("_", " ")), int(counts.get(status, 0)))
    layout.table(sv.in_words(view[[c for c in sv.COLUMNS if c in view.columns]]), f"results_{run}", key="sw:results",
                 height=280)

    failures = view[view["status"] == "ok"]
    if failures.empty:
        st.info("No failures among the results shown (status ok); change the filters.")
        st.stop()
    st.subheader("Δℓ and categories")
    st.caption("Category: a person's label where there is one, else the causal check's outcome (when the sweep ran "
               "checks), else a guess from the heatmap alone; the table's \"decided by\" column says which.")
    left, right = st.columns(2, gap="large")
    with left:
        layout.chart(compare_charts.delta_histogram(failures, layout.scale()), f"delta_hist_{run}",
                     failures[["model_label", "benchmark", "case_id", "logit_diff"]], key="sw:hist", stretch=True)
    with right:
        for column in ("outcome", "pattern"):
            share = shares(failures.to_dict("records"), ("benchmark", "model_label"), column)
            layout.chart(compare_charts.share_chart(share, column, layout.scale()), f"{column}_shares_{run}", share,
                         key=f"sw:{column}")

    check_views.sweep_section(failures)

    st.subheader("One case")
    rows = {sv.case_key(r.model_label, r.case_id): r for r in failures.itertuples(index=False)}
    key = widgets.selectbox("Case", state.SW_CASE, list(rows), format_func=lambda k: (
        f"{rows[k].model_label} · {rows[k].case_id} · Δℓ {rows[k].logit_diff:+.2f} · {glossary.name(rows[k].outcome)}"))
    pick = rows[key]
    row = failures[(failures["model_label"] == pick.model_label) & (failures["case_id"] == pick.case_id)].iloc[0]
    st.caption(f"Says {safe.quoted(row['target'])} instead of {safe.quoted(row['contrast'])}"
               + (f" after {safe.quoted(row['prefix'])}" if row["prefix"] else "")
               + f" · reference rank {row['ref_rank']:.0f}")
    sv.stored_heatmap(store, run, row)
    try:
        result = store.get_result(run, row["model_label"], row["case_id"])
    except FailureLensError as e:
        st.error(safe.plain(e))
        st.stop()
    suggestion = result.suggestion if result else None
    for reason in (suggestion or {}).get("reasons", []):  # the words, without the rule's code ("O2: ")
        st.caption(f"· {safe.plain(sv.without_rule_code(reason))}")
    sv.label_form(state.get(state.STORE), run, row, suggestion)
