"""AppTest walks of the Models, Heatmap and Graph pages on the built-in zoo: the default flow and the bad inputs.

Without a trained zoo the walks run on the stand-in of tests/compare_fixtures.py (tiny random models, same files).

Every test also checks that no exception element (a traceback) reached the page.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120


@pytest.fixture
def builds(monkeypatch):
    """Counts build_graph calls (pruning must re-draw from the cached graph without rebuilding)."""
    from engine.graph import build
    from ui import loaders

    loaders.graph_cache().clear()
    calls = []
    real = build.build_graph

    def counted(*a, **kw):
        calls.append(kw.get("stages"))
        return real(*a, **kw)

    monkeypatch.setattr(build, "build_graph", counted)
    return calls


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    """What the reader sees: Markdown backslash escapes (ui.safe.plain) removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", " | ".join(str(e.value) for e in elements))


def metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label.startswith(label))


def test_default_flow_heatmap_graph_models(builds):
    at = clean(app())
    # Heatmap (the default page): a zoo model and a real failure case are preselected
    assert not at.error, texts(at.error)
    assert at.query_params["model"] and at.query_params["case"]
    assert at.title[0].value == "Heatmap"
    assert any("fl-heatmap" in h.value for h in at.html)
    assert "Conservation" in [m.label for m in at.metric]
    before = metric(at, "Contrast")
    topk = at.dataframe[0].value
    new = next(int(t) for t, role in zip(topk["id"], topk["role"]) if not role)
    clean(at.button_group(key="w:pick:contrast").set_value(new).run())
    assert at.session_state["contrast"] == f"#{new}"
    assert metric(at, "Contrast") != before
    assert at.query_params["contrast"] == f"#{new}"
    # Graph: built once, pruning re-draws without rebuilding
    at.switch_page("pages/graph.py")
    clean(at.run())
    assert not at.error, texts(at.error)
    assert len(builds) == 1
    assert any("edges shown" in c.value for c in at.caption)
    clean(at.slider(key="w:top_p").set_value(0.3).run())
    clean(at.radio(key="w:prune").set_value("global").run())
    clean(at.slider(key="w:edge_thr").set_value(0.2).run())
    clean(at.toggle(key="w:connected").set_value(False).run())
    assert len(builds) == 1
    assert at.query_params["top_p"] == "0.3" and at.query_params["prune"] == "global"
    node = at.selectbox(key="w:node")
    clean(node.select_index(1).run())
    assert any(d.value.shape[0] for d in at.dataframe)  # drill-down tables
    assert at.query_params["node"]
    clean(at.selectbox(key="w:layers").set_value("Custom").run())
    clean(at.multiselect(key="w:stages").set_value([0, 2]).run())  # embedding and L1 (every zoo has >= 2 layers)
    assert not at.error, texts(at.error)
    assert len(builds) == 2  # a new stage selection is a new graph (embedding -> last layer, skipping blocks)
    # Models: what is loaded, then unload it
    at.switch_page("pages/models.py")
    clean(at.run())
    loaded = at.dataframe[-1].value
    assert list(loaded["architecture"]) == ["Qwen3ForCausalLM"]
    assert {"layers", "device", "memory_mb"} <= set(loaded.columns)
    next(b for b in at.button if b.label == "Unload").click()
    clean(at.run())
    assert at.session_state["model"] == []
    at.switch_page("pages/heatmap.py")
    clean(at.run())
    assert "No model is loaded" in texts(at.warning)


def test_link_reopens_the_same_view():
    from engine import zoo

    failure = zoo.load_failures()[-1]
    query = {"model": f"zoo:{failure.model}", "case": f"{failure.model}/{failure.case_id}", "norm": "sign",
             "hide_first": "1", "present": "1"}
    at = clean(app(**query))
    assert not at.error, texts(at.error)
    assert at.session_state["prompt"] == failure.prompt
    assert at.session_state["target"] == f"#{failure.target_id}"
    assert at.session_state["contrast"] == f"#{failure.contrast_id}"
    assert at.session_state["norm"] == "sign" and at.session_state["hide_first"] is True
    assert any("stMetricValue" in h.value for h in at.html)  # presentation mode CSS
    for k, v in query.items():
        assert at.query_params[k] == v
    assert metric(at, "Target") == repr(failure.target)


def test_own_prompt_from_the_link_and_empty_prompt():
    at = clean(app(prompt="<q> compute 1 + 2 = <a>"))
    assert at.session_state["case"] == ""
    assert any("fl-heatmap" in h.value for h in at.html)
    clean(at.text_area(key="w:prompt").input("   ").run())
    assert "The prompt is empty" in texts(at.warning)


