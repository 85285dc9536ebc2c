"""The Graph page's drawing as a Streamlit component that stays in the page between reruns.

An `st.iframe` of the standalone graph HTML re-sends and re-parses all of vis-network (~470 KB) on every
slider move. This component loads vis-network once; each rerun sends only the nodes and edges, and a click on
a node comes back as its id (the page then opens that node's drill-down). The frontend is one HTML file
(`graph_frontend.html`, no build step); it and pyvis's copy of vis-network are put in a folder named by their
content hash under the temp directory, which Streamlit serves.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit.components.v1 as components

from engine.present import render

FRONTEND = Path(__file__).with_name("graph_frontend.html")


def _page_text() -> str:
    return FRONTEND.read_text(encoding="utf-8").replace("/*TOOLTIP_CSS*/", render.TOOLTIP_CSS)


def build_folder(parent: Path) -> Path:
    """`parent/failure-lens-graph-<hash>` with index.html and vis-network.min.js (written once, atomically)."""
    page, lib = _page_text().encode("utf-8"), render.vis_js_path().read_bytes()
    folder = parent / f"failure-lens-graph-{hashlib.sha256(page + lib).hexdigest()[:16]}"
    if not (folder / "index.html").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".failure-lens-graph-", dir=parent))
        (tmp / "vis-network.min.js").write_bytes(lib)
        (tmp / "index.html").write_bytes(page)
        try:
            os.replace(tmp, folder)  # another process may have won the race: its folder is identical
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@lru_cache(maxsize=1)
def _component() -> Callable[..., Any]:
    return components.declare_component("failure_lens_graph", path=str(build_folder(Path(tempfile.gettempdir()))))


def live_graph(data: dict, height: int, key: str, present: bool = False) -> Optional[str]:
    """Draw `data` (from `render.graph_data`) at most `height` px tall (less on a short window; in presentation
    mode it ends on the first screen and its labels grow with the window); returns the id of the node last
    clicked, or None."""
    revision = hashlib.sha1(repr((data["nodes"], data["edges"])).encode()).hexdigest()[:12]
    return _component()(data=data, height=height, present=present, revision=revision, key=key, default=None)
