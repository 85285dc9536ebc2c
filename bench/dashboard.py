"""`python -m bench dashboard`: where a dashboard interaction's time goes, phase by phase.

Drives the app headless with Streamlit's AppTest (the same script runs as in a browser, without the websocket and
the drawing) on the built-in zoo and prints, per interaction, the wall time of the script run and the phases the
app recorded (ui.timings): first view, case switch, contrast click, slider move and node click.
The browser test (tests/test_browser.py) measures what a person waits for, drawing included.
"""
from __future__ import annotations

import time
from pathlib import Path

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _no_legacy_pages_mode() -> None:
    """AppTest resets Streamlit's legacy pages/ flag before every run; a real server sets it once at start."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def no_legacy(self, *a, **kw):
        init(self, *a, **kw)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = no_legacy


def _line(name: str, at, seconds: float) -> str:
    from ui.timings import KEY

    phases = at.session_state[KEY] if KEY in at.session_state else []
    inner = ", ".join(f"{p.name} {p.seconds:.3f}" for p in phases)
    errors = f"  ERRORS: {[e.value for e in at.exception]}" if at.exception else ""
    return f"[timing] {name}: {seconds:.2f}s  ({inner}){errors}"


def run(model: str | None, quick: bool) -> int:
    from streamlit.testing.v1 import AppTest

    _no_legacy_pages_mode()
    at = AppTest.from_file(APP, default_timeout=600)
    if model:
        at.query_params["model"] = model

    def step(name: str, action) -> None:
        t0 = time.perf_counter()
        action()
        print(_line(name, at, time.perf_counter() - t0), flush=True)

    step("first view (cold: model load, attribution, check)", at.run)
    step("same view again (warm caches)", at.run)
    cases = at.selectbox(key="w:case").options
    if len(cases) > 1:
        step("case switch", lambda: at.selectbox(key="w:case").select_index(1).run())
    topk = at.dataframe[0].value
    other = next((int(t) for t, role in zip(topk["id"], topk["role"]) if not role), None)
    if other is not None:
        step("contrast click", lambda: at.button_group(key="w:pick:contrast").set_value(other).run())
    at.switch_page("pages/graph.py")
    step("graph page (graph built)", at.run)
    step("slider move (edge mass 0.5)", lambda: at.slider(key="w:top_p").set_value(0.5).run())
    step("node click (first node)", lambda: at.selectbox(key="w:node").select_index(1).run())
    return 0
