"""The glossary covers every category code and metric column the user can see.

The codes and columns are enumerated from their sources of truth (the category enums, the graph metrics and
drill-down, the sweep store, the comparison tables, the top-k table, the run report), never from a hand list, so
a new code or column without a glossary entry fails here.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from graph_fixtures import edge_set, make_graph, small_graph

from engine.present import glossary


def _missing(codes) -> list[str]:
    return sorted({str(c) for c in codes if glossary.term(str(c)) is None})


def test_every_category_code_has_an_entry():
    from engine.cases.categories import Outcome, Pattern

    codes = [o.value for o in Outcome] + [p.value for p in Pattern]
    assert not _missing(codes)
    for code in codes:  # dropdowns show the plain name with the code
        assert glossary.label(code).endswith(f"({code})") and glossary.define(code)


def test_every_graph_metric_column_has_an_entry():
    from engine.graph.metrics import GraphMetrics, graph_metrics
    from engine.graph.prune import prune
    from engine.graph.types import PruneSettings

    g = small_graph()
    m = graph_metrics(g, prune(g, PruneSettings(top_p=1.0)))
    fields = [f.name for f in dataclasses.fields(GraphMetrics) if f.name != "per_stage"]
    assert len(m.per_stage.columns) > 20
    assert not _missing(list(m.per_stage.columns) + fields)


def test_every_drilldown_column_has_an_entry():
    from engine.graph.drilldown import node_drilldown

    n = 3
    g = make_graph([[0.2, 0.1, 0.3], [0.1, 0.2, 0.4]],
                   [edge_set(0, 1, [(0, 2, 0.3), (1, 2, 0.1)], n, heads=[[0.2, 0.1], [0.05, 0.05]],
                             paths=[[0.2, 0.05, 0.05], [0.1, 0.0, 0.0]])])
    g = dataclasses.replace(g, dims_idx=np.zeros((2, n, 2), np.int32), dims_val=np.ones((2, n, 2), np.float32),
                            neurons_idx=np.zeros((1, n, 2), np.int32), neurons_val=np.ones((1, n, 2), np.float32))
    d = node_drilldown(g, 1, 2)
    cols = list(d.top_dims.columns) + list(d.top_neurons.columns) + list(d.in_edges.columns)
    assert "head_1" in cols and "diagonal" in cols
    assert not _missing(cols)
    assert glossary.title("head_1") == "head 1"


def test_every_sweep_column_and_report_code_has_an_entry(tmp_path):
    from engine.cases.categories import Category, Label, Outcome, Pattern, suggest_category
    from engine.runs import report
    from engine.runs.store import ResultRow, Store
    from ui.sections import sweep_views

    with Store(tmp_path / "s") as store:
        store.create_run("r", {"models": []}, "t")
        sug = suggest_category({"total": 0.5, "instruction": 0.2}, 2.0)
        store.put_result("r", "m", "c", ResultRow(
            "ok", 2.0, 3, 1, "a", 2, "b", 4, "", {"total": 0.5, "instruction": 0.2, "query": 0.1, "answer": 0.0,
                                                 "special": 0.1, "instruction_target": 0.1, "instruction_other": 0.1},
            sug.to_dict(), {"k_relevance": 2, "k_random_mean": 4.0}))
        store.add_label("r", Label.now("c", "m", sug, Category(Outcome.M_IA, Pattern.OIT)))
        df = sweep_views.with_categories(store.results_frame("r"))
    statuses = list(report.STATUSES)
    assert not _missing(list(df.columns) + sweep_views.COLUMNS + statuses + [sweep_views.NONE])
    assert not _missing(report.LEGEND_CODES)
    legend = report.glossary_legend()
    for code in [o.value for o in Outcome] + [p.value for p in Pattern] + statuses:
        assert f"<b>{code}</b>" in legend.replace("&gt;", ">")


def test_every_check_and_verdict_code_has_an_entry():
    from engine.cases import checks
    from engine.compare import verdicts

    table = checks.verdict_table(pd.DataFrame({"benchmark": ["b"], "outcome": ["M-IA"], "check_verdict": ["explains"],
                                               "check_r_zero": [0.9], "check_area": [1.0]}))
    assert not _missing(list(checks.VERDICTS) + list(verdicts.VERDICTS) + list(verdicts.COLUMNS) + list(table.columns))


def test_every_comparison_and_topk_column_has_an_entry():
    from engine.cases.segments import SEGMENTS
    from engine.compare import deltas
    from engine.present.summary import SEGMENT_WORDS
    from engine.records import Attribution, TokenChoice, TopToken
    from ui.sections import inputs

    tables = [deltas.scaling_table("ref", {"ref": []}), deltas.ecdf([1.0, 2.0]),
              deltas.evolution_table({"a": []}),
              deltas.mean_line(pd.DataFrame(columns=["order", "checkpoint", "delta"])),
              deltas.mean_by_model(pd.DataFrame(columns=["model", *deltas.SEGMENT_COLUMNS]))]
    cols = [c for t in tables for c in t.columns] + list(deltas.SEGMENT_COLUMNS) + list(SEGMENTS) + list(SEGMENT_WORDS)
    att = Attribution("m", ["a"], [0], [1.0], [[1.0]], 1.0, "logit_diff", "by_ref_token", 10, 0, TokenChoice(0, "a"),
                      TokenChoice(1, "b"), 1.0, [TopToken(1, "a", 0, 1.0, 0.7)], 1.0, "attnlrp")
    cols += list(inputs.topk_table(att).columns)
    from engine.compare import verdicts
    from engine.compare.align import align_rows
    from engine.present import aligned

    al = align_rows("ab", [[(0, 1), (1, 2)]], [[1.0, 2.0]], [None])
    cols += verdicts.COLUMNS + list(verdicts.counts([]).columns) + list(verdicts.VERDICTS)
    cols += list(al.table(["m"]).columns) + list(aligned.strip_frame(aligned.build_strip(al, ["m"])).columns)
    assert not _missing(cols)


def test_graph_rows_in_words():
    from engine.graph.prune import stage_layout

    stages = stage_layout(2, True)
    assert [glossary.stage_label(s.name) for s in stages] == [
        "embedding", "layer 0 after attention", "after layer 0", "layer 1 after attention", "after layer 1"]
    assert not _missing([s.name for s in stages if s.kind != "post"] + [s.kind for s in stages])
    assert glossary.name("L3.mid") == "after attention"
    for word in ("Δℓ", "logit", "conservation", "embedding", "attention", "MLP", "layer"):
        assert glossary.term(word) is not None, word


def test_legend_html_escapes():
    out = glossary.legend_html(["M-IA", "NC-IA+M-AG", "not-a-code"])
    assert "NC-IA+M-AG" in out and "not-a-code" not in out and "<script" not in out


def test_every_causal_check_code_and_column_has_an_entry():
    import pandas as pd

    from engine.cases.ablation import AblationReport, NodeAblation
    from engine.cases.checks import VERDICTS, DeletionCurves, verdict_table
    from engine.present.check_charts import ablation_frame, curves_table
    from engine.runs.store import check_columns

    curves = DeletionCurves(1.0, (1.0, 0.5), (1.0, 2.0), (1.0, 0.8), (0.0, 0.1), (0.0, 0.4), (3,), ("a",), (2,), None,
                            None, 0.3, "partly", "…", "neutral", 0, (0,), 1, 5)
    node = NodeAblation(1, "L0.mid", 3, "a", 0.5, -0.5, -0.4, -0.3, -0.2, "attention", -0.1, -0.1, 0.0, 0.0)
    report = AblationReport(1.0, (node,), None, None, None, None, True, 2)
    frame = pd.DataFrame({"model_label": ["m"], "benchmark": ["b"], "category": ["M-IA"],
                          **{k: [v] for k, v in check_columns(
                              {"curves": {"verdict": "explains", "area": 1.0, "flip_k": 1},
                               "ablation": {"r_zero": 0.5}}).items()}})
    cols = (list(curves_table(curves).columns) + list(ablation_frame(report).columns) + list(check_columns(None))
            + list(verdict_table(frame, ("model_label", "benchmark", "category")).columns) + list(VERDICTS))
    assert not _missing(cols)


def test_a_code_defined_twice_is_refused():
    with pytest.raises(ValueError, match="defined twice: fixed"):
        glossary._terms(("fixed", "fixed", "one"), ("n", "cases", "two"), ("fixed", "fixed", "three"))
