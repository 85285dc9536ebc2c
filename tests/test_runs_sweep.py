"""The sweep runner on a tiny random model: stored rows, resume after SIGKILL, cancel, CLI errors, the report."""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sweep_fixtures import XSS, assert_same_runs, stored, write_bench, write_config

from engine.__main__ import main
from engine.graph.export import from_json
from engine.records import FailureLensError
from engine.runs.config import load_sweep_config
from engine.runs.report import run_report
from engine.runs.store import DB_NAME, ResultRow, Store
from engine.runs.sweep import load_case, run_sweep

ROOT = Path(__file__).resolve().parents[1]
N_MAIN, N_STRICT = 12, 2  # main: 11 failures + 1 case without reference (error); strict: all filtered


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir):
    """An uninterrupted sweep with graphs and faithfulness: (folder, config path, summary, progress events)."""
    folder = tmp_path_factory.mktemp("sweep_ref")
    bench = write_bench(folder / "bench.jsonl", N_MAIN)
    cfg = write_config(folder, {"tiny": tiny_model_dir("qwen3")}, bench, graph=True, faith=True, strict=N_STRICT)
    events = []
    summary = run_sweep(load_sweep_config(cfg), progress=events.append)
    return folder, cfg, summary, events


def test_sweep_stores_every_case(reference):
    folder, cfg, summary, events = reference
    assert summary.complete and summary.computed == summary.total == N_MAIN + N_STRICT and not summary.cancelled
    assert summary.statuses == {"ok": N_MAIN - 1, "error": 1, "filtered": N_STRICT}
    with Store(folder / "store", readonly=True) as s:
        rows = {r["case_id"]: r for r in s.result_rows("t")}
        assert "no reference" in rows[f"main/c{N_MAIN - 1}"]["error"]
        assert rows["strict/c0"]["status"] == "filtered" and rows["strict/c0"]["ref_rank"] > 1
        for i in range(N_MAIN - 1):
            row = s.get_result("t", "tiny", f"main/c{i}")
            # the heatmap explains the failure found by teacher forcing, on the same ids
            assert row.extra["objective"] == pytest.approx(row.logit_diff, abs=1e-4)
            assert {"instruction", "query", "answer", "total", "instruction_target"} <= row.segment_rel.keys()
            assert (row.suggestion["category"]["outcome"]
                    and row.faith["base_logit_diff"] == pytest.approx(row.logit_diff, abs=1e-4))
            case = load_case(s, "t", "tiny", f"main/c{i}")
            assert len(case.token_ids) == len(case.relevance) == len(case.tokens) == row.position
            assert "instruction" in case.segments and case.layer_relevance.shape == (3, row.position)
            graph = from_json(case.graph)
            assert case.graph["meta"]["pruned"] and graph.n_tokens == row.position
    phases = [e.phase for e in events]
    assert phases[0] == "load" and phases[-1] == "done" and phases.count("case") == summary.total
    done = [e.done for e in events if e.phase == "case"]
    assert done == list(range(1, summary.total + 1)) and events[-2].eta_s == 0.0


