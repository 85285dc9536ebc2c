"""The notes notebook (engine.cases.notes): filters, refusals, the path convention, and concurrent writers
(threads and processes) that lose nothing."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.cases.notes import CATEGORIES, Note, Notebook, case_key, default_path
from engine.records import FailureLensError

WRITERS, EACH = 6, 40
ROOT = Path(__file__).resolve().parents[1]


def test_add_filter_and_status(tmp_path):
    nb = Notebook(tmp_path / "n.sqlite")
    a = nb.add(Note("zoo:l", "l/x", "  the instruction loses  ", "URT", author="ana"))
    nb.add(Note("zoo:l", "l/y", "another case"))
    nb.add(Note("zoo:s", "l/x", "other model", "M-IA", "confirmed"))
    assert a.id is not None and a.hypothesis == "the instruction loses" and a.created > 0
    assert [n.hypothesis for n in nb.notes(model="zoo:l", case="l/x")] == ["the instruction loses"]
    assert len(nb.notes()) == 3 and [n.model for n in nb.notes(status="confirmed")] == ["zoo:s"]
    assert [n.case for n in nb.notes(category="URT")] == ["l/x"]
    nb.set_status(a.id, "rejected")
    assert nb.notes(model="zoo:l", case="l/x")[0].status == "rejected"
    assert Notebook(tmp_path / "n.sqlite").notes(status="rejected")[0].id == a.id  # kept on disk
    with pytest.raises(FailureLensError, match="no note 999"):
        nb.set_status(999, "open")


def test_bad_notes_are_refused(tmp_path):
    nb = Notebook(tmp_path / "n.sqlite")
    for note, msg in ((Note("zoo:l", "c", "  "), "empty"), (Note("zoo:l", "c", "x", "XYZ"), "Unknown category"),
                      (Note("zoo:l", "c", "x", status="done"), "Unknown status"),
                      (Note("zoo:l", "c", "x" * 5000), "shorten it"), (Note("", "c", "x"), "open a case first")):
        with pytest.raises(FailureLensError, match=msg):
            nb.add(note)
    assert nb.notes() == [] and set(CATEGORIES) >= {"", "M-IA", "URT+OIT"}
    with pytest.raises(FailureLensError, match="FAILURE_LENS_NOTES"):
        Notebook(tmp_path / "n.sqlite" / "below-a-file.sqlite")


def test_path_beside_the_prompt_store_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("FAILURE_LENS_NOTES", raising=False)
    monkeypatch.setenv("FAILURE_LENS_PROMPTS", str(tmp_path / "store" / "prompts"))
    assert default_path() == tmp_path / "store" / "notes.sqlite"
    monkeypatch.setenv("FAILURE_LENS_NOTES", str(tmp_path / "mine.sqlite"))
    assert default_path() == tmp_path / "mine.sqlite"
    assert case_key("l/x", "p") == "l/x" and case_key("", "p").startswith("ph:")


def _write(path: str, who: str, n: int) -> None:
    nb = Notebook(path)
    while not os.path.exists(path + ".go"):  # every writer starts at once
        time.sleep(0.005)
    for i in range(n):
        nb.add(Note("zoo:l", "l/x", f"{who} note {i}", author=who))


WRITER = """
import os, sys, time
from engine.cases.notes import Note, Notebook
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = Notebook(path)
while not os.path.exists(path + ".go"):
    time.sleep(0.005)
for i in range(n):
    nb.add(Note("zoo:l", "l/x", f"{who} note {i}", author=who))
"""


def test_concurrent_threads_and_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "n.sqlite")
    Notebook(path)
    # separate interpreters (not multiprocessing: its spawn re-imports whatever __main__ an earlier test left behind)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, f"p{i}", str(EACH)], env=env, cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for i in range(WRITERS // 2)]
    threads = [threading.Thread(target=_write, args=(path, f"t{i}", EACH)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the interpreters start (not needed for correctness: only so that all writers overlap)
    Path(path + ".go").touch()
    for t in threads:
        t.join(timeout=300)
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    notes = Notebook(path).notes()
    want = {f"{w} note {i}" for w in [f"t{i}" for i in range(WRITERS)] + [f"p{i}" for i in range(WRITERS // 2)]
            for i in range(EACH)}
    assert {n.hypothesis for n in notes} == want and len(notes) == len(want)
    assert len({n.id for n in notes}) == len(notes)
