"""Where a page run's time goes (ui.timings) and what an interaction recomputes: AppTests on the zoo."""
from __future__ import annotations

from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def counted(monkeypatch):
    """Counts attributions and deletion-curve checks computed (cache misses reach the engine)."""
    import engine
    from ui import loaders
    from ui.sections import check_views

    loaders._attribute.clear()
    check_views._curves.clear()
    calls = {"attribute": 0, "check": 0}
    real_attribute, real_curves = engine.attribute, check_views.deletion_curves

    def attribute(*a, **kw):
        calls["attribute"] += 1
        return real_attribute(*a, **kw)

    def curves(*a, **kw):
        calls["check"] += 1
        return real_curves(*a, **kw)

    monkeypatch.setattr(engine, "attribute", attribute)
    monkeypatch.setattr(check_views, "deletion_curves", curves)
    return calls


def test_a_page_run_records_its_phases_and_shows_them_folded():
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    from ui.timings import KEY

    phases = {p.name: p.seconds for p in at.session_state[KEY]}
    assert {"model from cache", "attribution", "whole page run"} <= set(phases)
    assert all(s >= 0 for s in phases.values())
    assert phases["whole page run"] >= phases["attribution"]
    fold = [e for e in at.expander if e.label == "Timings of this view"]
    assert fold and "whole page run" in " ".join(c.value for c in fold[0].caption)


def test_a_slider_move_recomputes_neither_the_attribution_nor_the_check(counted):
    at = AppTest.from_file(APP, default_timeout=300).run()  # the Heatmap page: attribution and automatic check
    at.switch_page("pages/graph.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    before = dict(counted)
    assert before == {"attribute": 1, "check": 1}, before  # the Graph page reused the Heatmap page's attribution
    at.slider(key="w:top_p").set_value(0.5).run()
    at.slider(key="w:node_thr").set_value(0.1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert counted == before
