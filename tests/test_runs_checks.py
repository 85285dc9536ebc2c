"""Causal checks in sweeps: stored per result (schema 2, migrated from 1), aggregated, in the report."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from sweep_fixtures import write_bench, write_config

from engine.cases.checks import VERDICTS, causal_outcome, verdict_table
from engine.runs.config import load_sweep_config, parse_sweep_config
from engine.runs.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, ResultRow, Store
from engine.runs.sweep import run_sweep


def test_a_schema_1_store_is_migrated_and_keeps_its_results(tmp_path):
    db = tmp_path / DB_NAME
    with sqlite3.connect(db) as conn:  # a store as Failure Lens wrote it before the checks
        conn.executescript(MIGRATIONS[0])
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO runs VALUES ('r', '', '{}', 0)")
        conn.execute("INSERT INTO results (run_id, model_label, case_id, status, logit_diff, segment_rel_json, "
                     "extra_json, created) VALUES ('r', 'm', 'c1', 'ok', 2.5, '{}', '{}', 0)")
    with pytest.raises(Exception, match="needs migrating"):
        Store(tmp_path, readonly=True)
    with Store(tmp_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 3
        old = s.get_result("r", "m", "c1")
        assert old.logit_diff == 2.5 and old.check is None
        check = {"curves": {"verdict": "explains", "area": 1.5, "flip_k": 2},
                 "ablation": {"r_zero": 0.8, "r_mean": 0.4}}
        assert s.put_result("r", "m", "c2", ResultRow("ok", logit_diff=1.0, check=check))
        assert s.get_result("r", "m", "c2").check == check
        frame = s.results_frame("r").set_index("case_id")
    assert frame.loc["c2", "check_verdict"] == "explains" and frame.loc["c2", "check_r_zero"] == 0.8
    assert frame.loc["c1", "check_verdict"] is None or pd.isna(frame.loc["c1", "check_verdict"])


def test_a_schema_2_store_gets_the_verdict_columns_from_its_stored_curves(tmp_path):
    db = tmp_path / DB_NAME
    curves = {"verdict": "explains", "area": 1.5, "flip_k": 2, "base_logit_diff": 3.0, "target": [3.0, 1.0, -1.0],
              "random_mean": [3.0, 2.9, 2.5, 2.0], "random_std": [0.0, 0.1, 0.2, 0.3]}
    with sqlite3.connect(db) as conn:  # a store as Failure Lens wrote it before the verdict columns
        conn.executescript(MIGRATIONS[0] + MIGRATIONS[1])
        conn.execute("INSERT INTO schema_version VALUES (2)")
        conn.execute("INSERT INTO runs VALUES ('r', '', '{}', 0)")
        for case, check in (("c1", {"curves": curves, "ablation": None}), ("c2", None)):
            conn.execute("INSERT INTO results (run_id, model_label, case_id, status, segment_rel_json, extra_json, "
                         "created, check_json) VALUES ('r', 'm', ?, 'ok', '{}', '{}', 0, ?)",
                         (case, json.dumps(check) if check else None))
    with Store(tmp_path) as s:
        rows = {r["case_id"]: r for r in s.result_rows("r")}
        fast = {"curves": {"verdict": "partly", "flip_k": None, "random_k": 10, "random_mean_k": 1.25,
                           "random_std_k": 0.5, "curves": "verdict", "target": [2.0] * 11}}
        assert s.put_result("r", "m", "c3", ResultRow("ok", check=fast))
        rows["c3"] = next(r for r in s.result_rows("r") if r["case_id"] == "c3")
    old = rows["c1"]
    assert (old["check_verdict"], old["check_flip_k"], old["check_random_k"], old["check_full"]) == \
        ("explains", 2, 2, 1)
    assert (old["check_random_mean"], old["check_random_std"]) == pytest.approx((2.5, 0.2))
    assert all(rows["c2"][c] is None for c in ("check_verdict", "check_random_k", "check_full"))
    new = rows["c3"]
    assert (new["check_verdict"], new["check_random_k"], new["check_random_mean"], new["check_full"]) == \
        ("partly", 10, 1.25, 0)


def test_verdict_table_and_causal_outcomes_by_hand():
    assert causal_outcome("explains", None) == "M-IA" and causal_outcome("partly", 0.1) == "M-IA"
    assert causal_outcome("not_explained", 0.7) == "NC-IA+M-AG" and causal_outcome("fragile", 0.2) == "NC-IA+AG"
    assert causal_outcome("no_failure", 0.9) is None and causal_outcome("fragile", float("nan")) == "NC-IA+AG"
    frame = pd.DataFrame({
        "benchmark": ["a", "a", "a", "a", "b"], "outcome": ["M-IA"] * 4 + ["NC-IA+AG"],
        "check_verdict": ["explains", "fragile", "not_explained", None, "partly"],
        "check_area": [2.0, 1.0, 0.0, None, 4.0], "check_r_zero": [0.9, 0.6, 0.1, None, None]})
    t = verdict_table(frame).set_index("benchmark")
    assert t.loc["a", "checked"] == 3 and t.loc["a", "explains"] == pytest.approx(1 / 3)
    assert t.loc["a", "mean area"] == pytest.approx(1.0) and t.loc["a", "median r (nodes)"] == pytest.approx(0.6)
    # a: explains -> by input; fragile with r 0.6 -> by graph; not_explained with r 0.1 -> no clue
    assert [t.loc["a", c] for c in ("by input", "by graph", "no clue")] == pytest.approx([1 / 3] * 3)
    assert t.loc["b", "partly"] == 1.0 and pd.isna(t.loc["b", "median r (nodes)"])
    assert verdict_table(frame.assign(check_verdict=None)).empty


def test_config_identity_without_checks_is_unchanged(tmp_path):
    base = "name: x\nmodels: [{source: zoo:xs}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"
    cfg = parse_sweep_config(base)
    assert "checks" not in cfg.identity()["compute"]
    on = parse_sweep_config(base + "compute: {checks: {enabled: true, k: 4, nodes: 0}}\n")
    assert on.identity()["compute"]["checks"]["k"] == 4
    assert on.compute.checks.curves == "verdict" and "curves" not in on.identity()["compute"]["checks"]
    assert parse_sweep_config(base + "compute: {checks: true}\n").compute.checks.curves == "verdict"
    full = parse_sweep_config(base + "compute: {checks: {curves: full}}\n")
    assert full.compute.checks.enabled and full.identity()["compute"]["checks"]["curves"] == "full"
    with pytest.raises(Exception, match="curves"):
        parse_sweep_config(base + "compute: {checks: {curves: some}}\n")
    with pytest.raises(Exception, match="turn on compute.heatmap"):
        parse_sweep_config(base + "compute: {heatmap: false, checks: true}\n")
    with pytest.raises(Exception, match="k in 1..1000"):
        parse_sweep_config(base + "compute: {checks: {enabled: true, k: 0}}\n")


def test_sweep_stores_checks_and_the_report_shows_them(tmp_path, tiny_model_dir):
    from engine.runs.report import run_report

    bench = write_bench(tmp_path / "b.jsonl", 4)
    path = write_config(tmp_path, {"tiny": tiny_model_dir("qwen3")}, bench)
    text = path.read_text().replace("compute:\n",
                                    "compute:\n  checks: {enabled: true, k: 3, seeds: [0, 1], nodes: 4}\n")
    path.write_text(text)
    summary = run_sweep(load_sweep_config(path))
    assert summary.statuses.get("ok", 0) >= 1
    with Store(tmp_path / "store", readonly=True) as s:
        frame = s.results_frame("t")
        ok = frame[frame["status"] == "ok"]
        assert ok["check_verdict"].isin(VERDICTS).all() and not ok["check_full"].any()
        row = s.get_result("t", "tiny", ok.iloc[0]["case_id"])
        assert row.check["curves"]["curves"] == "verdict" and row.check["curves"]["random_mean"] == []
        assert row.check["curves"]["verdict_rows"] >= 1 and len(row.check["ablation"]["nodes"]) == 4
        stored = {r["case_id"]: r for r in s.result_rows("t")}
        for case_id, verdict in zip(ok["case_id"], ok["check_verdict"]):
            r = stored[case_id]
            assert (r["check_verdict"], r["check_full"]) == (verdict, 0)
            if r["check_flip_k"] is not None:  # the random baseline is read where the red curve flips
                assert r["check_random_k"] == r["check_flip_k"] and r["check_random_mean"] is not None
        # the stored category is the one the checks decide (engine.cases.outcome), as on the pages
        for _, r in ok.iterrows():
            got = s.get_result("t", "tiny", r["case_id"])
            want = causal_outcome(r["check_verdict"], r["check_r_zero"])
            assert got.suggestion["source"] == "check" and got.suggestion["category"]["outcome"] == want
            assert r["suggested_outcome"] == want and "heuristic" in got.suggestion
        html = run_report(s, "t")
    assert "Does the attribution explain the failures?" in html and "by graph" in html
    assert "causal check" in html and "guessed from the heatmap alone" not in html
    assert json.loads(json.dumps(row.check)) == row.check
