"""Failure Lens dashboard: `streamlit run app.py`. Page config, shared sidebar, navigation; the pages do the rest."""
from pathlib import Path

import streamlit as st

from ui import layout, state

ROOT = Path(__file__).parent
# (file in pages/, title, icon, default page). Append a line to add a page; missing files are skipped.
PAGES = [
    ("models", "Models", ":material/memory:", False),
    ("heatmap", "Heatmap", ":material/format_color_text:", True),
    ("graph", "Graph", ":material/account_tree:", False),
    ("scaling", "Scaling", ":material/stacked_line_chart:", False),
    ("evolution", "Evolution", ":material/timeline:", False),
    ("sweeps", "Sweeps", ":material/table_chart:", False),
    ("study", "Study", ":material/summarize:", False),
]

state.init()
st.set_page_config(page_title="Failure Lens", page_icon=":material/search_insights:", layout="wide",
                   initial_sidebar_state="collapsed" if state.get(state.PRESENT) else "expanded")
pages = [st.Page(f"pages/{name}.py", title=title, icon=icon, default=default, url_path=name)
         for name, title, icon, default in PAGES if (ROOT / "pages" / f"{name}.py").exists()]
page = st.navigation(pages)
layout.sidebar()
try:
    page.run()
finally:  # also after st.stop() inside a page
    state.sync_url()
