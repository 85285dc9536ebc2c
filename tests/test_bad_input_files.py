"""Bad input in files and text: CSV injection, paths named by data, the graph
component's folder, resource bombs, and text that is not what it looks like. Each test fails on the code
before the fix (noted per test)."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import time

import pandas as pd
import pytest

from engine import files
from engine.cases.benchmarks import load_benchmark
from engine.present import render
from engine.present.text import csv_cell, csv_text, frame_csv, visible
from engine.records import FailureLensError
from engine.runs.config import load_sweep_config, parse_sweep_config

TABLE = {"prompt": "prompt", "reference": "reference"}
BASE = "models: [{source: zoo:xs}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"


# ---------------------------------------------------------------- 2. CSV injection
FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\r=1+1", "\n=1+1", " =1+1", "\t=1+1", "\u200b=1+1", "\x00@x",
            "\u00a0-2", "\uff1d1+1"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_csv_guard_catches_formulas_after_whitespace_and_controls(cell):
    assert csv_cell(cell).startswith("'")


def test_csv_cells_with_cr_or_lf_stay_in_their_cell():
    """Before: a lone CR was written unquoted (Python's csv quotes only the line terminator's characters), so
    a spreadsheet started a new row at it and read `=1+1` as a formula."""
    text = csv_text([["a", "b"], ["\r=1+1", "x\ny"], ['say "hi", then', 2.5]])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["a", "b"], ["'\r=1+1", "x\ny"], ['say "hi", then', "2.5"]]
    assert text.split("\n")[1].startswith("\"'\r=1+1\"")  # quoted: a spreadsheet keeps the CR in the cell


def test_every_csv_writer_uses_the_guard(tmp_path):
    df = pd.DataFrame({"token": ["\r=HYPERLINK(1)", "ok"], "n": [1, float("nan")]})
    assert frame_csv(df).split("\n")[1].startswith("\"'\r=HYPERLINK")
    assert render.frame_csv is frame_csv  # the dashboard's table downloads
    text = render.heatmap_csv(["\r=cmd", "b"], [1, 2], [0.5, -0.5], [1.0, -1.0], [True, True])
    assert list(csv.reader(io.StringIO(text, newline="")))[1][1] == "'\r=cmd"

    from engine.runs.store import ResultRow, Store

    with Store(tmp_path / "store") as store:  # the store's export (before: df.to_csv, no guard at all)
        store.create_run("r", {})
        store.put_result("r", "=evil()", "c1", ResultRow("ok", target="\r=1+1", contrast="@x"))
        out = store.export(tmp_path / "out.csv", "r")
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert rows[0]["model_label"] == "'=evil()" and rows[0]["target"] == "'\r=1+1" and rows[0]["contrast"] == "'@x"


# ---------------------------------------------------------------- 3. paths named by data
@pytest.mark.parametrize("name", ["../x/secret.txt", "<tmp>/x/secret.txt", "sub/../../x/secret.txt", "link.txt"])
def test_attachments_may_only_name_files_in_the_benchmarks_folder(tmp_path, name):
    """Before: `path.parent / attached` was read whatever it named."""
    name = name.replace("<tmp>", str(tmp_path))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "secret.txt").write_text("SECRET")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "link.txt").symlink_to(tmp_path / "x" / "secret.txt")
    (bench / "g.jsonl").write_text(json.dumps({"task_id": "1", "Question": "q?", "Final answer": "a",
                                               "file_name": name}) + "\n")
    with pytest.raises(FailureLensError, match="own folder|outside its data folder"):
        load_benchmark("gaia", bench / "g.jsonl")


def test_an_attachment_inside_the_folder_is_read(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ctx.txt").write_text("the context")
    (tmp_path / "g.jsonl").write_text(json.dumps({"task_id": "1", "Question": "q?", "Final answer": "a",
                                                  "file_name": "docs/ctx.txt"}) + "\n")
    assert load_benchmark("gaia", tmp_path / "g.jsonl")[0].prompt.startswith("the context")


# ---------------------------------------------------------------- 4. the graph component's folder
def test_graph_component_is_served_from_a_private_verified_folder(tmp_path, monkeypatch):
    """Before: <shared temp>/failure-lens-graph-<hash>, predictable and used as found."""
    from ui import graph_component as gc

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = gc.private_root()
    assert root == tmp_path / "cache" / "failure-lens"
    st = os.lstat(root)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    good = gc.build_folder(root)
    page = (good / "index.html").read_bytes()
    (good / "index.html").write_text("<script>planted()</script>")  # someone changed what will be served
    (good / "extra.js").write_text("planted()")
    again = gc.build_folder(root)
    assert again == good and (good / "index.html").read_bytes() == page and not (good / "extra.js").exists()
    os.chmod(good, 0o777)  # a folder others may write into is not trusted either
    assert stat.S_IMODE(os.lstat(gc.build_folder(root)).st_mode) == 0o700


def test_graph_component_refuses_a_shared_cache_root(tmp_path, monkeypatch):
    from ui import graph_component as gc

    cache = tmp_path / "cache"
    (cache).mkdir()
    (tmp_path / "elsewhere").mkdir()
    (cache / "failure-lens").symlink_to(tmp_path / "elsewhere")  # planted link: not a private folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    root = gc.private_root()
    assert root != cache / "failure-lens" and stat.S_IMODE(os.lstat(root).st_mode) == 0o700
    root.rmdir()


# ---------------------------------------------------------------- 5. resource bombs
def _timed(fn):
    start = time.monotonic()
    try:
        fn()
    finally:
        assert time.monotonic() - start < 20, "took too long: the limit was not checked before the work"


BILLION_LAUGHS = BASE + "x: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"x{i}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(9))


@pytest.mark.parametrize("text, message", [
    (BILLION_LAUGHS, "expands to more than 200,000 values"),
    (BASE + "x: &a [*a]\n", "nested more than 64 levels|alias"),
    (BASE + "x: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels"),
    (BASE + "x: " + "{a: " * 80 + "1" + "}" * 80 + "\n", "nested more than 64 levels"),
])
def test_yaml_bombs_are_refused_with_the_limit(text, message):
    """Before: the alias bomb exhausted memory in the key/line walker; the others raised RecursionError."""
    with pytest.raises(FailureLensError, match=message):
        _timed(lambda: parse_sweep_config(text, "bomb.yaml"))


def test_sweep_config_size_limit(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(files.MAX_CONFIG_BYTES + 1)
    with pytest.raises(FailureLensError, match="more than the limit of 4 MiB"):
        load_sweep_config(big)


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("make", [
    lambda d: _fifo(d / "b.jsonl"),
    lambda d: (d / "b.jsonl").symlink_to("/dev/zero") or d / "b.jsonl",
])
def test_special_files_are_refused_before_reading(tmp_path, make):
    """Before: a FIFO blocked forever and /dev/zero was read without end."""
    path = make(tmp_path)
    with pytest.raises(FailureLensError, match="FIFO|character device"):
        _timed(lambda: load_benchmark("table", path, columns=TABLE))


def test_a_multi_gigabyte_line_stops_at_the_line_limit(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # a sparse 3 GiB file of NUL bytes: one endless line
    with pytest.raises(FailureLensError, match="line 1 is longer than the limit of 67,108,864 characters"):
        _timed(lambda: load_benchmark("table", path, columns=TABLE))


def test_a_multi_gigabyte_attachment_is_refused_by_size(tmp_path):
    with open(tmp_path / "ctx.txt", "wb") as f:
        f.truncate(3 << 30)
    (tmp_path / "g.jsonl").write_text(json.dumps({"task_id": "1", "Question": "q", "Final answer": "a",
                                                  "file_name": "ctx.txt"}) + "\n")
    with pytest.raises(FailureLensError, match="3,072 MiB, more than the limit of 64 MiB"):
        _timed(lambda: load_benchmark("gaia", tmp_path / "g.jsonl"))


@pytest.mark.parametrize("depth", [65, 5000])
def test_deeply_nested_json_is_refused(tmp_path, depth):
    """Before: 5,000 levels raised RecursionError (a traceback)."""
    nested = "[" * depth + "]" * depth
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "reference": "b", "x": ' + nested + "}\n")
    (tmp_path / "d.json").write_text('{"problem": "a", "solution": "b", "x": ' + nested + "}")
    with pytest.raises(FailureLensError, match="nested more than 64 levels"):
        load_benchmark("table", tmp_path / "d.jsonl", columns=TABLE)
    with pytest.raises(FailureLensError, match="nested more than 64 levels"):
        load_benchmark("math", tmp_path / "d.json")


def test_a_long_csv_field_is_read_and_a_too_long_one_names_the_limit(tmp_path, monkeypatch):
    """Before: a 200k-character field (over csv's 128 KiB default) was reported as a binary file."""
    path = tmp_path / "long.csv"
    path.write_text("prompt,reference\n" + "word " * 40_000 + ",b\n")
    assert len(load_benchmark("table", path, columns=TABLE)[0].prompt) == 200_000
    import csv as csv_module

    old = csv_module.field_size_limit()
    monkeypatch.setattr(files, "MAX_LINE_CHARS", 1000)
    try:
        csv_module.field_size_limit(1000)
        with pytest.raises(FailureLensError, match="row 2: not valid CSV .*limit is 1,000 characters"):
            load_benchmark("table", path, columns=TABLE)
    finally:
        csv_module.field_size_limit(old)


def test_write_atomic_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old report")

    real_write = os.write

    def full(fd, data):  # the first block fits, then the disk is full
        if len(data) > 4096:
            return real_write(fd, bytes(data[:4096]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(FailureLensError, match="the disk is full. Nothing was changed there"):
        files.write_atomic(target, "new report " * 10_000, "report")
    monkeypatch.undo()
    assert target.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left behind
    with pytest.raises(FailureLensError, match="folder .* does not exist"):
        files.write_atomic(tmp_path / "missing" / "r.html", "x")


def test_streamed_writes_are_all_or_nothing_too(tmp_path):
    """write_atomic_text (the graph CLI's streamed JSON): a writer that fails half-way leaves the old file."""
    target = tmp_path / "graph.json"
    target.write_text("old graph")

    def full(f):
        f.write("{" + "x" * 100_000)
        raise OSError(28, "No space left on device")

    def broken(f):
        f.write("{half")
        raise ValueError("a bug half-way")

    with pytest.raises(FailureLensError, match="the disk is full. Nothing was changed there"):
        files.write_atomic_text(target, full, "graph")
    with pytest.raises(ValueError, match="half-way"):
        files.write_atomic_text(target, broken, "graph")
    assert target.read_text() == "old graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json"]  # no temporary file left behind
    files.write_atomic_text(target, lambda f: f.write("é" * 3), "graph")
    assert target.read_text(encoding="utf-8") == "ééé"


# ---------------------------------------------------------------- 9. text that is not what it looks like
def test_lone_surrogates_are_refused_when_the_benchmark_loads(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"prompt": "a \\ud800 b", "reference": "c"}\n')
    with pytest.raises(FailureLensError, match="lone surrogate"):
        load_benchmark("table", tmp_path / "s.jsonl", columns=TABLE)


@pytest.mark.parametrize("token, shown", [("\u200b", "\\u200b"), ("\u202e", "\\u202e"), ("\u00ad", "\\xad"),
                                          ("\ufeff", "\\ufeff"), ("a\u2066b", "a\\u2066b"), ("\u2028", "\\u2028")])
def test_invisible_and_bidi_characters_are_visible_in_every_renderer(token, shown):
    """Before: they reached the HTML / LaTeX / chart labels raw (an empty box, or text flipped by a bidi override)."""
    assert visible(token) == shown
    tokens, vals = ["x", token], [0.5, -0.5]
    html_page = render.heatmap_fragment(tokens, vals, vals, [True, True])
    latex = render.heatmap_latex(tokens, vals, [True, True])
    from engine.present import charts

    chart = json.dumps(charts.token_chart(tokens, vals, vals, [True, True]).to_dict())
    for out in (html_page, latex, chart):
        assert token not in out and shown.split("\\")[-1] in out  # e.g. "u202e" of the escape \u202e