def test_multi_token_contrast_is_refused():
    at = clean(app())
    clean(at.text_input(key="w:contrast").input("compute 1").run())
    assert "tokens, not one" in texts(at.error)


def test_same_target_and_contrast_is_refused():
    at = clean(app())
    clean(at.text_input(key="w:contrast").input(f"{at.session_state['target']}").run())
    assert "same token as the target" in texts(at.error)


def test_prompt_longer_than_the_context():
    at = clean(app(prompt="1 " * 17000))
    assert "more than the model's context" in texts(at.error)


def test_unknown_model_in_the_link():
    at = clean(app(model="zoo:nope"))
    assert "Unknown zoo model 'nope'" in texts(at.error)


def test_bad_link_values_fall_back():
    at = clean(app(k="many", case="xs/no-such-case"))
    assert "k='many' in the link is not valid" in texts(at.warning)
    assert "does not exist in this zoo" in texts(at.warning)


def test_models_page_bad_folder_and_empty_field():
    at = app()
    at.switch_page("pages/models.py")
    clean(at.run())
    clean(at.text_input(key="load:folder").input("/no/such/model/folder").run())
    clean(at.button(key="load:folder:go").click().run())
    assert "does not exist" in texts(at.error)
    clean(at.button(key="load:hub:go").click().run())
    assert "Nothing to load" in texts(at.error)


def test_models_page_loads_a_second_zoo_model():
    from engine import zoo

    at = app()
    at.switch_page("pages/models.py")
    clean(at.run())
    other = next(n for n in zoo.zoo_sizes() if f"zoo:{n}" not in at.session_state["model"])
    clean(at.selectbox(key="load:zoo").set_value(other).run())
    clean(at.radio(key="load:rule").set_value("CP-LRP").run())
    first = at.session_state["model"][0]
    clean(at.button(key="load:zoo:go").click().run())
    assert not at.error, texts(at.error)
    added = f"zoo:{other};rule=cp-lrp"
    assert at.session_state["model"] == [first, added]
    # loading adds a model to compare with; the pages keep showing the model that was active
    assert at.session_state["active"] == 0 and "active" not in at.query_params
    assert at.query_params["model"] == [first, added]
    assert "still show" in texts(at.success) and "Show" in texts(at.success)
    # the sidebar lists the new model in the same run (it used to lag one load behind)
    assert len(at.sidebar.radio(key="w:active").options) == 2
    assert at.sidebar.radio(key="w:active").value == 0
    # a third model: still the first one shown
    third = next((n for n in zoo.zoo_sizes() if f"zoo:{n}" not in (first, f"zoo:{other}")), None)
    if third is not None:
        clean(at.radio(key="load:rule").set_value("AttnLRP").run())
        clean(at.selectbox(key="load:zoo").set_value(third).run())
        clean(at.button(key="load:zoo:go").click().run())
        assert at.session_state["active"] == 0 and len(at.sidebar.radio(key="w:active").options) == 3
    # the person picks the new model: now it is shown
    clean(at.button(key=f"use:{added}").click().run())
    assert at.session_state["active"] == 1 and at.query_params["active"] == "1"
    at.switch_page("pages/heatmap.py")
    clean(at.run())
    assert not at.error, texts(at.error)
    assert "The other loaded models" in [h.value for h in at.subheader]
    assert sum("fl-heatmap" in h.value for h in at.html) == len(at.session_state["model"])


def test_graph_needs_two_stages():
    at = app()
    at.switch_page("pages/graph.py")
    clean(at.run())
    clean(at.selectbox(key="w:layers").set_value("Custom").run())
    clean(at.multiselect(key="w:stages").set_value([0]).run())
    assert "choose at least two stages" in texts(at.warning)


def test_hidden_tokens():
    at = clean(app())
    clean(at.toggle(key="w:hide_first").set_value(True).run())
    clean(at.toggle(key="w:hide_special").set_value(True).run())
    assert any("fl-heatmap" in h.value for h in at.html)
    clean(at.selectbox(key="w:norm").set_value("none").run())
    assert at.query_params["norm"] == "none"


def test_stopped_task_leaves_a_note_and_starts_again():
    def script():
        import streamlit as st

        from ui import layout

        out = layout.run_task("job", "Counting", lambda progress: [progress("step", i, 3) for i in range(3)] and 42)
        st.write(f"result {out}")

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert "result 42" in texts(at.markdown)
    at.session_state["stopped"] = "job"
    clean(at.run())
    assert "Stopped: Counting" in texts(at.info) and "result None" in texts(at.markdown)
    clean(at.button(key="again:job").click().run())
    assert "result 42" in texts(at.markdown)