def test_sweep_faithfulness_equals_the_checks_engine(reference):
    """The sweep's masking faithfulness and the pages' deletion checks give the same numbers for a stored case:
    the relevance curve and its flip, and each seed's random flip (both run on rows.MaskedRows)."""
    from engine.cases.checks import deletion_curves
    from engine.models import load_model

    folder, cfg, _, _ = reference
    config = load_sweep_config(cfg)
    fs = config.compute.faithfulness
    handle = load_model(config.models[0].source, rule=config.rule, device="cpu")
    compared = 0
    with Store(folder / "store", readonly=True) as s:
        for i in range(N_MAIN - 1):
            row, case = s.get_result("t", "tiny", f"main/c{i}"), load_case(s, "t", "tiny", f"main/c{i}")
            faith = row.faith
            for seed, k_random in zip(fs.seeds, faith["k_random"]):
                check = deletion_curves(handle.model, handle.tokenizer, case.token_ids, case.relevance.tolist(),
                                        row.target_id, row.contrast_id, case.special_mask, k=fs.max_k,
                                        seeds=(seed,), replacement=faith["mask_id"], insertion=False, curves="full")
                tol = [1e-5 * max(1.0, abs(v)) for v in check.target]
                assert check.base_logit_diff == pytest.approx(faith["base_logit_diff"], abs=tol[0])
                assert len(faith["curve"]) <= len(check.target)
                assert all(abs(f - c) <= t for f, c, t in zip(faith["curve"], check.target, tol)), i
                assert faith["k_relevance"] == check.flip_k, i
                flips = [k for k, d in enumerate(check.random_mean) if k and d < 0]
                assert k_random == (flips[0] if flips else None), i
                compared += 1
    assert compared >= N_MAIN - 1


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            return c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_at", ["first", "half", "late"])
def test_resume_after_sigkill_matches_uninterrupted(reference, tmp_path, capfd, kill_at):
    """Real process kills at several points of a sweep: the first row, half-way, near the end."""
    folder, ref_cfg, summary, _ = reference
    wanted = {"first": 1, "half": max(1, summary.total // 2), "late": summary.total - 3}[kill_at]
    cfg = tmp_path / "t.yaml"
    cfg.write_text(ref_cfg.read_text().replace("store: store", f"store: {tmp_path / 'store'}"))
    db = tmp_path / "store" / DB_NAME
    # paced_sweep pauses before each case so that the kill reliably lands after `wanted` rows (a tiny model is fast)
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "paced_sweep.py"), "sweep", str(cfg), "--quiet"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _rows(db) < wanted and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _rows(db)
    assert wanted <= at_kill < summary.total, (at_kill, proc.stderr.read().decode()[-2000:])
    assert main(["sweep", str(cfg), "--resume"]) == 0
    err = capfd.readouterr().err
    assert "left" in err and f"{summary.total}/{summary.total}" in err
    # the same values (to rounding: two processes need not sum in the same order) and nothing recomputed twice
    assert_same_runs(stored(tmp_path / "store", "t"), stored(folder / "store", "t"), rtol=1e-6)
    with Store(tmp_path / "store") as s:
        files = [p for p in (tmp_path / "store" / "arrays").rglob("*") if p.is_file()]
        referenced = {r["arrays"] for r in s.result_rows("t") if r["arrays"]}
        assert len(files) - len(referenced) <= 1  # at most the file of the case being committed at the kill
        s.clean_orphans(min_age_s=0)
        assert len([p for p in (tmp_path / "store" / "arrays").rglob("*") if p.is_file()]) == len(referenced)


def test_cancel_between_cases_then_resume(tmp_path, tiny_model_dir):
    cfg = load_sweep_config(write_config(tmp_path, {"tiny": tiny_model_dir("qwen3")},
                                         write_bench(tmp_path / "b.jsonl", 4)))
    seen = []
    first = run_sweep(cfg, progress=seen.append, cancel=lambda: sum(e.phase == "case" for e in seen) >= 2)
    assert first.cancelled and first.computed == 2 and not first.complete
    with Store(cfg.store, readonly=True) as s:
        assert len(s.result_rows("t")) == 2
    with pytest.raises(FailureLensError, match="--resume"):
        run_sweep(cfg)
    rest = run_sweep(cfg, resume=True)
    assert rest.skipped == 2 and rest.computed == 2 and rest.complete and not rest.cancelled


def test_cli_errors_exit_2(tmp_path, tiny_model_dir, capsys, monkeypatch):
    cfg = write_config(tmp_path, {"tiny": tiny_model_dir("qwen3")}, write_bench(tmp_path / "b.jsonl", 2))
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("store:", "stor:"))
    assert main(["sweep", str(bad)]) == 2
    assert "line" in (err := capsys.readouterr().err) and "unknown key 'stor'" in err
    with Store(tmp_path / "store") as s:
        s.create_run("t", {"something": "else"})
        s.put_result("t", "tiny", "main/c0", ResultRow("no_failure"))
    assert main(["sweep", str(cfg)]) == 2 and "add --resume" in capsys.readouterr().err
    assert main(["sweep", str(cfg), "--resume"]) == 2 and "another config" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["sweep", str(cfg), "--ray", "auto", "--run-id", "r2"]) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err


