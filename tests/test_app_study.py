"""AppTest of the Study page on a small fixture study built in tmp_path: the headline chart first, the claims, the
seven figures, the downloads; an empty store folder and a file as the store folder; no traceback anywhere."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode  # noqa: F401 (fixture)
from streamlit.testing.v1 import AppTest
from study_fixtures import write_study

from engine.runs.study import load_study_config, run_study

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study_page")
    run_study(load_study_config(write_study(folder, per_family=3)))
    return folder / "store"


def _open(store_folder: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["st_store"] = store_folder
    at.switch_page("pages/study.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_study_page_opens_a_stored_study(store, no_legacy_pages_mode):  # noqa: F811
    t0 = time.perf_counter()
    at = _open(str(store))
    took = time.perf_counter() - t0
    heads = [s.value for s in at.subheader]
    assert heads[0] == "What share of the failures does attribution explain?"  # the first thing under the controls
    assert "The reference study's claims, on this run" in heads and "Patterns across failures" in heads
    claims = next(d.value for d in at.dataframe if "answer" in d.value.columns)
    assert list(claims["figure"]) == [f"Fig {i}" for i in range(1, 8)]
    assert [e.label for e in at.expander if e.label.startswith("Fig ")] == [
        f"Fig {i}: {c} — {a}" for i, (c, a) in enumerate(zip(claims["claim"], claims["answer"]), 1)]
    assert at.selectbox(key="w:study").value == "fx"
    assert not any(e.label == "Run the zoo study" and e.proto.expanded for e in at.expander)
    # reopening hits the cached tables; the first open left them beside the study, equal to a fresh computation
    t1 = time.perf_counter()
    at.run()
    assert not at.exception
    print(f"first open {took:.1f}s, reopen {time.perf_counter() - t1:.1f}s")
    # the figures are drawn only while open: none on (re)opening the study, one chart once Fig 4 is opened
    figs = {e.label[:5]: e for e in at.expander if e.label.startswith("Fig ")}
    assert all(not e.children for e in figs.values())
    at.session_state["st:fig:Fig 4"] = True
    at.run()
    assert not at.exception
    opened = {e.label[:5]: e for e in at.expander if e.label.startswith("Fig ")}
    kinds = [getattr(c, "type", "") for c in opened["Fig 4"].children.values()]
    assert "vega_lite_chart" in kinds and "dataframe" in kinds
    assert all(not e.children for f, e in opened.items() if f != "Fig 4")
    from engine.runs.store import Store
    from engine.runs.study_figures import load_cached, study_stamp, study_tables

    with Store(store, readonly=True) as s:
        cached = load_cached(store / "study-fx" / "tables", study_stamp(s, "fx"))
        fresh = study_tables(s, "fx")
    assert cached is not None and cached.claims == fresh.claims and cached.basis_counts == fresh.basis_counts
    for name, df in fresh.tables.items():
        assert cached.tables[name].to_csv(index=False) == df.to_csv(index=False), name


def test_study_page_without_a_study(tmp_path, no_legacy_pages_mode):  # noqa: F811
    at = _open(str(tmp_path / "nothing-here"))
    assert any("No study stored in this folder yet" in c.value for c in at.caption)
    assert any(e.label == "Run the zoo study" for e in at.expander) and at.button(key="st:start")
    (tmp_path / "a-file").write_text("x")
    at = _open(str(tmp_path / "a-file"))
    assert any("No study stored" in c.value for c in at.caption)


def test_the_zoo_study_the_page_starts_is_the_shipped_config(tmp_path, monkeypatch):
    """The page's "Start the zoo study" reads studies/zoo.yaml (full) or its quick or tiny variant, each in a store
    of its own; FAILURE_LENS_STUDIES moves the stores (the browser test's tmp folder)."""
    from engine.runs.study import load_study_config
    from ui import navigation
    from ui.sections.study_views import STORES_ENV, zoo_config

    monkeypatch.delenv(STORES_ENV, raising=False)
    shipped = load_study_config(navigation.ROOT / "studies" / "zoo.yaml")
    full, quick, tiny = zoo_config("full"), zoo_config("quick"), zoo_config("tiny")
    assert full == shipped
    assert quick.failures_per_family == 5 and quick.store != full.store and quick.name != full.name
    assert tiny.families == ("instruction", "math") and [m.label for m in tiny.sizes] == ["s"]
    assert [m.label for m in tiny.checkpoints] == ["m-step00050", "m-step00500", "m-step06000"]
    assert len({full.store, quick.store, tiny.store}) == 3 and tiny.compute == full.compute
    monkeypatch.setenv(STORES_ENV, str(tmp_path))
    assert {Path(zoo_config(s).store).parent for s in ("full", "quick", "tiny")} == {tmp_path}


def test_a_store_that_cannot_be_read_says_why(tmp_path):
    """A store of an older layout opened read-only is named with its way out, not shown as an empty folder."""
    import sqlite3

    from engine.runs.store import DB_NAME, Store
    from ui.sections.study_views import problem, studies

    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    assert studies(str(tmp_path)) == [] and "newer Failure Lens" in problem(str(tmp_path))
    assert problem(str(tmp_path / "nothing-here")) == ""


def test_presentation_mode_does_not_name_one_case_on_the_study_page(store, no_legacy_pages_mode):  # noqa: F811
    """A study is many cases of several models: the header names no single model and case (the Heatmap page's case
    would read as the study's subject); the headline's caption names the studied failures and their model."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["st_store"] = str(store)
    at.query_params["present"] = "1"
    at.switch_page("pages/study.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["present"]
    assert not [m for m in at.markdown if m.value.startswith("Model **")]
    assert any("studied failures of" in c.value for c in at.caption)
