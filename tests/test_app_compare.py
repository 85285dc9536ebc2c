"""AppTest walks of the Scaling, Evolution and Sweeps pages: default flows on the zoo and bad inputs.

Runs on the built zoo; without one (it is trained by `python -m engine.zoo.train`), on a stand-in of tiny random
models with the same files (tests/compare_fixtures.py). Every test checks that no exception element reached the page.
"""
from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180
FEW = "3"  # cases per comparison, through the page's own control (ncases in the link)


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(f"pages/{name}.py")
    return clean(at.run())


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    """What the reader sees: Markdown backslash escapes (ui.safe.plain) removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", " | ".join(str(e.value) for e in elements))


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


# ---- Scaling ----------------------------------------------------------------------------------------------

def strips(at: AppTest) -> list[str]:
    return [h.value for h in at.html if "fl-strip" in h.value]


def cards(at: AppTest) -> list[str]:
    return [h.value for h in at.html if "fl-cards" in h.value]


def verdict_table(at: AppTest):
    return next(d.value for d in at.dataframe if "verdict" in d.value.columns and "top1" in d.value.columns)


def test_scaling_default_flow():
    from engine import zoo
    from engine.compare.verdicts import FIXED, VERDICTS

    sizes = [f"zoo:{s}" for s in zoo.zoo_sizes()]
    at = page("scaling", ncases=FEW)
    assert not at.error, texts(at.error)
    assert at.session_state["cmp_models"] == sizes and at.session_state["cmp_ref"] == sizes[0]
    assert at.title[0].value == "Model scaling"
    assert {"The case at hand", "The set view", "Relevance by segment"} <= set(subheaders(at))
    # the case at hand (the Heatmap page's default case): one verdict per model, one strip row per model
    here = verdict_table(at)
    assert list(here["model"]) == sizes and set(here["verdict"]) <= set(VERDICTS)
    assert all(f'data-value="{v}"' in cards(at)[0] for v in here["verdict"])  # headline = table
    strip = strips(at)[0]
    assert strip.count("<tr>") == (len(sizes) + 1) * strip.count("<table")  # models + the difference row, per block
    assert strip.count(">&lt;bos&gt;</td>") == len(sizes) + 1 and "|&lt;bos&gt;" not in strip  # one BOS column
    # the set view: verdict counts agree with the scatter's table
    table = next(d.value for d in at.dataframe if "delta_ref" in d.value.columns)
    assert len(table) == int(FEW) * (len(sizes) - 1) and table["delta_ref"].notna().all()
    assert "corrected" not in table.columns  # the old threshold region is off by default
    set_cards = cards(at)[-1]
    for model in sizes[1:]:
        fixed = int((table[table["model"] == model]["verdict"] == FIXED).sum())
        assert f'data-value="fixed {fixed} of {FEW}"' in set_cards.split(f'data-model="{model}"')[1][:80]
    assert len(at.get("vega_lite_chart")) >= 4  # verdict bars, scatter, ECDF, segment bars
    # the old threshold region as an overlay: redraws from the cached result, lives in the link
    clean(at.toggle(key="w:overlay").set_value(True).run())
    clean(at.number_input(key="w:corr_x").set_value(0.0).run())
    clean(at.number_input(key="w:corr_y").set_value(5.0).run())
    table = next(d.value for d in at.dataframe if "delta_ref" in d.value.columns)
    assert table["corrected"].sum() == ((table["delta_ref"] > 0) & (table["delta"] < 5)).sum()
    assert at.query_params["corr_x"] == "0.0" and at.query_params["overlay"] == "1"
    # a shared colour scale and another difference row
    clean(at.radio(key="w:strip_scale").set_value("shared").run())
    clean(at.selectbox(key="w:strip_a").set_value("—").run())
    assert strips(at)[0].count("<tr>") == len(sizes) * strips(at)[0].count("<table")
    assert at.query_params["strip_scale"] == "shared"
    # robust chart scales: clipping lists what it leaves out; the choice lives in the link
    clean(at.radio(key="w:y_scale").set_value("clip").run())
    assert any("Outside the charts" in m.value for m in at.markdown) and at.query_params["y_scale"] == "clip"


def test_scaling_and_evolution_open_on_the_case_from_the_heatmap_page():
    from engine import zoo

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["ncases"] = FEW
    clean(at.run())  # the Heatmap page with its default case
    default = at.session_state["case"]
    other = next(f"{f.model}/{f.case_id}" for f in zoo.load_failures(zoo.zoo_sizes()[-1])
                 if f"{f.model}/{f.case_id}" != default)
    clean(at.selectbox(key="w:case").set_value(other).run())
    assert at.session_state["case"] == other
    case_id = other.split("/", 1)[1]
    for name, first in (("scaling", f"zoo:{zoo.zoo_sizes()[0]}"), ("evolution", zoo.zoo_checkpoints()[0])):
        at.switch_page(f"pages/{name}.py")
        clean(at.run())
        assert not at.error, texts(at.error)
        assert any(f"**{case_id}**" in m.value for m in at.markdown), name
        here = verdict_table(at)
        assert set(here["case_id"]) == {case_id} and here["model"].iloc[0] == first
        assert strips(at) and first in strips(at)[0]
    # more cases beside the case at hand: counts instead of one verdict
    extra = next(f"{f.model}/{f.case_id}" for f in zoo.load_failures() if f.case_id != case_id)
    clean(at.multiselect(key="w:ev_add").set_value([extra]).run())
    assert set(verdict_table(at)["case_id"]) == {case_id, extra.split("/", 1)[1]}
    assert "fixed " in cards(at)[0] and " of 2" in cards(at)[0]


def test_scaling_on_an_own_prompt():
    at = page("scaling", ncases=FEW, prompt="<q> what is 298 plus 21 ? <a>")
    assert not at.error, texts(at.error)
    here = verdict_table(at)
    assert set(here["case_id"]) == {"your prompt"} and here["target"].iloc[0] != here["contrast"].iloc[0]
    assert strips(at)


def test_scaling_needs_two_models():
    from engine import zoo

    at = page("scaling", ncases=FEW)
    clean(at.multiselect(key="w:cmp_models").set_value([f"zoo:{zoo.zoo_sizes()[0]}"]).run())
    assert "Pick at least two models" in texts(at.warning)
    clean(at.multiselect(key="w:cmp_models").set_value([]).run())
    assert "Pick at least two models" in texts(at.warning)
    assert not at.error and not at.get("vega_lite_chart")


def test_scaling_bad_link_values():
    from engine import zoo

    small = f"zoo:{zoo.zoo_sizes()[0]}"
    at = page("scaling", ncases="1", cmp_models=["zoo:nope", small], cmp_ref="zoo:nope")
    assert "Unknown zoo model 'nope'" in texts(at.error)
    at = page("scaling", ncases="0", corr_x="99", overlay="1", strip_scale="nope")
    assert not at.error, texts(at.error)
    assert at.session_state["ncases"] == 1 and at.session_state["corr_x"] == 50.0
    assert at.session_state["strip_scale"] == "row"


@pytest.mark.parametrize("name", ["scaling", "evolution", "sweeps"])
def test_presentation_mode(name):
    at = page(name, ncases=FEW, present="1")
    assert not at.error, texts(at.error)
    assert any("stMetricValue" in h.value for h in at.html)  # the presentation CSS
    assert at.query_params["present"] == "1"


# ---- Evolution --------------------------------------------------------------------------------------------

def test_evolution_default_flow():
    from engine import zoo

    series = zoo.checkpoint_series()
    size = list(series)[-1]
    points = series[size]
    at = page("evolution", ncases=FEW)
    assert not at.error, texts(at.error)
    assert at.session_state["ev_series"] == size and at.session_state["ev_points"] == points
    assert at.session_state["ev_cases"] == "last"
    assert {"The case at hand", "What training fixed and what it broke",
            "Relevance by segment per checkpoint"} <= set(subheaders(at))
    # the film strip: one row per checkpoint (plus the difference row), per block
    strip = strips(at)[0]
    assert strip.count("<tr>") == (len(points) + 1) * strip.count("<table")
    assert len(at.get("vega_lite_chart")) >= 3  # verdict bars, Δℓ lines, segment bars
    # the default cases fail at the last checkpoint (not the first: no improvement built in)
    last = next(d.value for d in at.dataframe if "top1" in d.value.columns and len(d.value) == int(FEW) * len(points))
    assert (last[last["model"] == points[-1]]["verdict"] != "fixed").all()
    # clipped charts list their outliers
    clean(at.radio(key="w:y_scale").set_value("clip").run())
    assert any("Outside the charts" in m.value for m in at.markdown)
    clean(at.radio(key="w:y_scale").set_value("symlog").run())
    assert at.query_params["y_scale"] == "symlog"
    # fewer points redraw from a new (smaller) task; another set of cases
    clean(at.multiselect(key="w:ev_points").set_value(points[:2]).run())
    assert not at.error, texts(at.error)
    assert at.query_params["ev_points"] == points[:2]
    assert strips(at)[0].count("<tr>") == 3 * strips(at)[0].count("<table")
    clean(at.selectbox(key="w:ev_cases").set_value(zoo.zoo_sizes()[0]).run())
    assert not at.error, texts(at.error)


def test_evolution_bad_inputs():
    from engine import zoo

    at = page("evolution", ncases=FEW)
    clean(at.multiselect(key="w:ev_points").set_value(zoo.zoo_checkpoints()[:1]).run())
    assert "Pick at least two checkpoints" in texts(at.warning)
    clean(at.multiselect(key="w:ev_points").set_value([]).run())
    assert "Pick at least two checkpoints" in texts(at.warning)
    clean(at.radio(key="w:ev_source").set_value("hub").run())
    clean(at.text_input(key="w:ev_path").input("org/model").run())
    clean(at.text_input(key="w:ev_revs").input("step1, step1").run())
    assert "names a revision twice" in texts(at.error)
    clean(at.radio(key="w:ev_source").set_value("local").run())
    clean(at.text_area(key="w:ev_revs").input("/no/such/a\n/no/such/b").run())
    assert "does not exist" in texts(at.error) and not at.get("vega_lite_chart")


# ---- Sweeps -----------------------------------------------------------------------------------------------

def finish(at: AppTest, seconds: float = 240) -> AppTest:
    """Rerun until the background sweep has ended (its summary replaces the progress bar)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        clean(at.run())
        if at.success or at.info and any("stopped" in i.value for i in at.info) or at.error:
            return at
        time.sleep(0.5)
    raise AssertionError("the sweep did not finish")


