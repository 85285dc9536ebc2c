"""The whole study's time left (engine.runs.study_eta): the arithmetic on hand-made numbers, the row costs of the
zoo study's phases, the phases' planned rows of a fixture study, the progress line of the CLI and the families
filter of a study config (the page's tiny study)."""
from __future__ import annotations

import io

import pytest

from engine.runs.config import ChecksSpec, ComputeSpec, GraphSpec
from engine.runs.study_eta import PhasePlan, row_units, study_eta, unit_rate
from engine.runs.sweep import SweepProgress

ZOO = [PhasePlan(1000, 1.0), PhasePlan(170, 27.0), PhasePlan(1870, 3.0)]  # the zoo study's rows (bench/RESULTS.md)


def test_row_units_of_each_phase():
    assert row_units(ComputeSpec(heatmap=False)) == 1.0  # the screen: one forward pass
    assert row_units(ComputeSpec()) == 3.0  # the other models: and the LRP backward pass
    zoo_reference = ComputeSpec(graph=GraphSpec(enabled=True), checks=ChecksSpec(enabled=True, k=10, nodes=20))
    assert row_units(zoo_reference) == pytest.approx(1 + 2 + 4 + 0.25 * (10 * (1 + 5) + 20))


def test_study_eta_on_hand_made_numbers():
    # 400 of 1,000 screened at 0.1 s per unit: 600 screen rows + 170 x 27 + 1,870 x 3 units still to do
    assert study_eta(ZOO, 0, 400, 0.1) == pytest.approx(0.1 * (600 + 170 * 27 + 1870 * 3))
    # half-way through the reference phase at 2 s per row (2 / 27 s per unit): 85 rows + the models phase
    unit = unit_rate(85, 170, 85 * 2.0, 27.0)
    assert unit == pytest.approx(2.0 / 27)
    assert study_eta(ZOO, 1, 85, unit) == pytest.approx(85 * 2.0 + 1870 * 3 * 2.0 / 27)
    # in the last phase it is the sweep's own time left; a phase that is done leaves nothing
    assert study_eta(ZOO, 2, 1000, 0.05) == pytest.approx(870 * 3 * 0.05)
    assert study_eta(ZOO, 2, 1870, 0.05) == 0.0
    assert study_eta(ZOO, 0, 0, None) is None


def test_unit_rate_says_nothing_without_a_measured_row():
    assert unit_rate(0, 10, None, 3.0) is None  # the sweep's Clock has computed no row yet
    assert unit_rate(10, 10, 0.0, 3.0) is None  # nothing left: the rate cannot be read back
    assert unit_rate(4, 10, 12.0, 2.0) == pytest.approx(1.0)


def test_the_study_bar_shows_the_whole_study_left():
    from engine.runs.study import StudyProgress
    from engine.runs.study_cli import StudyBar

    out = io.StringIO()
    bar = StudyBar(out, every=0.0)
    sweep = SweepProgress("case", "xs", 3, 10, 3, 10, 30.0, 70.0)
    bar(StudyProgress("reference", 2, sweep, 610.0))
    bar(StudyProgress("screen", 1, sweep, None))
    first, second = out.getvalue().splitlines()
    assert first.startswith("phase 2/3 reference [") and first.endswith("left 1:10  study left 10:10")
    assert second.endswith("study left --:--")


def test_planned_rows_of_a_fixture_study(tmp_path):
    """Before the screen has run: every screened case, at most failures_per_family of each family's, those in every
    other model; the families filter keeps only the families it names."""
    import dataclasses

    from study_fixtures import PER_FAMILY, write_study

    from engine.runs.study import _plans, _screen_cases, _write_cases, load_study_config, parse_study_config

    cfg = load_study_config(write_study(tmp_path))  # 3 families x 4 cases, 3 failures each, 4 other models
    benches = _write_cases(tmp_path, "screen", cfg, _screen_cases(cfg))
    plans = _plans(cfg, benches)
    assert [p.rows for p in plans] == [3 * PER_FAMILY, 3 * 3, 3 * 3 * 4]
    assert [p.units for p in plans] == [1.0, row_units(cfg.compute), 3.0]
    math = dataclasses.replace(cfg, families=("math",))
    groups = _screen_cases(math)
    assert sum(map(len, groups)) == PER_FAMILY and all(r["meta"]["family"] == "math" for g in groups for r in g)
    assert "families" in math.identity()["study"] and "families" not in cfg.identity()["study"]
    text = (tmp_path / "study.yaml").read_text() + "families: [math, code]\n"
    assert parse_study_config(text, "s.yaml", tmp_path).families == ("math", "code")
