"""A real headless Chromium on the default case: the summary's category and the causal check on the same page
tell one story, and the slide deck downloaded from the page carries the check slide with the same verdict.

Run: pytest -m browser tests/test_browser_story.py -s
"""
from __future__ import annotations

import io
import time

import pytest
from test_browser import TIMEOUT, _idle, _metric, _text, _wait, driver, server, streamlit_server, zoo_root  # noqa: F401

pytestmark = pytest.mark.browser
BY_INPUT = "explained by the heatmap"


def test_summary_category_agrees_with_the_check_and_the_deck_has_it(server, driver, tmp_path):  # noqa: F811
    url, _ = server
    driver.get(url + "/")
    _wait(driver, "the heatmap", lambda: driver.find_elements("css selector", ".fl-heatmap span"))
    _idle(driver)
    verdict = _wait(driver, "the check's verdict", lambda: _metric(driver, "Verdict"))
    text = _text(driver)
    assert "decided by the causal check" in text, "the summary does not say the check decided its category"
    assert "guessed from the heatmap alone" not in text
    explained = verdict in ("Explains", "Partly")
    assert (BY_INPUT in text) == explained, (verdict, [line for line in text.splitlines() if "Category" in line])

    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    button = _wait(driver, "the slides button", lambda: driver.find_elements("css selector", ".st-key-slides-heatmap "
                                                                                           "button"))[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        done = [p for p in tmp_path.iterdir() if p.suffix == ".pptx" and p.stat().st_size > 0]
        if done and not any(p.suffix == ".crdownload" for p in tmp_path.iterdir()):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no deck downloaded: {list(tmp_path.iterdir())}")
    from pptx import Presentation

    deck = Presentation(io.BytesIO(done[0].read_bytes()))
    slides = ["\n".join(s.text_frame.text for s in slide.shapes if s.has_text_frame) for slide in deck.slides]
    check = [s for s in slides if "The check: does removing the red tokens flip" in s]
    assert check, f"no check slide among {len(slides)} slides"
    assert verdict.lower() in check[0].lower(), (verdict, check[0][:400])
    whole = "\n".join(slides)
    assert (BY_INPUT in whole) == explained and "guessed from the heatmap alone" not in whole
