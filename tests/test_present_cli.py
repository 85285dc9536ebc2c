"""`python -m engine explain|deck|cases` on a shipped zoo failure case: words, JSON, slides, clear errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys

from engine import zoo


class _Out:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _run(*args):
    """In-process `python -m engine ...` (one real subprocess below checks the entry point itself)."""
    import contextlib

    from engine.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return _Out(rc, out.getvalue(), err.getvalue())


def _case():
    f = zoo.load_failures("xs")[0]
    return f, f"{f.model}/{f.case_id}"


def test_explain_text_and_json_tell_the_same_story():
    f, ref = _case()
    out = subprocess.run([sys.executable, "-m", "engine", "explain", "--model", "zoo:xs", "--case", ref],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"zoo:xs · {ref}\nThe model says '{f.target}' but should say '{f.contrast}'")
    assert f"by {f.logit_diff:.1f} logits" in out.stdout and "conservation" in out.stdout
    js = _run("explain", "--model", "zoo:xs", "--case", ref, "--json")
    assert js.returncode == 0, js.stderr
    d = json.loads(js.stdout)
    assert d["case"] == ref and d["target"] == f.target and d["contrast"] == f.contrast
    assert abs(d["logit_diff"] - f.logit_diff) < 1e-3 and d["band"] in ("good", "fair", "weak")
    assert d["headline"] in out.stdout and d["sentences"][0] == d["headline"]
    assert {"toward_wrong", "toward_right", "segments", "outcome", "pattern", "conservation"} <= set(d)
    # a bare case id is looked up under the --model zoo name; --prompt works as in `attribute`
    bare = _run("explain", "--model", "zoo:xs", "--case", f.case_id, "--json")
    assert json.loads(bare.stdout)["headline"] == d["headline"]
    own = _run("explain", "--model", "zoo:xs", "--prompt", f.prompt, "--target", f"#{f.target_id}",
               "--contrast", f"#{f.contrast_id}", "--json")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["logit_diff"] == d["logit_diff"]


def test_unknown_case_and_missing_input_are_clear_errors():
    out = _run("explain", "--model", "zoo:xs", "--case", "xs/no-such-case")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no failure 'no-such-case'" in out.stderr and "python -m engine cases" in out.stderr
    out = _run("explain", "--model", "zoo:xs", "--case", "zz/eval-math-00014")
    assert out.returncode == 2 and "look like 'l/eval-math-00014'" in out.stderr
    out = _run("explain", "--model", "zoo:xs")
    assert out.returncode == 2 and "Give --case" in out.stderr
    listed = _run("cases", "--model", "zoo:xs")
    assert listed.returncode == 0 and _case()[1] in listed.stdout


def test_deck_writes_pptx_and_html_atomically(tmp_path):
    from pptx import Presentation

    f, ref = _case()
    target = tmp_path / "case.pptx"
    out = _run("deck", "--model", "zoo:xs", "--case", ref, "--out", str(target), "--compare", "zoo:s")
    assert out.returncode == 0, out.stderr
    prs = Presentation(io.BytesIO(target.read_bytes()))
    assert len(prs.slides) == 6  # title, heatmap, graph, the causal check, numbers, across models
    assert prs.slides[3].shapes.title.text.startswith("The check: does removing the red tokens flip")
    cells = [c.text for sh in prs.slides[4].shapes if sh.has_table for row in sh.table.rows for c in row.cells]
    assert "the causal check" in cells  # the check decides the category, as in the dashboard
    assert all(f"'{f.target}'" in s.shapes.title.text and f"'{f.contrast}'" in s.shapes.title.text for s in prs.slides)
    assert [p.name for p in tmp_path.iterdir()] == ["case.pptx"]  # no temporary file left
    html = tmp_path / "case.html"
    assert _run("deck", "--model", "zoo:xs", "--case", ref, "--out", str(html), "--no-graph").returncode == 0
    assert "<script" not in html.read_text() and f.case_id in html.read_text()
    bad = _run("deck", "--model", "zoo:xs", "--case", ref, "--out", str(tmp_path / "case.docx"))
    assert bad.returncode == 2 and ".pptx or .html" in bad.stderr and not (tmp_path / "case.docx").exists()
