"""Failure Lens dashboard: `streamlit run app.py`. Page config, shared sidebar, navigation; the pages do the rest."""
import streamlit as st

from ui import layout, navigation, state, timings

timings.begin()
state.init()
st.set_page_config(page_title="Failure Lens", page_icon=":material/search_insights:", layout="wide",
                   initial_sidebar_state="collapsed" if state.get(state.PRESENT) else "expanded")
page = navigation.navigate()  # the page list lives in ui/navigation.py
layout.sidebar()
try:
    with navigation.entered():
        page.run()
    timings.fold(timings.finish())
finally:  # also after st.stop() inside a page
    state.sync_url()
    timings.finish()
