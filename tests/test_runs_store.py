import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cases.benchmarks import Case
from engine.cases.categories import Category, Label, Outcome, Pattern, suggest_category
from engine.records import FailureLensError
from engine.runs.store import DB_NAME, SCHEMA_VERSION, ResultRow, Store

ROOT = Path(__file__).resolve().parents[1]


def _row(i=0):
    sug = suggest_category({"total": 0.5, "instruction": -0.2}, 2.0)
    return ResultRow(status="ok", logit_diff=2.0 + i, ref_rank=2, target_id=5, target=" no", contrast_id=6,
                     contrast=" yes", position=10, prefix="The", segment_rel={"instruction": -0.2, "total": 0.5},
                     suggestion=sug.to_dict(), faith={"k_relevance": 2, "k_random_mean": 5.5}, extra={"n": i})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "my store #1?") as s:  # characters that need quoting in an SQLite URI
        s.create_run("r1", {"models": ["a"]}, name="first")
        s.put_cases("r1", [Case("1", "ifeval", "Say no.", "yes", {"query": [(0, 7)]}, {"k": 1})])
        yield s


def test_put_get_and_idempotent_resume(store):
    rel = np.arange(5, dtype=np.float32)
    assert not store.has_result("r1", "a", "ifeval/1")
    assert store.put_result("r1", "a", "ifeval/1", _row(), {"relevance": rel})
    assert store.has_result("r1", "a", "ifeval/1") and store.done_cases("r1", "a") == {"ifeval/1"}
    assert store.get_result("r1", "a", "ifeval/1") == _row()
    np.testing.assert_array_equal(store.load_arrays("r1", "a", "ifeval/1")["relevance"], rel)
    files = list((store.folder / "arrays").rglob("*"))
    assert not store.put_result("r1", "a", "ifeval/1", _row(1), {"relevance": rel * 2})  # second write: nothing
    assert list((store.folder / "arrays").rglob("*")) == files
    assert store.get_result("r1", "a", "ifeval/1").logit_diff == 2.0 and len(store.result_rows("r1")) == 1
    assert store.create_run("r1", {"models": ["a"]}) is False
    with pytest.raises(FailureLensError, match="another config"):
        store.create_run("r1", {"models": ["b"]})
    assert store.cases("r1")[0]["case_id"] == "ifeval/1" and store.schema_version == SCHEMA_VERSION


def test_transaction_rolls_back_whole(store):
    with pytest.raises(sqlite3.OperationalError):
        store._write([("INSERT INTO runs VALUES ('r2', '', '{}', 0)", ()), ("INSERT INTO nowhere VALUES (1)", ())])
    assert [r["run_id"] for r in store.runs()] == ["r1"]


def test_wal_reader_sees_committed_state_while_writer_is_open(store):
    store.put_result("r1", "a", "ifeval/1", _row())
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"
    writer = sqlite3.connect(store.folder / DB_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO results (run_id, model_label, case_id, status, segment_rel_json, extra_json, created)"
                   " VALUES ('r1', 'b', 'ifeval/1', 'ok', '{}', '{}', 0)")
    with Store(store.folder, readonly=True) as reader:
        assert len(reader.result_rows("r1")) == 1  # not blocked, and no uncommitted row
        writer.execute("COMMIT")
        assert len(reader.result_rows("r1")) == 2
        with pytest.raises(FailureLensError, match="read-only"):
            reader.put_result("r1", "c", "ifeval/1", _row())
    writer.close()


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(FailureLensError, match="newer Failure Lens.*schema 99"):
        Store(tmp_path)
    with pytest.raises(FailureLensError, match="newer Failure Lens"):
        Store(tmp_path, readonly=True)


def test_array_paths_cannot_leave_the_store(store, tmp_path):
    store.put_result("r1", "a", "ifeval/1", _row(), {"x": np.zeros(2)})
    store._write([("UPDATE results SET arrays = '../../outside.npz'", ())])
    with pytest.raises(FailureLensError, match="outside the store folder"):
        store.load_arrays("r1", "a", "ifeval/1")
    with pytest.raises(FailureLensError, match="outside"):
        store.resolve("/etc/passwd")


