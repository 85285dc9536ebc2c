"""Study: the reference paper's whole analysis on a set of models: what share of the failures attribution explains
per size and checkpoint (the first screen), the claims with this run's answers, the figures, patterns across
failures and the outputs; open any stored study, or run the zoo study in the background."""
import streamlit as st

from ui import layout, safe, state, widgets
from ui.sections import study_views as sv
from ui.sections.compare_views import defaults_once

layout.page("Study", subject=False)  # a study is many cases of several models: its caption names them
defaults_once("study", {state.ST_STORE: sv.default_store()})
folder = state.get(state.ST_STORE).strip()
names = sv.studies(folder) if folder else []
name = state.get(state.ST_NAME) if state.get(state.ST_NAME) in names else (names[0] if names else "")
tables = sv.tables(folder, name) if name else None
if tables is not None:
    sv.headline(tables)  # the meeting's question comes first
sv.watch(folder)

with st.expander(f"Study {safe.plain(name)} in {safe.plain(folder)}" if name else "Open a study",
                 expanded=tables is None):
    c1, c2 = st.columns([3, 2])
    with c1:
        widgets.text_input("Store folder", state.ST_STORE, help="The `store:` folder of a study config.")
    with c2:
        if names:
            widgets.selectbox("Study", state.ST_NAME, names)
        elif sv.problem(folder):
            st.warning(safe.plain(sv.problem(folder)))
        else:
            st.caption("No study stored in this folder yet: start the zoo study below.")
with st.expander("Run the zoo study", expanded=tables is None):
    st.caption("The zoo's smallest model (xs) is the reference: its failures on the four families are checked "
               "causally, then followed into s, m, l and m's eight training checkpoints (studies/zoo.yaml). "
               "It resumes where it stopped.")
    widgets.radio("Size", state.ST_SIZE, list(sv.SIZES), format_func=lambda k: safe.plain(sv.SIZES[k]))
    if st.button("Start the zoo study", icon=":material/play_arrow:", type="primary", key="st:start"):
        sv.start(state.get(state.ST_SIZE))
        st.rerun()

if tables is None:
    st.stop()
sv.downloads(folder, tables)
sv.claims(tables)
sv.figures(folder, tables)
sv.patterns(tables)
