"""AppTests of the Sweeps page's story: labels go to the run on screen, overview charts have real bars, and the
category shown is the one the causal checks decide (engine.cases.outcome)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.cases.benchmarks import Case
from engine.runs.store import ResultRow, Store
from engine.runs.sweep import text_array

APP = str(Path(__file__).resolve().parents[1] / "app.py")
MODEL, CASE = "tiny", "bench/1"


def _clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _store(folder: Path) -> Path:
    """Two runs with the same model and case; run "b" ran the checks (verdict: does not explain)."""
    arrays = {"token_ids": np.arange(3), "special_mask": np.zeros(3, bool), "offsets": np.zeros((3, 2), int),
              "segments": np.zeros(3, np.int8), "relevance": np.array([0.5, 1.0, 0.2], np.float32),
              "layer_relevance": np.zeros((2, 3), np.float32),
              "tokens_json": text_array('["a", "b", "c"]')}
    heuristic = {"category": {"outcome": "M-IA", "pattern": None}, "version": "1",
                 "reasons": ["O2: total relevance +1.700 with Δℓ = 2.00: input attribution explains it"]}
    with Store(folder) as s:
        for run in ("a", "b"):
            s.create_run(run, {"models": [{"label": MODEL, "source": "x"}]}, name=run)
            s.put_cases(run, [Case("1", "bench", "a b c", "ref", {"query": [(0, 5)]})])
            check = {"curves": {"verdict": "not_explained", "area": -0.5}, "ablation": {"r_zero": 0.1}} \
                if run == "b" else None
            s.put_result(run, MODEL, CASE, ResultRow("ok", 2.0, 3, 1, "x", 2, "y", 3, "", {"total": 1.7},
                                                     heuristic, check=check), arrays)
    return folder


def _page(folder: Path, run: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"store": str(folder), "run": run})
    at.switch_page("pages/sweeps.py")
    return _clean(at.run())


def test_switching_runs_cannot_save_a_stale_label(tmp_path):
    from ui.sections.sweep_views import label_key

    folder = _store(tmp_path / "store")
    at = _page(folder, "a")
    key_a, key_b = (label_key(str(folder), run, MODEL, CASE) for run in ("a", "b"))
    # fill in run a's form without saving it
    at.selectbox(key=f"sw:outcome:{key_a}").set_value("NC-IA+M-AG")
    at.text_input(key=f"sw:author:{key_a}").input("Ada")
    at.text_input(key=f"sw:note:{key_a}").input("meant for run a")
    _clean(at.run())
    # switch to run b: its form is its own, pre-filled from run b's category, not from what was typed for a
    _clean(at.selectbox(key="w:run").set_value("b").run())
    assert not [w for w in at.selectbox if w.key == f"sw:outcome:{key_a}"]
    assert at.selectbox(key=f"sw:outcome:{key_b}").value == "NC-IA+AG"  # decided by run b's check
    assert at.text_input(key=f"sw:author:{key_b}").value == ""
    _clean(at.button(key=f"FormSubmitter:sw:label:{key_b}-Save label").click().run())
    with Store(folder, readonly=True) as s:
        assert s.labels("a") == []  # nothing went to the run that is no longer on screen
        (label,) = s.labels("b")
    assert (label["outcome"], label["author"], label["note"]) == ("NC-IA+AG", "", "")


def test_the_category_shown_is_the_checks(tmp_path):
    folder = _store(tmp_path / "store")
    at = _page(folder, "b")
    shown = next(d.value for d in at.dataframe if "status" in d.value.columns).iloc[0]
    assert (shown["outcome"], shown["labelled"]) == ("not explained yet", "causal check")
    at = _page(folder, "a")  # no checks: the heuristic, said to be a guess
    shown = next(d.value for d in at.dataframe if "status" in d.value.columns).iloc[0]
    assert (shown["outcome"], shown["labelled"]) == ("explained by the heatmap", "guessed from the heatmap alone")


def test_overview_share_charts_have_a_height_per_row(tmp_path):
    """The outcome and pattern bars drew as a flat line in the browser: a fixed height with the legend below
    let Streamlit's renderer squeeze the rows to nothing. Each row now gets its own step of height."""
    import json

    at = _page(_store(tmp_path / "store"), "b")
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    shares = [s for s in specs if s.get("encoding", {}).get("y", {}).get("field") == "row"]
    assert len(shares) == 2  # outcome and pattern
    for spec in shares:
        assert spec["height"] == {"step": 32}, spec["height"]
        assert spec["encoding"]["color"]["legend"]["orient"] == "bottom"


def test_the_sweep_form_writes_the_yaml_beside_it(tmp_path):
    from engine.runs.config import parse_sweep_config

    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/sweeps.py")
    _clean(at.run())
    at.text_input(key="sw:form:name").input("my-run")
    at.multiselect(key="sw:form:models").set_value(["zoo:s"])
    at.number_input(key="sw:form:limit").set_value(3)
    at.text_input(key="sw:form:store").input(str(tmp_path / "out"))
    _clean(at.button(key="FormSubmitter:sw:form-Write the config →").click().run())
    text = at.session_state["sw_config"]
    assert at.text_area(key="w:sw_config").value == text  # shown beside the form, editable
    cfg = parse_sweep_config(text, "page", tmp_path)
    assert cfg.name == "my-run" and [m.source for m in cfg.models] == ["zoo:s"]
    assert cfg.benchmarks[0].filters.limit == 3 and cfg.compute.checks.enabled
    assert cfg.store == str(tmp_path / "out")
    assert any(str(tmp_path / "out") in c.value.replace("\\", "") for c in at.caption)  # where results land
    # an impossible choice is named, and the YAML stays as it was
    at.multiselect(key="sw:form:models").set_value([])
    at.button(key="FormSubmitter:sw:form-Write the config →").click().run()
    assert "Pick at least one model" in " ".join(e.value for e in at.error)
    assert at.session_state["sw_config"] == text


def test_reasons_are_shown_in_words_without_rule_codes(tmp_path):
    at = _page(_store(tmp_path / "store"), "a")
    reasons = [c.value for c in at.caption if c.value.startswith("·")]
    assert reasons and not any(r.startswith("· O2") for r in reasons), reasons
    assert any(r.startswith("· Total relevance") for r in reasons), reasons
