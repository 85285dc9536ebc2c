"""What an interaction recomputes, counted at the engine (AppTests on the zoo): a long prompt says what it costs
before it runs; a contrast click reuses the prompt's tokens and the model; downloads are made only when asked;
a node click reuses the case's node states."""
from __future__ import annotations

from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LINE = "records : car young ; apple sour ; pear sweet ; stone wild ; mouse sweet ."


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _count(monkeypatch, calls: dict, name: str, owner, attr: str) -> None:
    real = getattr(owner, attr)

    def counted(*a, **kw):
        calls[name] = calls.get(name, 0) + 1
        return real(*a, **kw)

    monkeypatch.setattr(owner, attr, counted)


@pytest.fixture
def fresh_caches():
    from ui import loaders, long_run
    from ui.sections import check_views

    for f in (loaders._attribute, loaders._encoded, check_views._curves, check_views._ablation, check_views._states):
        f.clear()
    long_run._RAN.clear()


def test_a_long_prompt_says_what_it_costs_before_it_runs(monkeypatch, fresh_caches):
    import engine
    from engine.zoo import zoo_sizes
    from ui import long_run

    monkeypatch.setattr(long_run, "LONG_TOKENS", 40)  # a short zoo prompt stands in for a 10k-token paste
    seen: list = []
    real = engine.attribute

    def attribute(*a, **kw):
        progress = kw.get("progress")
        kw["progress"] = progress and (lambda *p: (seen.append(p), progress(*p)))
        return real(*a, **kw)

    monkeypatch.setattr(engine, "attribute", attribute)
    prompt = "\n".join([LINE] * 4) + "\nquestion : which record has car ?"
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["model"] = f"zoo:{zoo_sizes()[0]}"
    at.query_params["prompt"] = prompt
    clean(at.run())
    said = [c.value for c in at.caption if "its heatmap takes about" in c.value]
    assert said and "tokens through" in said[0] and "It took" in said[0], [c.value for c in at.caption]
    assert "Speed measured on this model" in said[0]
    layers = {p[2] for p in seen}
    assert seen and len(layers) == 1 and ("backward", *2 * [layers.pop()]) in seen  # progress up to the last layer
    assert any(s.value == "Token relevance" for s in at.subheader)  # the same page as a short prompt's
    clean(at.run())  # the same view again: a cache hit, nothing to announce
    assert not [c.value for c in at.caption if "its heatmap takes about" in c.value]


def test_a_contrast_click_reuses_the_prompts_tokens_and_the_model(monkeypatch, fresh_caches):
    import engine
    import engine.heatmap
    from ui import loaders

    calls: dict = {}
    _count(monkeypatch, calls, "encode", loaders, "encode_prompt")
    _count(monkeypatch, calls, "encode in attribute", engine.heatmap, "encode_prompt")
    _count(monkeypatch, calls, "load", engine, "load_model")
    _count(monkeypatch, calls, "attribute", engine, "attribute")
    at = clean(AppTest.from_file(APP, default_timeout=300).run())
    first = dict(calls)
    assert first.get("encode") == 1 and first.get("attribute") == 1 and "encode in attribute" not in first
    topk = at.dataframe[0].value
    other = next(int(t) for t, role in zip(topk["id"], topk["role"]) if not role)
    clean(at.button_group(key="w:pick:contrast").set_value(other).run())
    assert calls["attribute"] == 2  # a new objective: a new attribution ...
    assert calls["encode"] == 1 and "encode in attribute" not in calls  # ... on the same tokens
    assert calls.get("load", 0) == first.get("load", 0)
    cases = at.selectbox(key="w:case").options
    if len(cases) > 1:
        clean(at.selectbox(key="w:case").select_index(1).run())
        assert calls.get("load", 0) == first.get("load", 0)  # a case switch keeps the model


def test_downloads_are_made_only_when_asked(monkeypatch, fresh_caches):
    from engine.present import charts, render

    calls: dict = {}
    for mod, name in ((render, "heatmap_html"), (render, "heatmap_latex"), (render, "heatmap_csv"),
                      (render, "graph_html"), (charts, "token_chart"), (charts, "graph_chart"),
                      (charts, "to_png"), (render, "frame_csv")):
        _count(monkeypatch, calls, name, mod, name)
    at = clean(AppTest.from_file(APP, default_timeout=300).run())
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("HTML" in x for x in labels) and any("slides" in x for x in labels)
    at.switch_page("pages/graph.py")
    clean(at.run())
    assert any("GraphML" in b.proto.label for b in at.get("download_button"))
    assert calls == {}, calls  # every file (and the chart drawn only for its PNG / SVG) waits for its click


def test_a_node_click_reuses_the_cases_node_states(monkeypatch, fresh_caches):
    import engine
    import engine.cases.ablation as ablation
    from ui.sections import check_views

    calls: dict = {}
    _count(monkeypatch, calls, "capture", ablation, "_capture")
    _count(monkeypatch, calls, "ablate", check_views, "ablate_nodes")
    _count(monkeypatch, calls, "attribute", engine, "attribute")
    _count(monkeypatch, calls, "check", check_views, "deletion_curves")
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("pages/graph.py")
    clean(at.run())
    before = dict(calls)
    assert before.get("capture") == 1  # the top nodes' ablation captured the case's states once
    for i in (1, 2):
        clean(at.selectbox(key="w:node").select_index(i).run())
        assert any(m.label.startswith("Measured") for m in at.metric)
    assert calls["ablate"] == before["ablate"] + 2  # each new node is ablated ...
    assert calls["capture"] == 1  # ... with the states captured once
    assert calls["attribute"] == before["attribute"] and calls.get("check") == before.get("check")


def test_the_heatmap_page_draws_the_answer_before_the_causal_check(monkeypatch, fresh_caches):
    """The script's order is the order the browser receives: header numbers, summary and heatmap first; the check
    after them (its verdict then redraws the summary); the exports after the check."""
    from ui import layout
    from ui.sections import check_views, long_views, story, views

    order: list[str] = []
    for name, owner, attr in (("numbers", views, "header"), ("summary", story, "show"),
                              ("heatmap", long_views, "heatmap"), ("check", check_views, "deletion_curves"),
                              ("exports", layout, "downloads")):
        real = getattr(owner, attr)
        monkeypatch.setattr(owner, attr, lambda *a, _n=name, _r=real, **kw: (
            order.append(f"{_n}:{a[0]}" if _n == "exports" else _n), _r(*a, **kw))[1])
    clean(AppTest.from_file(APP, default_timeout=300).run())
    assert order.index("numbers") < order.index("summary") < order.index("heatmap") < order.index("check")
    first_check = order.index("check")
    assert "summary" in order[first_check:]  # drawn again with the verdict
    assert order.index("exports:heatmap") > first_check  # the heatmap's files quote the summary with its verdict
