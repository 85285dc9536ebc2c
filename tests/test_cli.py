"""The command line: same results as the API, clear errors with exit code 2, atomic output files."""
from __future__ import annotations

import json
import subprocess
import sys

from engine import attribute, load_model
from engine.objectives import Objective

PROMPT = "the of and to in is was for on that"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300)


def test_attribute_json_equals_api(tiny_model_dir):
    path = str(tiny_model_dir("qwen3"))
    out = _run("attribute", "--model", path, "--prompt", PROMPT, "--contrast", " of", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    api = attribute(load_model(path), PROMPT, Objective(contrast=" of"))
    assert got["relevance"] == api.relevance and got["contrast"]["text"] == " of"


def test_errors_exit_2_with_message(tiny_model_dir, tmp_path):
    out = _run("attribute", "--model", str(tmp_path / "missing"), "--prompt", PROMPT)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = _run("attribute", "--model", str(tiny_model_dir("qwen3")), "--prompt", PROMPT, "--contrast", "the of")
    assert out.returncode == 2 and "not one" in out.stderr


def test_graph_cli_writes_json_and_graphml(tiny_model_dir, tmp_path):
    path = str(tiny_model_dir("llama"))
    for name in ("g.json", "g.graphml"):
        target = tmp_path / name
        out = _run("graph", "--model", path, "--prompt", PROMPT, "--split", "--out", str(target))
        assert out.returncode == 0, out.stderr
        assert target.stat().st_size > 100 and not (tmp_path / (name + ".tmp")).exists()
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["meta"]["pruned"] and doc["tokens"][:3] == ["th", "e", " of"]
    bad = _run("graph", "--model", path, "--prompt", PROMPT, "--top-p", "1.5", "--out", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "out of range" in bad.stderr and not (tmp_path / "x.json").exists()
