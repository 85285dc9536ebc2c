"""The dashboard's pages, in one list, and the one place that calls st.navigation (public multipage API).

app.py navigates and runs the page inside `entered()`. Streamlit also knows `pages/` as its legacy multipage folder,
so a fresh server whose first request is a page URL (/graph) runs pages/graph.py on its own; `layout.page` then
sees that the run did not come through app.py, calls `navigate()` (st.navigation leaves the legacy mode by itself)
and reruns, which goes through app.py with the same URL.
"""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
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
_run = threading.local()  # each session's script runs in its own thread


def navigate(position: str = "sidebar"):
    """st.navigation over the pages that exist; returns the page to run."""
    pages = [st.Page(str(ROOT / "pages" / f"{name}.py"), title=title, icon=icon, default=default, url_path=name)
             for name, title, icon, default in PAGES if (ROOT / "pages" / f"{name}.py").exists()]
    return st.navigation(pages, position=position)


@contextlib.contextmanager
def entered() -> Iterator[None]:
    """Marks this thread's script run as one that went through app.py."""
    _run.via_app = True
    try:
        yield
    finally:
        _run.via_app = False


def via_app() -> bool:
    return getattr(_run, "via_app", False)