def test_sweep_runs_and_results_are_browsable(tmp_path):
    from engine.runs.store import Store

    store = tmp_path / "store"
    at = page("sweeps")
    example = at.session_state["sw_config"]
    assert "kind: zoo" in example and "zoo-demo" in example
    config = example.replace("limit: 12", "limit: 3").replace("runs/zoo-demo", str(store))
    clean(at.text_area(key="w:sw_config").input(config).run())
    clean(at.button(key="sw:start").click().run())
    assert not at.error, texts(at.error)
    finish(at)
    assert not at.error, texts(at.error)
    assert "finished" in texts(at.success)
    assert at.session_state["store"] == str(store) and at.session_state["run"] == "zoo-demo"
    assert at.query_params["store"] == str(store) and at.query_params["run"] == "zoo-demo"
    # browse: table, charts, one case's stored heatmap, exports
    results = next(d.value for d in at.dataframe if "status" in d.value.columns)
    n_models = config.count("source:")
    assert len(results) == 3 * n_models
    assert (results["status"] == "ok").any(), results[["model_label", "status", "error"]]
    assert len(at.get("vega_lite_chart")) == 3  # Δℓ histogram, outcome shares, pattern shares
    assert any("fl-heatmap" in h.value for h in at.html)
    labels = {b.label for b in at.get("download_button")}
    assert {"⬇ CSV", "⬇ Parquet", "⬇ HTML report"} <= labels
    # filters live in the link
    model = results["model_label"].iloc[-1]
    clean(at.multiselect(key="w:sw_models").set_value([model]).run())
    shown = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert set(shown["model_label"]) == {model} and at.query_params["sw_models"] == model
    clean(at.multiselect(key="w:sw_models").set_value([]).run())
    # confirm the suggestion, then change it: both stored with their time, the latest wins
    from ui.sections.sweep_views import label_key

    model, case_id = at.session_state["sw_case"].split("::")
    key = label_key(str(store), "zoo-demo", model, case_id)
    next(b for b in at.button if b.key.startswith("sw:confirm:")).click()
    clean(at.run())
    at.selectbox(key=f"sw:outcome:{key}").set_value("NC-IA+AG")
    at.selectbox(key=f"sw:pattern:{key}").set_value("OIT")
    at.text_input(key=f"sw:author:{key}").input("tester")
    clean(at.button(key=f"FormSubmitter:sw:label:{key}-Save label").click().run())
    with Store(store, readonly=True) as s:
        history = [label for label in s.labels("zoo-demo", latest=False) if label["case_id"] == case_id]
        latest = s.labels("zoo-demo")
    assert len(history) == 2 and history[0]["author"] == "" and history[1]["author"] == "tester"
    assert all(label["created"] > 0 for label in history)
    mine = next(label for label in latest if label["case_id"] == case_id and label["model_label"] == model)
    assert (mine["outcome"], mine["pattern"]) == ("NC-IA+AG", "OIT")
    shown = next(d.value for d in at.dataframe if "status" in d.value.columns)
    row = shown[(shown["model_label"] == model) & (shown["case_id"] == case_id)].iloc[0]
    # shown in words, not codes (the run's CSV / Parquet exports keep the codes)
    assert (row["outcome"], row["pattern"], row["labelled"]) == ("not explained yet", "irrelevant tokens overweighted",
                                                                 "person")
    # a damaged database cannot make the page read outside the store folder
    with sqlite3.connect(store / "failure_lens.sqlite") as db:
        db.execute("UPDATE results SET arrays = '../../outside.npz' WHERE model_label = ? AND case_id = ?",
                   (model, case_id))
    clean(at.run())
    assert "points outside the store folder" in texts(at.error)


