"""Studies (engine.runs.study*): config checks (zoo, paper, bad input), the three phases on the zoo, the figures'
tables and claims, the CLI outputs (report, deck, CSV, JSON), page tables = CLI tables, kill -9 then resume."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from study_fixtures import write_study
from sweep_fixtures import assert_same_runs, stored

from engine import zoo
from engine.__main__ import main
from engine.records import FailureLensError
from engine.runs.store import DB_NAME, Store
from engine.runs.study import PHASES, load_study_config, parse_study_config, run_id, run_study
from engine.runs.study_figures import OUTCOMES, failure_outcome, study_tables

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = {"holds", "does not hold", "mixed", "not tested"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """An uninterrupted fixture study: (folder, config path, summary, progress events)."""
    folder = tmp_path_factory.mktemp("study")
    cfg = write_study(folder)
    events = []
    summary = run_study(load_study_config(cfg), progress=events.append)
    return folder, cfg, summary, events


def test_shipped_configs_parse_without_weights_or_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    z = load_study_config(ROOT / "studies" / "zoo.yaml")
    assert z.reference.label == "xs" and [m.label for m in z.sizes] == ["s", "m", "l"]
    assert [m.label for m in z.checkpoints] == zoo.checkpoint_series()["m"]
    assert z.compute.checks.enabled and z.compute.heatmap and Path(z.store).is_absolute()
    assert z.benchmarks[0].kind == "zoo" and z.failures_per_family["default"] >= 50
    p = load_study_config(ROOT / "studies" / "paper.yaml")
    assert p.reference.source == "Qwen/Qwen3-0.6B" and [m.source for m in p.sizes] == [
        "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B"]
    assert len(p.checkpoints) == 3 and all("Olmo-3-7B-Think" in m.source for m in p.checkpoints)
    assert [b.kind for b in p.benchmarks] == ["ifeval", "math", "evalplus", "gaia"]
    assert all(Path(b.path).is_absolute() for b in p.benchmarks) and p.compute.checks.enabled


BASE = "name: s\nreference: {source: 'zoo:xs'}\nsizes: [{source: 'zoo:s'}]\nbenchmarks: [{kind: zoo}]\nstore: st\n"


@pytest.mark.parametrize("text, words, line", [
    (BASE.replace("reference:", "referense:"), "unknown key 'referense'", 2),
    (BASE + "failures_per_family: 0\n", "out of its range", 6),
    (BASE + "failures_per_family: {math: -2}\n", "failures_per_family.math", 6),
    (BASE + "checkpoints: [{source: 'zoo:m', label: 'zoo:xs'}]\n", "used twice", 6),
    (BASE + "checkpoints: [{source: 'zoo:m', label: 'zoo:s'}]\n", "used twice", 6),
    (BASE.replace("sizes: [{source: 'zoo:s'}]\n", ""), "needs sizes or checkpoints", 1),
    (BASE + "objective: {k: 5000}\n", "objective.k is 5000", 6),
    (BASE.replace("name: s", "name: a/b"), "without '/'", 1),
    (BASE.replace("reference: {source: 'zoo:xs'}\n", ""), "missing required key 'reference'", 1),
    ("name: [\n", "not valid YAML", 2),
    (BASE + "compute: {heatmap: false, checks: true}\n", "turn on compute.heatmap", 6),
])
def test_bad_config_names_the_problem_and_line(text, words, line):
    with pytest.raises(FailureLensError) as e:
        parse_study_config(text, "s.yaml")
    assert words in str(e.value) and f"s.yaml line {line}" in str(e.value), str(e.value)


def test_cli_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "failures_per_family: 0\n")
    assert main(["study", str(bad)]) == 2
    assert "out of its range" in capsys.readouterr().err
    assert main(["study", str(tmp_path / "missing.yaml")]) == 2


def test_three_phases_and_pinned_pairs(study):
    folder, cfg, summary, events = study
    assert [p.run_id for p in summary.phases] == [run_id("fx", p) for p in PHASES] and not summary.cancelled
    assert {e.phase for e in events} == set(PHASES) and events[-1].sweep.phase == "done"
    with Store(folder / "store", readonly=True) as s:
        ref = {r["case_id"]: r for r in s.result_rows(run_id("fx", "reference"))}
        assert ref and all(r["status"] == "ok" and r["logit_diff"] > 0 for r in ref.values())
        fams = [c.split("-")[1] for c in ref]
        assert all(fams.count(f) <= 3 for f in set(fams))
        others = s.result_rows(run_id("fx", "models"))
        assert len(others) == 4 * len(ref)  # s + three checkpoints, every reference failure
        for r in others:  # the same token pair as the reference's failure, Δℓ of either sign
            assert (r["target"], r["contrast"], r["prefix"]) == tuple(ref[r["case_id"]][k] for k in
                                                                      ("target", "contrast", "prefix"))
    assert summary.phases[2].statuses == {"ok": len(others)}
    # the whole study's time left: at least the phase's own, none before a row is measured, nothing at the end
    timed = [e for e in events if e.sweep.eta_s is not None]
    assert timed and all(e.eta_s is not None and e.eta_s >= e.sweep.eta_s - 1e-9 for e in timed)
    assert events[0].eta_s is None and events[-1].eta_s == 0.0


def test_pinned_failure_reproduces_the_reference_logit_diff(study):
    """The reference model on its own pinned pair gives back its teacher-forced Δℓ."""
    from engine.cases.benchmarks import apply_template, load_benchmark
    from engine.cases.failures import pinned_failure
    from engine.models import load_model

    folder = study[0]
    h = load_model("zoo:xs")
    cases = {c.uid: c for c in load_benchmark("cases", folder / "store" / "study-fx" / "models-0.jsonl")}
    with Store(folder / "store", readonly=True) as s:
        for r in s.result_rows(run_id("fx", "reference"))[:4]:
            text, _ = apply_template(h.tokenizer, cases[r["case_id"]])
            pin = cases[r["case_id"]].meta["pin"]
            div = pinned_failure(h.model, h.tokenizer, text, pin["prefix"], pin["target"], pin["contrast"])
            assert div.logit_diff == pytest.approx(r["logit_diff"], abs=1e-5 * max(1.0, abs(r["logit_diff"])))
            assert div.position == r["position"]


def test_failure_outcome_rules():
    assert failure_outcome("NC-IA+AG", "explains", 0.9, "M-IA") == ("NC-IA+AG", "person")
    assert failure_outcome(None, "explains", None, "NC-IA+AG") == ("M-IA", "check")
    assert failure_outcome(None, "partly", 0.1, None) == ("M-IA", "check")
    assert failure_outcome(None, "not_explained", 0.7, "M-IA") == ("NC-IA+M-AG", "check")
    assert failure_outcome(None, "fragile", 0.2, "M-IA") == ("NC-IA+AG", "check")
    assert failure_outcome(None, None, None, "M-IA") == ("M-IA", "heuristic")
    assert failure_outcome(None, None, None, None) == (None, "none")


def test_tables_and_claims(study):
    folder = study[0]
    with Store(folder / "store", readonly=True) as s:
        t = study_tables(s, "fx")
    n = len(t.failures)
    assert [c.figure for c in t.claims] == [f"Fig {i}" for i in range(1, 8)]
    assert all(c.answer in ANSWERS for c in t.claims) and sum(t.basis_counts.values()) == n
    assert t.basis_counts.get("check") == n  # every failure here has its causal check
    assert set(t.failures["outcome"]) <= set(OUTCOMES)
    assert len(t.tables["fig4_scaling"]) == n and len(t.tables["fig6_checkpoints"]) == 3 * n
    h = t.tables["headline"]
    for _, g in h.groupby("model"):
        assert g["count"].sum() == g["of"].iloc[0] == n
    out = t.tables["fig1_outcomes"]
    assert out["count"].sum() == n and set(out["outcome"]) == set(OUTCOMES)
    assert f"{n} studied failures of xs" in t.case_set()
    assert set(t.tables["patterns_special"]["model"]) == {"xs", "s", "m-step00050", "m-step00500", "m-step06000"}
    assert t.tables["patterns_special"]["special_share"].between(0, 1).all()


def test_cli_outputs_deck_json_and_page_tables(study, tmp_path, capsys):
    from pptx import Presentation

    from ui.sections import study_views as sv

    folder, cfg = study[0], study[1]
    out = {k: tmp_path / f"study.{k}" for k in ("html", "pptx", "json")}
    assert main(["study", str(cfg), "--figures-only", "--report", str(out["html"]), "--deck", str(out["pptx"]),
                 "--csv", str(tmp_path / "csv"), "--json", str(out["json"])]) == 0
    claims = json.loads(out["json"].read_text())
    assert [c["figure"] for c in claims] == [f"Fig {i}" for i in range(1, 8)]
    assert all({"figure", "claim", "answer", "number"} <= c.keys() and c["answer"] in ANSWERS for c in claims)
    titles = [s.shapes.title.text for s in Presentation(out["pptx"]).slides if s.shapes.title is not None]
    figs = [x for x in titles if x.startswith("Fig ")]
    assert len(figs) == 7 and all(c["claim"] in x and x.endswith(c["answer"]) for c, x in zip(claims, figs))
    html = out["html"].read_text()
    assert "Content-Security-Policy" in html and "<script" not in html.lower() and html.count("<h2>Fig ") == 7
    # the page's tables (its cached loader and its CSV download) are the CLI's, byte for byte
    t = sv.tables(str(folder / "store"), "fx")
    page = zipfile.ZipFile(io.BytesIO(sv.csv_zip(t)))
    cli = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "csv").glob("*.csv")}
    assert set(cli) == set(page.namelist()) and len(cli) >= 15
    for name, text in cli.items():
        assert page.read(name).decode("utf-8") == text, name


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            return c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("phase", ["reference", "models"])
def test_kill_9_then_resume_stores_nothing_twice(study, tmp_path, phase):
    """A real SIGKILL in the middle of a phase, then --resume: the same rows and values as the uninterrupted study."""
    folder, _, summary, _ = study
    cfg = write_study(tmp_path)
    totals = [p.total for p in summary.phases]
    wanted = {"reference": totals[0] + 1, "models": totals[0] + totals[1] + 2}[phase]
    db = tmp_path / "store" / DB_NAME
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "paced_sweep.py"), "study", str(cfg), "--quiet"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _rows(db) < wanted and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _rows(db)
    assert wanted <= at_kill < sum(totals), (at_kill, proc.stderr.read().decode()[-2000:])
    assert main(["study", str(cfg), "--resume", "--quiet"]) == 0
    for p in PHASES:
        assert_same_runs(stored(tmp_path / "store", run_id("fx", p)), stored(folder / "store", run_id("fx", p)),
                         rtol=1e-5)
    assert _rows(db) == sum(totals)
    assert main(["study", str(cfg), "--quiet"]) == 2  # an existing study without --resume is refused
