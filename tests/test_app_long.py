"""AppTest walks of the long-prompt controls: granularity, strongest groups, opening a group, graph supernodes
(open / close), the node cap, short links through the prompt store and its listing on the Models page."""
from __future__ import annotations

from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180
LINE = "records : car young ; apple sour ; pear sweet ; stone wild ; mouse sweet ."
PROMPT = "\n".join([LINE] * 28) + "\nquestion : which record has car ?"  # about 500 tokens, 29 lines


@pytest.fixture(autouse=True)
def prompt_store(tmp_path, monkeypatch):
    monkeypatch.setenv("FAILURE_LENS_PROMPTS", str(tmp_path / "prompts"))
    return tmp_path / "prompts"


def _app(**query) -> AppTest:
    from engine.zoo import zoo_sizes

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["model"] = f"zoo:{zoo_sizes()[0]}"
    for k, v in query.items():
        at.query_params[k] = v
    return at


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def test_heatmap_groups_open_and_short_link(prompt_store):
    from engine.runs.prompts import load, prompt_hash

    at = clean(_app(prompt=PROMPT).run())
    assert len(PROMPT) > 500
    # the link carries the hash, the store holds the exact text
    assert "prompt" not in at.query_params and at.query_params["ph"] == prompt_hash(PROMPT)
    assert load(prompt_hash(PROMPT)) == PROMPT
    # automatic granularity over 300 tokens: lines; the strongest groups are listed as buttons
    assert "Lines: 3" in _captions(at)  # BOS, 29 lines, the last token alone: 31 groups
    ranked = [b for b in at.button if b.key and b.key.startswith("grp:")]
    assert ranked and all("tokens" in b.label for b in ranked)
    clean(ranked[0].click().run())
    assert at.session_state["grp"] >= 0 and at.query_params["grp"]
    assert any(m.value.startswith("**Opened: group") for m in at.markdown)
    clean(at.button(key="grp:close").click().run())
    assert at.session_state["grp"] == -1
    assert not any(m.value.startswith("**Opened: group") for m in at.markdown)
    clean(at.selectbox(key="w:gran").set_value("windows").run())
    assert "Fixed windows:" in _captions(at) and at.query_params["gran"] == "windows"
    clean(at.selectbox(key="w:gran").set_value("tokens").run())  # tokens over 300: still the grouped view
    assert "Tokens:" in _captions(at) and "Showing tokens 0–" in _captions(at)
    # a new session from the short link gets the prompt back; an unknown hash says so and offers a way out
    again = clean(_app(ph=prompt_hash(PROMPT)).run())
    assert again.session_state["prompt"] == PROMPT
    lost = _app(ph="0" * 20).run()
    assert not lost.exception
    assert any("does not have" in w.value and "Own prompt" in w.value for w in lost.warning)
    # the Models page lists the stored prompt
    at.switch_page("pages/models.py")
    clean(at.run())
    assert any(prompt_hash(PROMPT) in list(d.value.get("hash", [])) for d in at.dataframe)


def test_graph_supernodes_open_close_and_cap():
    at = _app(prompt=PROMPT)
    at.switch_page("pages/graph.py")
    clean(at.run())
    assert "as supernodes" in _captions(at)
    shown = next(c.value for c in at.caption if "edges shown" in c.value)
    assert int(shown.split(" nodes")[0]) <= 80
    node = at.selectbox(key="w:node")
    multi = next(o for o in node.options if " · tokens " in o)  # a supernode: "Layer 0 · tokens 3–14 'Query: …' · R"
    clean(node.select(multi).run())
    assert "A supernode of" in _captions(at)
    clean(at.button(key="sn:open").click().run())
    first, last = (int(x) for x in multi.split(" · tokens ")[1].split(" ")[0].split("–"))
    assert at.session_state["open"] == [first] and at.query_params["open"] == str(first)
    assert "1 opened into tokens" in _captions(at)
    shown = next(c.value for c in at.caption if "edges shown" in c.value)
    assert int(shown.split(" nodes")[0]) <= 80
    # a token of the opened group closes it again
    node = at.selectbox(key="w:node")
    inside = next(o for o in node.options if " · token " in o
                  and first <= int(o.split(" · token ")[1].split(" ")[0]) <= last)
    clean(node.select(inside).run())
    clean(at.button(key="sn:collapse").click().run())
    assert at.session_state["open"] == [] and "opened into tokens" not in _captions(at)
    clean(at.selectbox(key="w:ggran").set_value("tokens").run())
    assert "as supernodes" not in _captions(at)