def test_a_second_sweep_never_shows_the_first_ones_message(tmp_path):
    store = tmp_path / "store"
    at = page("sweeps")
    first = at.session_state["sw_config"].replace("limit: 12", "limit: 1").replace("runs/zoo-demo", str(store))
    first = first.replace("name: zoo-demo", "name: first")
    clean(at.text_area(key="w:sw_config").input(first).run())
    clean(at.button(key="sw:start").click().run())
    assert "Sweep first finished" in texts(finish(at).success)
    # the same run again, refused: only the refusal shows, not the first sweep's "finished" as if it were this one's
    clean(at.button(key="sw:start").click().run())
    assert "already has results" in texts(at.error) and not at.success, texts(at.success)
    # a second run in the same store: its message, also while the first run is the one browsed
    clean(at.text_area(key="w:sw_config").input(first.replace("name: first", "name: second")).run())
    clean(at.button(key="sw:start").click().run())
    assert not at.error, texts(at.error)
    assert "Sweep second finished" in texts(finish(at).success)
    clean(at.selectbox(key="w:run").set_value("first").run())
    assert at.session_state["run"] == "first"
    assert "Sweep second finished" in texts(at.success) and "first" not in texts(at.success)


def test_sweep_bad_configs_and_stores(tmp_path):
    at = page("sweeps")
    clean(at.text_area(key="w:sw_config").input("name: x\nmodels: [\n  - {source: zoo:xs\n").run())
    clean(at.button(key="sw:start").click().run())
    assert "sweep config line" in texts(at.error) and "not valid YAML" in texts(at.error)
    bad_key = "name: x\nmodels:\n  - {source: 'zoo:xs'}\nbenchmark:\n  - kind: zoo\nstore: s\n"
    clean(at.text_area(key="w:sw_config").input(bad_key).run())
    clean(at.button(key="sw:start").click().run())
    assert "sweep config line 4: unknown key 'benchmark'" in texts(at.error)
    clean(at.text_area(key="w:sw_config").input("x" * (65 << 10)).run())
    clean(at.button(key="sw:start").click().run())
    assert "longer than 64 KiB" in texts(at.error)
    # an uploaded file replaces the text (size-limited); its errors name the line too
    clean(at.file_uploader(key="sw:upload").upload("big.yaml", b"#" * (65 << 10), "application/yaml").run())
    assert "a sweep config may be at most 64 KiB" in texts(at.error)
    clean(at.file_uploader(key="sw:upload").set_value(("bad.yaml", b"name: x\nstore: s\nmodels: 3\n",
                                                       "application/yaml")).run())
    assert at.session_state["sw_config"] == "name: x\nstore: s\nmodels: 3\n"
    clean(at.button(key="sw:start").click().run())
    assert "sweep config line 3: models must be a list, not 3" in texts(at.error)
    # browsing: nothing typed, a folder without a store
    assert "Type the folder of a results store" in texts(at.info)
    clean(at.text_input(key="w:store").input(str(tmp_path / "nothing")).run())
    assert "no store in" in texts(at.error)


