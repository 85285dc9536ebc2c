"""Bad input across engine and CLI: each case gets a clear message naming the problem (issue 8 matrix).

Dashboard bad inputs are covered in test_app_pages.py / test_app_compare.py (rendered messages, no tracebacks).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from engine import attribute, load_model
from engine.cases.benchmarks import load_benchmark
from engine.graph.build import build_graph
from engine.graph.types import PruneSettings
from engine.objectives import Objective
from engine.records import FailureLensError
from engine.runs.config import load_sweep_config, parse_sweep_config
from engine.runs.store import Store

PROMPT = "the of and to in is was for on that"


@pytest.fixture(scope="module")
def qwen(tiny_model_dir):
    return load_model(str(tiny_model_dir("qwen3")))


def _copy(tiny_model_dir, tmp_path, name="m"):
    d = tmp_path / name
    shutil.copytree(tiny_model_dir("qwen3"), d)
    return d


ENGINE_CASES = [
    ("empty prompt", lambda h: attribute(h, ""), "prompt is empty"),
    ("whitespace prompt", lambda h: attribute(h, " \n\t "), "prompt is empty"),
    ("prompt longer than context", lambda h: attribute(h, "the " * 700), "more than the model's context"),
    ("contrast equal to target", lambda h: attribute(h, PROMPT, Objective(target="#5", contrast=5)),
     "same token as the target"),
    ("contrast not one token", lambda h: attribute(h, PROMPT, Objective(contrast="the of")), "not one"),
    ("target not one token", lambda h: attribute(h, PROMPT, Objective(target="of and to")), "not one"),
    ("empty contrast text", lambda h: attribute(h, PROMPT, Objective(contrast="")), "contrast is empty"),
    ("unknown token id", lambda h: attribute(h, PROMPT, Objective(contrast=123456)), "outside the vocabulary"),
    ("unknown token id in ids", lambda h: attribute(h, "", token_ids=[1, 999999]), "outside the vocabulary"),
    ("position out of range", lambda h: attribute(h, PROMPT, Objective(position=99)), "outside the prompt"),
    ("k out of range", lambda h: attribute(h, PROMPT, Objective(strategy="by_topk_avg", k=5000)), "out of range"),
    ("unknown mode", lambda h: attribute(h, PROMPT, Objective(mode="min_logit")), "Unknown mode"),
    ("unknown strategy", lambda h: attribute(h, PROMPT, Objective(strategy="median")), "Unknown strategy"),
    ("graph with one stage", lambda h: build_graph(h, PROMPT, stages=[1]), "at least two stages"),
    ("graph stage out of range", lambda h: build_graph(h, PROMPT, stages=[0, 42]), "at least two stages"),
    ("graph unknown method", lambda h: build_graph(h, PROMPT, method="fast"), "Unknown edge method"),
    ("pruning mass out of range", lambda h: PruneSettings(top_p=1.2), "out of range"),
    ("pruning threshold negative", lambda h: PruneSettings(edge_threshold=-0.1), "out of range"),
]


@pytest.mark.parametrize("name, call, message", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_engine_bad_input(qwen, name, call, message):
    with pytest.raises(FailureLensError, match=message):
        call(qwen)


def test_model_folder_problems(tiny_model_dir, tmp_path):
    with pytest.raises(FailureLensError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FailureLensError, match="not a model folder"):
        load_model(str(tmp_path / "empty"))
    broken = _copy(tiny_model_dir, tmp_path, "broken")
    (broken / "model.safetensors").write_bytes(os.urandom(64))
    with pytest.raises(FailureLensError, match="corrupted or incomplete"):
        load_model(str(broken))
    odd = _copy(tiny_model_dir, tmp_path, "odd")
    cfg = json.loads((odd / "config.json").read_text())
    cfg["architectures"] = ["T5ForConditionalGeneration"]
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FailureLensError, match="not supported. Supported families"):
        load_model(str(odd))
    with pytest.raises(FailureLensError, match="applies to hub ids only"):
        load_model(str(tiny_model_dir("qwen3")), revision="step1000")


def test_zero_relevance_graph_prunes_to_nothing_without_error(tiny_model_dir):
    import numpy as np
    import torch

    from engine.graph.prune import prune

    h = load_model(str(tiny_model_dir("qwen3")))
    with torch.no_grad():
        h.model.lm_head.weight.zero_()  # every logit equal: nothing to explain
    g = build_graph(h, PROMPT, Objective(mode="logit_diff", strategy="demean"))
    assert float(np.abs(g.node_relevance).max()) == 0.0
    pruned = prune(g, PruneSettings())
    assert not any(m.any() for m in pruned.edge_masks)


def test_malformed_files(tmp_path):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"prompt": "a", "reference": "b"}\n{not json\n')
    with pytest.raises(FailureLensError, match="line 2 is not valid JSON"):
        load_benchmark("table", bad_jsonl, columns={"prompt": "prompt", "reference": "reference"})
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("question,answer\nwhat,yes\n")
    with pytest.raises(FailureLensError, match="no column 'prompt'"):
        load_benchmark("table", bad_csv, columns={"prompt": "prompt", "reference": "answer"})
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x81binary\x00\x9f")
    with pytest.raises(FailureLensError, match="not readable as UTF-8"):
        load_benchmark("table", binary, columns={"prompt": "prompt", "reference": "reference"})
    with pytest.raises(FailureLensError, match="x.yaml line 2: not valid YAML"):
        parse_sweep_config("models: [unclosed\n", "x.yaml", tmp_path)
    with pytest.raises(FailureLensError, match="line 1: unknown key 'modles'"):
        parse_sweep_config("modles: []\n", "x.yaml", tmp_path)
    bin_yaml = tmp_path / "c.yaml"
    bin_yaml.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(FailureLensError, match="not UTF-8 text"):
        load_sweep_config(bin_yaml)


def test_store_problems(tmp_path):
    folder = tmp_path / "store"
    Store(folder)  # creates it
    db = next(folder.glob("*.sqlite*")) if list(folder.glob("*.sqlite*")) else next(folder.glob("*.db"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(FailureLensError, match="newer Failure Lens"):
        Store(folder)
    if os.geteuid() != 0:  # root ignores permissions; test_runs_store.py simulates that case
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(FailureLensError, match="not writable"):
            Store(ro)


def test_cli_bad_input_exit_code_and_message(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", "attribute", "--model", str(tmp_path / "x"), "--prompt", ""],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "error:" in out.stderr and "Traceback" not in out.stderr
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: x\nmodels:\n  - sorce: zoo:xs\n")
    out = subprocess.run([sys.executable, "-m", "engine", "sweep", str(cfg)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "sorce" in out.stderr and "line 3" in out.stderr and "Traceback" not in out.stderr