def test_unreachable_ray_address_fails_fast():
    from engine.runs.ray import probe

    t0 = time.monotonic()
    with pytest.raises(FailureLensError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        probe("127.0.0.1:1")
    with pytest.raises(FailureLensError, match="not a Ray address"):
        probe("head-node")
    assert time.monotonic() - t0 < 10


def test_report_of_a_sweep(reference, tmp_path):
    folder, _, summary, _ = reference
    out = tmp_path / "report.html"
    assert main(["sweep-report", str(folder / "store"), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/svg+xml;base64,") == 2 and page.count('class="fl-heatmap"') == 6
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page  # the prompt, escaped


def test_report_escapes_every_untrusted_string(tmp_path):
    from engine.cases.benchmarks import Case
    from engine.cases.categories import Category, Label, Outcome
    from engine.runs.sweep import text_array

    with Store(tmp_path / "s") as s:
        s.create_run("r", {"models": [{"label": XSS, "source": XSS}], "benchmarks": [{"kind": "table", "name": XSS}]},
                     name=XSS)
        s.put_cases("r", [Case("1", XSS, XSS + "prompt", "ref", {"query": [(0, 5)]})])
        arrays = {"token_ids": np.arange(3), "special_mask": np.zeros(3, bool), "offsets": np.zeros((3, 2), int),
                  "segments": np.zeros(3, np.int8), "relevance": np.array([0.5, -1.0, 0.2], np.float32),
                  "layer_relevance": np.zeros((2, 3), np.float32), "tokens_json": text_array(
                      '["<script>", "<img src=x onerror=alert(3)>", "&amp;"]')}
        s.put_result("r", XSS, f"{XSS}/1", ResultRow("ok", 2.0, 3, 1, XSS, 2, XSS, 3, XSS,
                                                   {"total": 1.0}, {"category": {"outcome": XSS}}), arrays)
        s.put_result("r", XSS, f"{XSS}/2", ResultRow("error", error=XSS))
        s.add_label("r", Label.now(f"{XSS}/1", XSS, None, Category(Outcome.M_IA, None), author=XSS, note=XSS))
        page = run_report(s, "r")
    assert "<script" not in page.lower() and "<img src=x" not in page and "onerror=alert(3)>" not in page
    assert "&lt;img src=x onerror=alert(3)&gt;" in page and "&amp;amp;" in page
    with pytest.raises(FailureLensError, match="no run 'nope'"):
        run_report(Store(tmp_path / "s", readonly=True), "nope")


def test_report_names_the_labeller_and_counts_in_whole_numbers(tmp_path):
    from engine.cases.benchmarks import Case
    from engine.cases.categories import Category, Label, Outcome
    from engine.runs.report import _logit_diff_chart

    with Store(tmp_path / "s") as s:
        s.create_run("r", {"models": [{"label": "m", "source": "zoo:xs"}], "benchmarks": [{"kind": "zoo"}]})
        s.put_cases("r", [Case("1", "math", "1 + 1 =", "2", {})])
        s.put_result("r", "m", "1", ResultRow("ok", 2.0, 3, 1, "3", 2, "2", 3, ""))
        s.add_label("r", Label.now("1", "m", None, Category(Outcome.M_IA, None), author="Ada", note="off by one"))
        page = run_report(s, "r")
        frame = s.results_frame("r")
    assert "<th>labelled by</th>" in page and "<td>Ada</td>" in page and "<td>off by one</td>" in page
    assert (frame.loc[0, "human_author"], frame.loc[0, "human_note"]) == ("Ada", "off by one")
    enc = _logit_diff_chart(frame).to_dict()["encoding"]
    assert enc["y"]["axis"]["format"] == "d" and enc["y"]["axis"]["tickMinStep"] == 1
    assert enc["x"]["axis"]["labelOverlap"] == "greedy" and enc["x"]["axis"]["format"] == "~g"