def test_read_only_folder_gives_a_clear_message(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate a read-only disk
        def refuse(*a, **k):
            raise OSError(30, "Read-only file system")
        monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    else:
        folder.chmod(0o555)
    with pytest.raises(FailureLensError, match="not writable.*choose a writable store path"):
        Store(folder)
    folder.chmod(0o755)
    with pytest.raises(FailureLensError, match="no store in"):
        Store(tmp_path / "empty", readonly=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FailureLensError, match="is a file"):
        Store(tmp_path / "file")


def test_labels_history_and_exports(store, tmp_path):
    store.put_result("r1", "a", "ifeval/1", _row())
    sug = suggest_category({"total": 0.5, "instruction": -0.2}, 2.0)
    store.add_label("r1", Label.now("ifeval/1", "a", sug, Category(Outcome.M_IA, Pattern.OIT)))
    store.add_label("r1", Label.now("ifeval/1", "a", sug, Category(Outcome.M_IA, Pattern.URT), author="bo"))
    assert [label["pattern"] for label in store.labels("r1", latest=False)] == ["OIT", "URT"]
    [latest] = store.labels("r1")
    assert latest["author"] == "bo" and latest["suggested_json"] and latest["created"] > 0
    for name in ("res.csv", "res.parquet"):
        path = store.export(tmp_path / name, "r1")
        df = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
        row = df.iloc[0]
        assert ((row.benchmark, row.seg_instruction, row.suggested_pattern, row.human_pattern)
                == ("ifeval", -0.2, "URT", "URT"))
        assert row.faith_k_relevance == 2
    with pytest.raises(FailureLensError, match=".csv or .parquet"):
        store.export(tmp_path / "res.xlsx")


WRITER = textwrap.dedent("""
    import sys, types, numpy as np
    engine = types.ModuleType("engine")  # skip the package __init__ (torch + transformers): store needs neither
    engine.__path__ = [{root!r} + "/engine"]
    sys.modules["engine"] = engine
    from engine.runs.store import Store, ResultRow
    s = Store({folder!r})
    s.create_run("r", {{"n": 1}})
    for i in range(300):
        if not s.has_result("r", "m", str(i)):
            s.put_result("r", "m", str(i), ResultRow("ok", logit_diff=float(i)),
                         {{"rel": np.full(2000, i, np.float32)}})
    print("done")
""")


def test_kill_9_mid_write_then_resume(tmp_path):
    script = WRITER.format(root=str(ROOT), folder=str(tmp_path / "s"))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.05)
        try:
            with Store(tmp_path / "s", readonly=True) as r:
                if len(r.result_rows()) >= 10:
                    break
        except FailureLensError:  # not created yet
            continue
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(tmp_path / "s") as s:
        rows = s.result_rows("r")
        assert 10 <= len(rows) < 300
        for r in rows:  # every committed row has its complete array file
            assert (s.load_arrays("r", "m", r["case_id"])["rel"] == int(r["case_id"])).all()
        s.clean_orphans(min_age_s=0)
        referenced = {r["arrays"] for r in s.result_rows()}
        assert {p.relative_to(s.folder).as_posix() for p in (s.folder / "arrays").rglob("*.npz*")} == referenced
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "done", out.stderr
    with Store(tmp_path / "s") as s:
        rows = s.result_rows("r")
        assert sorted(int(r["case_id"]) for r in rows) == list(range(300))
        assert all(r["logit_diff"] == float(r["case_id"]) for r in rows)


@pytest.mark.parametrize("change, named", [
    ("CREATE TABLE annotations (id INTEGER, body TEXT)", "tables this version does not know: annotations"),
    ("ALTER TABLE results ADD COLUMN verdict_k INTEGER", "table results has columns"),
])
def test_store_of_another_layout_is_named_and_left_unchanged(tmp_path, change, named):
    """A store written by another Failure Lens under the same schema number: the cause is named, nothing is written."""
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute(change)
    before = (tmp_path / DB_NAME).read_bytes()
    for readonly in (False, True):
        with pytest.raises(FailureLensError, match="another version of Failure Lens") as err:
            Store(tmp_path, readonly=readonly)
        assert named in str(err.value) and "writable" not in str(err.value)
    assert (tmp_path / DB_NAME).read_bytes() == before


def test_tables_without_a_schema_number_are_named(tmp_path):
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("CREATE TABLE runs (run_id TEXT)")
    with pytest.raises(FailureLensError, match="no schema number.*tables this version does not know: runs"):
        Store(tmp_path)
