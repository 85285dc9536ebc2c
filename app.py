"""Failure Lens dashboard: `streamlit run app.py`. Page config, shared sidebar, navigation; the pages do the rest."""
import streamlit as st

from ui import layout, navigation, state, timings

timings.begin()
state.init()
# the icon is a local file: a material or emoji icon makes the browser fetch it from the internet on every page
st.set_page_config(page_title="Failure Lens", page_icon=str(navigation.ROOT / "ui" / "icon.png"), layout="wide",
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
