"""Bad input by domain: model folders that would hang or load half-random
weights, numbers out of their domain, store failures, CLI edges. Each test fails on the code before the fix."""
from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine import load_model
from engine.objectives import Objective
from engine.records import Attribution, FailureLensError, dumps
from engine.runs.config import parse_sweep_config
from engine.runs.store import DB_NAME, ResultRow, Store

BASE = "models: [{source: zoo:xs}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"
PROMPT = "the of and to in is was for on that"


def _copy(tiny_model_dir, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(tiny_model_dir("qwen3"), d)
    return d


def _config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    cfg.pop("layer_types", None)
    (d / "config.json").write_text(json.dumps(cfg))


# ---------------------------------------------------------------- 5. model files that would hang
def test_weights_that_are_a_fifo_or_dev_zero_are_refused(tiny_model_dir, tmp_path):
    """Before: a FIFO named model.safetensors blocked the load forever; a link to /dev/zero never ended."""
    fifo = _copy(tiny_model_dir, tmp_path, "fifo")
    (fifo / "model.safetensors").unlink()
    os.mkfifo(fifo / "model.safetensors")
    zero = _copy(tiny_model_dir, tmp_path, "zero")
    (zero / "model.safetensors").unlink()
    (zero / "model.safetensors").symlink_to("/dev/zero")
    for folder, kind in ((fifo, r"a FIFO \(named pipe\)"), (zero, "a character device")):
        start = time.monotonic()
        with pytest.raises(FailureLensError, match=f"model.safetensors is {kind}, not a regular file"):
            load_model(str(folder))
        assert time.monotonic() - start < 30


def test_a_config_claiming_a_billion_layers_is_refused_before_parsing(tiny_model_dir, tmp_path):
    """Before: transformers' config parsing built a 10⁹-entry list (hung)."""
    d = _copy(tiny_model_dir, tmp_path, "huge")
    _config(d, num_hidden_layers=10**9)
    start = time.monotonic()
    with pytest.raises(FailureLensError, match="num_hidden_layers is 1000000000; it must be a whole number from 1 "
                                               "to 1,024"):
        load_model(str(d))
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- 6. weights that do not match the config
def test_more_layers_in_the_config_than_in_the_weights(tiny_model_dir, tmp_path):
    """Before: layers 2 and 3 were initialised at random and attributed silently."""
    d = _copy(tiny_model_dir, tmp_path, "more")
    _config(d, num_hidden_layers=4)
    with pytest.raises(FailureLensError, match="claims num_hidden_layers = 4, but the weights hold 2 layers"):
        load_model(str(d))


def test_a_missing_tensor_is_named(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path, "missing")
    weights = load_file(d / "model.safetensors")
    del weights["model.layers.1.mlp.down_proj.weight"]
    save_file(weights, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(FailureLensError, match=r"1 tensors missing from the weights \(they would be random\): "
                                               r"model.layers.1.mlp.down_proj.weight"):
        load_model(str(d))


def test_an_unexpected_tensor_is_named(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path, "extra")
    weights = load_file(d / "model.safetensors")
    weights["model.layers.1.mlp.surprise.weight"] = torch.zeros(2, 2)
    save_file(weights, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(FailureLensError, match="in the weights but not in the model: model.layers.1.mlp.surprise"):
        load_model(str(d))


def test_the_untampered_model_still_loads(tiny_model_dir, tmp_path):
    assert load_model(str(_copy(tiny_model_dir, tmp_path, "fine"))).n_layers == 2


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    """Before: a token id past the embedding matrix gave a bare IndexError when attributed."""
    from tiny_models import build_tiny

    d = build_tiny("qwen3", tmp_path, vocab_size=300)  # the tokenizer has 500 entries
    with pytest.raises(FailureLensError, match="has 500 entries but the model's embedding matrix only 300 rows"):
        load_model(str(d))


# ---------------------------------------------------------------- 7. numbers out of their domain
@pytest.mark.parametrize("extra, message", [
    ("objective: {k: 5000}", r"objective.k is 5000, out of its range: it must be from 1 to 1,000"),
    ("top_k: 0", r"top_k is 0, out of its range"),
    ("compute: {faithfulness: {enabled: true, max_k: -5}}", r"faithfulness.max_k is -5, out of its range: it must "
                                                            r"be at least 1"),
    ("compute: {faithfulness: {enabled: true, chunk: 0}}", r"faithfulness.chunk is 0, out of its range: it must be "
                                                           r"from 1 to 4,096"),
    ("compute: {faithfulness: {enabled: true, seeds: [-1]}}", r"faithfulness.seeds\[0\] is -1"),
    ("compute: {faithfulness: {enabled: true, mask_id: -3}}", r"faithfulness.mask_id is -3"),
    ("compute: {graph: {enabled: true, pruning: {edge_threshold: -1}}}", r"pruning.edge_threshold is -1.0, out of "
                                                                         r"its range: it must be at least 0"),
    ("compute: {graph: {enabled: true, pruning: {node_threshold: -0.5}}}", r"pruning.node_threshold is -0.5"),
    ("compute: {graph: {enabled: true, layers: [0, -2]}}", r"graph.layers\[1\] is -2"),
    ("compute: {graph: {enabled: true, pruning: {top_p: .nan}}}", r"top_p must be a finite number, not nan"),
    ("benchmarks: [{kind: zoo, filters: {min_logit_diff: .inf}}]", r"min_logit_diff must be a number or null, not inf"),
])
def test_sweep_numbers_out_of_their_domain_are_refused_at_parse_time(extra, message):
    """Before: accepted; every case of the sweep then became an error row."""
    text = BASE.replace("benchmarks: [{kind: zoo}]\n", "") + extra + "\n" if extra.startswith("benchmarks") \
        else BASE + extra + "\n"
    with pytest.raises(FailureLensError, match=message):
        parse_sweep_config(text, "s.yaml")


def test_token_ids_are_ascii_digits_only():
    """Before: '#²' passed str.isdigit() and int() then raised ValueError (a traceback in the CLI)."""
    from engine.__main__ import _token
    from engine.tokens import token_id_of

    assert token_id_of("#12") == 12 and token_id_of("#²") is None and token_id_of("#١٢") is None
    assert _token("#²") == "#²" and _token("7") == 7 and _token("#7") == 7


def test_json_output_never_holds_nan():
    """Before: all-equal logits made conservation NaN, printed as a bare NaN (invalid JSON)."""
    text = dumps({"conservation": float("nan"), "r": [1.0, float("inf"), -float("inf")], "t": (float("nan"),)})
    assert json.loads(text) == {"conservation": None, "r": [1.0, None, None], "t": [None]}
    assert "NaN" not in text and "Infinity" not in text


def test_attribute_json_with_all_equal_logits_is_valid_json(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")))
    with torch.no_grad():
        h.model.lm_head.weight.zero_()  # every logit equal
    from engine import attribute

    att = attribute(h, PROMPT, Objective(target="#5", contrast="#6"))
    assert math.isnan(att.conservation)  # the record keeps the truth ...
    json.loads(att.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))  # ... the JSON stays valid
    assert Attribution.from_json(att.to_json()).conservation is None


def test_nan_thresholds_in_the_url_fall_back_to_the_defaults():
    """Before: ?edge_thr=nan reached the Graph page's slider and crashed it."""
    from ui import state

    with pytest.raises(ValueError):
        state._parse(state.FIELDS[state.EDGE_THR], ["nan"])
    with pytest.raises(ValueError):
        state._parse(state.FIELDS[state.EDGE_THR], ["inf"])
    assert state._parse(state.FIELDS[state.EDGE_THR], ["0.05"]) == 0.05


def test_a_prompt_longer_than_the_context_is_named_in_the_failure_search(tiny_model_dir):
    """Before: the sweep stored a bare IndexError (positions past the model's embedding)."""
    from engine.cases.failures import find_first_divergence

    h = load_model(str(tiny_model_dir("qwen3")))
    with pytest.raises(FailureLensError, match="the prompt has .* tokens, and the model's context holds 8"):
        find_first_divergence(h.model, h.tokenizer, PROMPT * 3, "the of", context=8)
    div = find_first_divergence(h.model, h.tokenizer, "the of", " and to in is was for on that" * 5, context=6)
    assert div is None or div.position < 6  # the reference is only read up to the context


# ---------------------------------------------------------------- 8. store failures
def _store_with_a_result(folder):
    with Store(folder) as s:
        s.create_run("r", {"a": 1})
        s.put_result("r", "m", "c1", ResultRow("ok", logit_diff=1.5, target="x"))


@pytest.mark.parametrize("value, message", [("''", "holds '' instead of one whole number"),
                                            ("'abc'", "holds 'abc' instead of one whole number"),
                                            (None, "holds no row instead")])
def test_an_empty_or_text_schema_version_is_named(tmp_path, value, message):
    """Before: a TypeError comparing None or 'abc' with the schema version (a traceback)."""
    _store_with_a_result(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("DELETE FROM schema_version" if value is None else f"UPDATE schema_version SET version = {value}")
    for readonly in (False, True):
        with pytest.raises(FailureLensError, match=message):
            Store(tmp_path, readonly=readonly)


def test_a_damaged_database_is_named_and_left_as_it_was(tmp_path):
    _store_with_a_result(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    data[4096:8192] = b"\xa5" * 4096  # the page after the schema: garbage
    db.write_bytes(bytes(data))
    with pytest.raises(FailureLensError, match="the store database in .* is damaged .*restore it from a copy"):
        with Store(tmp_path, readonly=True) as s:
            s.results_frame("r")
    assert db.read_bytes() == bytes(data)  # opening it changed nothing


def test_a_full_disk_surfaces_as_a_full_disk_and_keeps_what_was_stored(tmp_path):
    """Before: SQLite had already rolled back, so the ROLLBACK failed with 'cannot rollback - no transaction is
    active', which replaced the real error."""
    _store_with_a_result(tmp_path)
    with Store(tmp_path) as s:
        pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
        s._conn.execute(f"PRAGMA max_page_count = {pages}")  # the database may not grow: a full disk to SQLite
        with pytest.raises(FailureLensError, match="the disk is full"):
            s.put_result("r", "m", "c2", ResultRow("error", error="x" * 200_000))
        assert [r["case_id"] for r in s.result_rows("r")] == ["c1"]
    with Store(tmp_path, readonly=True) as s:
        assert [r["case_id"] for r in s.result_rows("r")] == ["c1"]


def test_array_files_on_a_full_disk_leave_no_row_and_no_temporary_file(tmp_path, monkeypatch):
    _store_with_a_result(tmp_path)
    import numpy as np

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    with Store(tmp_path) as s:
        monkeypatch.setattr(np, "savez_compressed", full)
        with pytest.raises(FailureLensError, match="the disk is full. Nothing was stored for this case"):
            s.put_result("r", "m", "c2", ResultRow("ok"), {"relevance": np.zeros(3)})
        assert not s.has_result("r", "m", "c2")
    assert not [p for p in (tmp_path / "arrays").rglob("*") if p.is_file()]


def test_a_finished_store_on_read_only_media_opens(tmp_path, monkeypatch):
    """Read-only media: SQLite cannot create the WAL index there, and the plain read-only open fails. Root
    ignores permissions, so the failure a read-only mount gives is simulated at the connect call; the fallback
    then opens the real file read-only and immutable and reads it."""
    _store_with_a_result(tmp_path)
    real = sqlite3.connect

    def read_only_mount(database, *a, **k):
        if "immutable=1" not in database:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *a, **k)

    monkeypatch.setattr(sqlite3, "connect", read_only_mount)
    with Store(tmp_path, readonly=True) as s:
        assert [r["case_id"] for r in s.result_rows("r")] == ["c1"]
    with pytest.raises(FailureLensError, match="not on a read-only disk"):
        Store(tmp_path)  # writing there is refused with a message


def test_a_report_into_a_missing_folder_is_refused_before_any_work(tmp_path):
    _store_with_a_result(tmp_path / "store")
    out = subprocess.run([sys.executable, "-m", "engine", "sweep-report", str(tmp_path / "store"), "--out",
                          str(tmp_path / "missing" / "r.html")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "the folder" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------- 10. CLI edges
@pytest.mark.parametrize("args, message", [
    (["--stages", "0,x"], "--stages '0,x' is not a list of layer numbers"),
    (["--out", "<tmp>/missing/g.json"], "does not exist; create it or choose another output path"),
    (["--target", "#²"], "target"),
])
def test_graph_cli_edges_exit_2_without_a_traceback(tiny_model_dir, tmp_path, args, message):
    args = [a.replace("<tmp>", str(tmp_path)) for a in args]
    base = ["--model", str(tiny_model_dir("qwen3")), "--prompt", PROMPT, "--out", str(tmp_path / "g.json")]
    out = subprocess.run([sys.executable, "-m", "engine", "graph", *base, *args], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
