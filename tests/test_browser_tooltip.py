"""The live graph component in a real headless Chromium, without a server: a re-draw closes the open tooltip.

The component's page (ui/graph_frontend.html, as served) is opened from its folder and fed the messages Streamlit
sends ("streamlit:render" with the graph data). Run: pytest -m browser tests/test_browser_tooltip.py
"""
from __future__ import annotations

import json
import shutil
import tempfile

import pytest
from graph_fixtures import small_graph
from test_browser import CHROMEDRIVER, CHROMIUM, _need_browser, _wait

from engine.graph.prune import prune
from engine.graph.types import PruneSettings
from engine.present import render
from ui.graph_component import build_folder

pytestmark = pytest.mark.browser

RENDER = ("window.postMessage({type: 'streamlit:render', args: {data: JSON.parse(arguments[0]), height: 420, "
          "present: false, revision: arguments[1]}}, '*');")
TOOLTIP = ("const t = document.querySelector('.vis-tooltip');"
           "return t ? [getComputedStyle(t).visibility, t.innerText] : ['none', ''];")


@pytest.fixture
def chromium():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fl-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=900,600", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_a_redraw_closes_the_tooltip_of_the_old_drawing(chromium, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    graph = small_graph()
    before, after = (json.dumps(render.graph_data(graph, prune(graph, PruneSettings(top_p=p)))) for p in (1.0, 0.5))
    drv = chromium
    drv.get((build_folder(tmp_path) / "index.html").as_uri())
    _wait(drv, "vis-network", lambda: drv.execute_script("return typeof vis !== 'undefined'"), timeout=30)
    drv.execute_script(RENDER, before, "a")
    _wait(drv, "the first drawing", lambda: drv.execute_script("return document.body.dataset.drawn") == "a", 30)
    # the mouse rests on the largest node: its tooltip opens
    x, y = drv.execute_script(
        "const net = window.flNet; const ids = net.body.data.nodes.getIds().filter(i => !String(i).startsWith('row:'));"
        "const id = ids.reduce((a, b) => net.body.data.nodes.get(b).size > net.body.data.nodes.get(a).size ? b : a);"
        "const p = net.canvasToDOM(net.getPositions([id])[id]); const r = net.canvas.frame.getBoundingClientRect();"
        "return [p.x + r.left, p.y + r.top];")
    ActionChains(drv).move_by_offset(round(x), round(y)).perform()
    shown = _wait(drv, "the tooltip", lambda: (lambda t: t[0] == "visible" and t)(drv.execute_script(TOOLTIP)), 10)
    assert "R = " in shown[1]
    # the page re-draws (a slider moved): the old drawing's tooltip goes, though the mouse has not moved
    drv.execute_script(RENDER, after, "b")
    _wait(drv, "the re-drawing", lambda: drv.execute_script("return document.body.dataset.drawn") == "b", 30)
    assert drv.execute_script(TOOLTIP)[0] != "visible", drv.execute_script(TOOLTIP)
