"""The Sweeps page's form writes a config that engine.runs.config reads back as chosen."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.records import FailureLensError
from engine.runs.config import parse_sweep_config
from engine.runs.form import SweepForm, store_path, sweep_yaml


def test_form_round_trips_through_the_config_parser(tmp_path):
    form = SweepForm("demo", ("zoo:s", "zoo:l"), limit=5, compute=("checks", "graph"), store="runs/x")
    text = sweep_yaml(form, tmp_path)
    cfg = parse_sweep_config(text, "form", tmp_path)
    assert [m.source for m in cfg.models] == ["zoo:s", "zoo:l"] and [m.label for m in cfg.models] == ["s", "l"]
    assert cfg.benchmarks[0].kind == "zoo" and cfg.benchmarks[0].filters.limit == 5
    assert cfg.compute.heatmap and cfg.compute.checks.enabled and cfg.compute.graph.enabled
    assert not cfg.compute.faithfulness.enabled
    assert Path(cfg.store) == (tmp_path / "runs" / "x").resolve() == store_path(form, tmp_path)
    assert f"store: {(tmp_path / 'runs' / 'x').resolve()}" in text  # the full path, as the page shows it


def test_default_store_is_named_after_the_run_and_text_cannot_add_keys(tmp_path):
    form = SweepForm("evil\nstore: /etc", ("zoo:s",), benchmark="table", path="b.csv\nray: {}", limit=None)
    cfg = parse_sweep_config(sweep_yaml(form, tmp_path), "form", tmp_path)
    assert cfg.name == "evil\nstore: /etc" and cfg.benchmarks[0].path.endswith("b.csv\nray: {}")
    assert cfg.benchmarks[0].filters.limit is None
    assert Path(cfg.store) == (tmp_path / "runs" / "evil\nstore: /etc").resolve()


@pytest.mark.parametrize("form,words", [
    (SweepForm("a", ()), "at least one model"),
    (SweepForm("a", ("zoo:s",), benchmark="nope"), "Unknown benchmark kind"),
    (SweepForm("a", ("zoo:s",), benchmark="math"), "needs its file"),
    (SweepForm("a", ("zoo:s",), limit=0), "at least 1"),
    (SweepForm("a", ("zoo:s",), compute=("magic",)), "Unknown computation")])
def test_bad_choices_are_named(form, words, tmp_path):
    with pytest.raises(FailureLensError, match=words):
        sweep_yaml(form, tmp_path)
