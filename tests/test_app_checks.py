"""AppTests of the causal-check sections: the Heatmap page's deletion verdict, the Graph page's node ablation."""
from __future__ import annotations

from pathlib import Path

from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
VERDICTS = ("Explains", "Fragile", "Partly", "Does not explain", "No failure")


def _clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def test_heatmap_page_shows_the_deletion_verdict():
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    assert "Does the heatmap explain the failure?" in [s.value for s in at.subheader]
    verdict = _metric(at, "Verdict")
    assert verdict in VERDICTS
    boxes = [b.value for b in list(at.success) + list(at.info) + list(at.warning)]
    assert any(b.startswith(f"**{verdict}.**") for b in boxes), boxes
    assert _metric(at, "Area between curves") == "–"  # the fast verdict: no curves, no area
    line = next(c.value for c in at.caption if c.value.startswith("Verdict from "))
    assert " model runs in " in line and not [d for d in at.dataframe if "only red kept" in d.value.columns]
    # the curves on request; fewer tokens removed: K is in the link and the curves are recomputed
    _clean(at.toggle(key="w:check_curves").set_value(True).run())
    assert _metric(at, "Area between curves").startswith(("+", "-")) and _metric(at, "Verdict") == verdict
    assert any(c.value.startswith("Verdict from ") and ". Curves: " in c.value for c in at.caption)
    _clean(at.number_input(key="w:check_k").set_value(3).run())
    assert at.query_params["check_k"] == "3"
    table = next(d.value for d in at.dataframe if "only red kept" in d.value.columns)
    assert len(table) == 4  # k = 0..3
    _clean(at.selectbox(key="w:check_repl").set_value("pad").run())
    # off: no verdict
    _clean(at.toggle(key="w:check").set_value(False).run())
    assert not [m for m in at.metric if m.label == "Verdict"]


def test_graph_page_node_numbers_and_top_nodes_scatter(monkeypatch):
    from engine.cases import ablation
    from ui.sections import check_views

    calls = []
    real = ablation.ablate_nodes
    monkeypatch.setattr(check_views, "ablate_nodes", lambda *a, **kw: calls.append(kw["nodes"]) or real(*a, **kw))
    check_views._ablation.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/graph.py")
    _clean(at.run())
    _clean(at.slider(key="w:top_p").set_value(0.3).run())
    assert calls == [None]  # pruning re-draws from the cached ablation
    assert "Do the top nodes matter? Predicted vs measured" in [s.value for s in at.subheader]
    r = _metric(at, "Correlation (zero ablation)")
    assert r == "–" or -1.0 <= float(r) <= 1.0
    nodes = next(d.value for d in at.dataframe if "measured (zero)" in d.value.columns)
    assert len(nodes) == 20 and nodes["measured (zero)"].notna().all()
    _clean(at.selectbox(key="w:node").select_index(1).run())
    predicted, measured = _metric(at, "Predicted (zero)"), _metric(at, "Measured (zero)")
    assert float(predicted) == -float(_metric(at, "Relevance R"))  # zero ablation predicts −R
    assert measured != "–"
    # the node in words first (does removing it flip the answer? is the graph right about it?), the hidden
    # dimensions, neurons and edges behind a fold
    words = next(i.value for i in at.info if "alone" in i.value)
    assert "the wrong answer's lead" in words and "The relevance predicted" in words
    assert "Details: hidden dimensions, MLP neurons, incoming edges" in [e.label for e in at.expander]
    _clean(at.number_input(key="w:check_nodes").set_value(5).run())
    nodes = next(d.value for d in at.dataframe if "measured (zero)" in d.value.columns)
    assert len(nodes) == 5


def test_sweeps_page_shows_how_often_the_attribution_explains(tmp_path):
    from engine import zoo
    from engine.runs.config import parse_sweep_config
    from engine.runs.sweep import run_sweep

    store = tmp_path / "store"
    size = zoo.zoo_sizes()[-1]
    cfg = parse_sweep_config(f"name: chk\nmodels: [{{source: 'zoo:{size}', label: {size}}}]\n"
                             "benchmarks: [{kind: zoo, filters: {limit: 4}}]\n"
                             "compute: {checks: {enabled: true, k: 3, seeds: [0, 1], nodes: 5}}\n"
                             f"store: '{store}'\n")
    run_sweep(cfg)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["store"], at.query_params["run"] = str(store), "chk"
    at.switch_page("pages/sweeps.py")
    _clean(at.run())
    assert "Does the attribution explain the failures?" in [s.value for s in at.subheader]
    table = next(d.value for d in at.dataframe if "by input" in d.value.columns)
    assert table["checked"].sum() >= 1
    shares = table[["by input", "by graph", "no clue"]].sum(axis=1)
    assert (abs(shares - 1.0) < 1e-6).all()  # every checked failure has exactly one causal outcome
