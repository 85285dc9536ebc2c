"""A real headless Chromium runs the tiny zoo study from the Study page (no YAML): it follows the run to the end,
sees the first-screen chart, downloads the HTML report and the PPTX deck, and re-opens the finished study.

The server keeps the page's study stores in a tmp folder (FAILURE_LENS_STUDIES). Prints the re-open time:
pytest -m browser tests/test_browser_study.py -s
"""
from __future__ import annotations

import html
import io
import time
import urllib.parse

import pytest
from test_browser import (  # noqa: F401 (fixtures)
    TIMEOUT,
    _download,
    _idle,
    _text,
    _wait,
    driver,
    streamlit_server,
    zoo_root,
)

pytestmark = pytest.mark.browser
HEADLINE = "What share of the failures does attribution explain?"
STUDY_TIMEOUT = 240  # the tiny study takes ~10 s on an idle 2-core machine; several times that under load


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return tmp_path_factory.mktemp("study-stores")


@pytest.fixture(scope="module")
def server(zoo_root, stores):  # noqa: F811
    from ui.sections.study_views import STORES_ENV

    if zoo_root is not None:
        pytest.skip("the Study page's tiny study needs the built zoo (xs, s and m's checkpoints): run `make zoo`")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STORES_ENV, str(stores))
        with streamlit_server() as got:
            yield got


def _headline_chart(drv):
    """The first-screen chart, drawn (its canvas or SVG), under the headline."""
    return HEADLINE in _text(drv) and drv.find_elements(
        "css selector", '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')


def test_tiny_study_from_the_page_report_deck_and_reopen(server, driver, stores, tmp_path):  # noqa: F811
    from pptx import Presentation

    from engine.runs.store import Store
    from engine.runs.study_figures import FIGURES, study_tables
    from ui.sections.study_views import zoo_config

    url, _ = server
    cfg = zoo_config("tiny")
    assert str(stores) in cfg.store  # the server's store folder is this test's tmp folder, never runs/
    driver.get(url + "/study")
    _wait(driver, "the study form", lambda: "Run the zoo study" in _text(driver))
    _idle(driver)
    tiny = _wait(driver, "the tiny size", lambda: [e for e in driver.find_elements(
        "css selector", '[data-testid="stRadio"] label') if e.text.strip().startswith("Tiny")])[0]
    tiny.click()
    _idle(driver)
    t0 = time.perf_counter()
    button = _wait(driver, "the start button", lambda: driver.find_elements("css selector", ".st-key-st-start button"))
    button[0].click()
    _wait(driver, "the finished study", lambda: f"Study {cfg.name} finished" in _text(driver), STUDY_TIMEOUT)
    _wait(driver, "the first-screen chart", lambda: _headline_chart(driver))
    _idle(driver)
    print(f"\n[timing] tiny study from the page: {time.perf_counter() - t0:.2f}s")

    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    report = _download(driver, tmp_path, "dl:st:out:HTML report", f"study_{cfg.name}.html").read_text()
    deck = _download(driver, tmp_path, "dl:st:out:Deck (PPTX)", f"study_{cfg.name}.pptx").read_bytes()
    png = _download(driver, tmp_path, "dl:st:headline:PNG", f"study_{cfg.name}_headline.png")  # made on click
    assert png.read_bytes().startswith(b"\x89PNG")
    with Store(cfg.store, readonly=True) as s:
        t = study_tables(s, cfg.name)
    text = html.unescape(report)
    assert "<script" not in report.lower() and all(c.claim in text and c.words in text for c in t.claims)
    titles = [sl.shapes.title.text for sl in Presentation(io.BytesIO(deck)).slides if sl.shapes.title is not None]
    figs = [x for x in titles if x.startswith("Fig ")]
    assert [x.split(":")[0] for x in figs] == list(FIGURES)  # one slide per figure, in order
    assert all(x.startswith(f"{c.figure}: {c.claim}") and x.endswith(c.answer) for c, x in zip(t.claims, figs))

    # re-opening the finished study from its link in a fresh page load: the first-screen chart, then idle
    link = f"{url}/study?{urllib.parse.urlencode({'st_store': cfg.store, 'study': cfg.name})}"
    driver.get("about:blank")
    t1 = time.perf_counter()
    driver.get(link)
    _wait(driver, "the re-opened study's chart", lambda: _headline_chart(driver), TIMEOUT)
    shown = time.perf_counter() - t1
    _idle(driver)
    print(f"[timing] study reopen: {shown:.2f}s (page idle after {time.perf_counter() - t1:.2f}s)")
    assert "Fig 1:" in _text(driver) and "Run the zoo study" in _text(driver)