def stored_rows(store: Path, run_id: str, more_than: int = -1, seconds: float = 120) -> int:
    """Stored results of a run, waiting until there are more than `more_than`."""
    from engine.records import FailureLensError
    from engine.runs.store import Store

    end = time.monotonic() + seconds
    while True:
        try:
            with Store(store, readonly=True) as s:
                n = len(s.result_rows(run_id))
        except FailureLensError:  # not there or not set up yet
            n = 0
        if n > more_than or time.monotonic() > end:
            return n
        time.sleep(0.2)


def test_sweep_stop_and_resume(tmp_path):
    from engine import zoo
    from engine.runs.store import Store

    store = tmp_path / "store"
    config = (f"name: long\nmodels:\n  - {{source: 'zoo:{zoo.zoo_sizes()[0]}', label: one}}\n"
              f"benchmarks:\n  - kind: zoo\n    filters: {{limit: 400}}\nstore: '{store}'\n")
    at = page("sweeps")
    clean(at.text_area(key="w:sw_config").input(config).run())
    clean(at.button(key="sw:start").click().run())
    stored_rows(store, "long", 0)
    clean(at.button(key="sw:stop").click().run())
    finish(at)
    assert "Sweep long stopped" in texts(at.info), texts(at.info) + texts(at.error)
    stored = stored_rows(store, "long")
    assert 0 < stored < 400
    # again without Resume: refused with a way out; with Resume: goes on from there
    clean(at.button(key="sw:start").click().run())
    assert "Turn on Resume" in texts(at.error)
    clean(at.toggle(key="w:sw_resume").set_value(True).run())
    clean(at.button(key="sw:start").click().run())
    assert not at.error, texts(at.error)
    stored_rows(store, "long", stored)
    clean(at.button(key="sw:stop").click().run())
    finish(at)
    assert "Sweep long stopped" in texts(at.info) and f"{stored} stored before" in texts(at.info)
    with Store(store, readonly=True) as s:
        rows = s.result_rows("long")
    assert stored < len(rows) < 400 and len({r["case_id"] for r in rows}) == len(rows)
