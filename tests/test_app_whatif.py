"""AppTests of the Heatmap page's What if? section: edits stack, undo and travel in the link; the before -> after
line and the difference row; Save case / Open case in a fresh session (same view and note); a case of another
model shown read-only; hostile case files refused; notes added, listed, filtered."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.objectives import Objective

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(autouse=True)
def _notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("FAILURE_LENS_NOTES", str(tmp_path / "notes.sqlite"))
    monkeypatch.setenv("FAILURE_LENS_PROMPTS", str(tmp_path / "prompts"))


def _clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def _says(elements, text: str) -> bool:
    """Some element's Markdown shows `text` (safe.plain escapes punctuation with backslashes)."""
    return any(text in re.sub(r"\\(.)", r"\1", e.value) for e in elements)


def _strip_html(at: AppTest) -> str:
    return next(h.proto.body for h in at.get("html") if "fl-strip" in h.proto.body)


def _first_red(at: AppTest) -> tuple[int, int]:
    """The ordinary token with the largest relevance (what a presenter removes first) and another one."""
    from engine import zoo
    from engine.heatmap import attribute
    from engine.models import load_model

    f = zoo.find_failure(at.session_state["case"])
    att = attribute(load_model(f"zoo:{f.model}"), f.prompt, Objective(f"#{f.target_id}", f"#{f.contrast_id}"))
    plain = [i for i, s in enumerate(att.special_mask) if not s]
    red = max(plain, key=lambda i: att.relevance[i])
    return red, next(i for i in plain if i != red)


def _edit(at: AppTest, tokens: list[int], word: str = "") -> AppTest:
    _clean(at.multiselect(key="w:wi_pick").set_value(tokens).run())
    if word:
        _clean(at.text_input(key="w:wi_word").set_value(word).run())
        return at.button(key="wi:replace").click().run()
    return _clean(at.button(key="wi:remove").click().run())


def test_remove_replace_undo_and_the_link():
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    assert "What if?" in [s.value for s in at.subheader]
    red, other = _first_red(at)
    _edit(at, [red])
    assert at.query_params["wi"] == f"rm:{red}"
    assert " → " in _metric(at, "Top answer") and " → " in _metric(at, "Δℓ")
    assert _says(list(at.success) + list(at.info), "Removing '")  # the before -> after sentence
    html = _strip_html(at)
    assert "after − before" in html and "→&lt;unk&gt;" in html  # the difference row; the edited column old→new
    # a second edit stacks; a word of several tokens is refused with the vocabulary message; undo goes one back
    _edit(at, [other], "plus")
    assert list(at.session_state["wi"]) == [f"rm:{red}", f"rp:{other}=plus"]
    _clean(at.button(key="wi:undo").click().run())
    assert list(at.session_state["wi"]) == [f"rm:{red}"]
    _edit(at, [other], "foo_bar_baz")
    assert _says(at.error, "'foo_bar_baz' is 5 tokens, not one")
    at.button(key="wi:undo").click().run()
    _clean(at.button(key="wi:clear").click().run())
    assert list(at.session_state["wi"]) == [] and "wi" not in at.query_params


def test_a_link_with_edits_reopens_them_and_bad_edits_are_dropped():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["wi"] = ["rm:4", "zz:1"]
    _clean(at.run())
    assert list(at.session_state["wi"]) == ["rm:4"]
    assert _says(at.warning, "The edit 'zz:1' is not an edit")
    assert " → " in _metric(at, "Top answer")


@pytest.fixture
def deferred(monkeypatch):
    """{file id: callable} of every download made on click (run here as the server would run it on a click)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen = {}
    real = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = real(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        seen[file_id] = (file_name, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return seen


def _made(at: AppTest, deferred: dict, key: str, named: bool = False):
    """What the download button `key` makes when clicked (named: with its file name)."""
    button = next(b for b in at.get("download_button") if key in b.proto.id)
    name, make = deferred[button.proto.deferred_file_id]
    return (name, make()) if named else make()


def test_save_case_then_open_it_in_a_fresh_session(deferred, monkeypatch, tmp_path):
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    red, _ = _first_red(at)
    _edit(at, [red])
    at.text_area(key="wi:note_text").set_value("the first operand <b>pulls</b> $x$")
    at.selectbox(key="wi:note_cat").set_value("URT")
    at.text_input(key="wi:note_author").set_value("ana")
    _clean(at.button(key="FormSubmitter:wi:note-Add note").click().run())
    notes = next(d.value for d in at.dataframe if "hypothesis" in d.value.columns)
    assert list(notes["hypothesis"]) == ["the first operand <b>pulls</b> $x$"] and list(notes["who"]) == ["ana"]
    _clean(at.selectbox(key="w:norm").set_value("none").run())
    delta, answer = _metric(at, "Δℓ"), _metric(at, "Top answer")
    name, data = _made(at, deferred, "wi:save", named=True)
    assert name == f"zoo-l_{at.session_state['case'].replace('/', '-')}.flcase"
    # a fresh session with another (empty) notebook, as on a colleague's machine: open the case file
    monkeypatch.setenv("FAILURE_LENS_NOTES", str(tmp_path / "colleague.sqlite"))
    fresh = _clean(AppTest.from_file(APP, default_timeout=120).run())
    assert not fresh.session_state["wi"]
    fresh.file_uploader(key="wi:open").set_value((name, data, "application/json"))
    _clean(fresh.run())
    assert list(fresh.session_state["wi"]) == [f"rm:{red}"]
    assert _metric(fresh, "Top answer") == answer and _metric(fresh, "Δℓ") == delta
    assert _says(fresh.warning, "Opened the case file") and _says(fresh.warning, "1 note(s) added")
    notes = next(d.value for d in fresh.dataframe if "hypothesis" in d.value.columns)
    assert list(notes["hypothesis"]) == ["the first operand <b>pulls</b> $x$"]
    assert fresh.session_state["norm"] == at.session_state["norm"]
    # opening the same file again adds no second copy of the note
    _clean(fresh.run())
    notes = next(d.value for d in fresh.dataframe if "hypothesis" in d.value.columns)
    assert len(notes) == 1


def test_case_of_another_model_is_read_only_and_hostile_files_are_refused(tmp_path):
    from engine import zoo
    from engine.cases.casefile import CaseFile, model_ref, results_of
    from engine.heatmap import attribute
    from engine.models import load_model

    h = load_model("zoo:xs")
    f = zoo.load_failures("xs")[0]
    att = attribute(h, f.prompt, Objective(f"#{f.target_id}", f"#{f.contrast_id}"))
    cf = CaseFile(model_ref(h), f"xs/{f.case_id}", f.prompt, f"#{f.target_id}", f"#{f.contrast_id}", att.mode,
                  att.strategy, att.k, results=results_of(att))
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    before = at.session_state["prompt"]
    at.file_uploader(key="wi:open").set_value(("xs.flcase", cf.to_bytes(), "application/json"))
    _clean(at.run())
    assert _says(at.warning, "This case was saved with zoo:xs, not zoo:l: the saved results are shown read-only")
    assert at.session_state["prompt"] == before  # the view is not changed
    assert "after − before" in _strip_html(at)
    for data, message in ((b"PK\x03\x04zip", "compressed archive"), (b"[" * 5000, "nested more than"),
                          (b'{"format": "failure-lens-case", "model": {"kind": "local", "name": "/etc"}}',
                           "may not name a path")):
        at.file_uploader(key="wi:open").set_value(("bad.flcase", data, "application/json"))
        at.run()
        assert not at.exception
        assert _says(at.error, message), [e.value for e in at.error]


def test_notes_filters_and_status():
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    for text, status in (("first idea", "open"), ("second idea", "confirmed")):
        at.text_area(key="wi:note_text").set_value(text)
        at.selectbox(key="wi:note_status").set_value(status)
        _clean(at.button(key="FormSubmitter:wi:note-Add note").click().run())
    at.text_area(key="wi:note_text").set_value("   ")
    at.button(key="FormSubmitter:wi:note-Add note").click().run()
    assert _says(at.error, "The note is empty")
    _clean(at.selectbox(key="wi:all_status").set_value("confirmed").run())
    every = next(d.value for d in at.dataframe if "model" in d.value.columns)
    assert list(every["hypothesis"]) == ["second idea"]
    first = next(d.value for d in at.dataframe if "hypothesis" in d.value.columns and "model" not in d.value.columns)
    at.selectbox(key="wi:status_id").set_value(int(first["id"].iloc[0]))
    at.selectbox(key="wi:status_new").set_value("rejected")
    _clean(at.button(key="wi:status_set").click().run())
    mine = next(d.value for d in at.dataframe if "hypothesis" in d.value.columns and "model" not in d.value.columns)
    assert list(mine["status"]) == ["rejected", "confirmed"]


def test_a_case_saved_with_other_weights_says_so_before_recomputing():
    import dataclasses

    from engine import zoo
    from engine.cases.casefile import CaseFile, model_ref
    from engine.models import load_model

    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    f = zoo.find_failure(at.session_state["case"])
    ref = dataclasses.replace(model_ref(load_model("zoo:l")), weights_hash="0" * 16)
    cf = CaseFile(ref, at.session_state["case"], f.prompt, f"#{f.target_id}", f"#{f.contrast_id}", "logit_diff",
                  "by_ref_token", 10, edits=("rm:2",))
    at.file_uploader(key="wi:open").set_value(("old.flcase", cf.to_bytes(), "application/json"))
    _clean(at.run())
    assert _says(at.warning, "The loaded zoo:l differs from the one this case was saved with (weights)")
    assert list(at.session_state["wi"]) == ["rm:2"] and " → " in _metric(at, "Top answer")


def test_graph_page_shares_the_case_notes():
    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    at.text_area(key="wi:note_text").set_value("written on the heatmap")
    _clean(at.button(key="FormSubmitter:wi:note-Add note").click().run())
    at.switch_page("pages/graph.py")
    _clean(at.run())
    assert "Notes on this case" in [s.value for s in at.subheader]
    mine = next(d.value for d in at.dataframe if "hypothesis" in d.value.columns and "model" not in d.value.columns)
    assert list(mine["hypothesis"]) == ["written on the heatmap"]
    at.text_area(key="wi:note_text").set_value("written on the graph")
    _clean(at.button(key="FormSubmitter:wi:note-Add note").click().run())
    mine = next(d.value for d in at.dataframe if "hypothesis" in d.value.columns and "model" not in d.value.columns)
    assert list(mine["hypothesis"]) == ["written on the heatmap", "written on the graph"]


def test_slides_and_report_carry_the_whatif_and_the_notes(deferred):
    import io

    from pptx import Presentation

    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    at.text_area(key="wi:note_text").set_value("the <b>first</b> operand pulls")
    at.selectbox(key="wi:note_status").set_value("confirmed")
    _clean(at.button(key="FormSubmitter:wi:note-Add note").click().run())
    red, _ = _first_red(at)
    _edit(at, [red])  # an edit in the What if? fragment, after the page's buttons were made
    answer, delta = _metric(at, "Top answer"), _metric(at, "Δℓ")
    prs = Presentation(io.BytesIO(_made(at, deferred, "slides:heatmap")))
    slides = {sl.shapes.title.text.split("?")[0].split(":")[0]: sl for sl in prs.slides if sl.shapes.title}
    grid = [[c.text for c in row.cells] for sh in slides["What if the prompt is edited"].shapes if sh.has_table
            for row in sh.table.rows]
    before, after = answer.split(" → ")
    assert grid[1][:3] == ["Top answer", before, after]  # the page's before -> after, on the slide
    assert grid[4][0] == "Logit gap (Δℓ)"  # the page rounds to 2 decimals, the slide to 3
    for shown, slid in zip(delta.split(" → "), grid[4][1:3]):
        assert abs(float(shown) - float(slid)) <= 0.0051
    notes = [[c.text for c in row.cells] for sh in slides["Notes on this case"].shapes if sh.has_table
             for row in sh.table.rows]
    assert notes[1][2] == "confirmed" and notes[1][4] == "the <b>first</b> operand pulls"
    report = _made(at, deferred, "report:heatmap")
    assert "the &lt;b&gt;first&lt;/b&gt; operand pulls" in report and "<b>first" not in report
    assert "What if the prompt is edited?" in report and "after − before" in report


def test_graph_page_edits_the_prompt_and_the_edits_travel_in_the_link():
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/graph.py")
    _clean(at.run())
    assert "What if?" in [s.value for s in at.subheader]
    red, _ = _first_red(at)
    _edit(at, [red])
    assert at.query_params["wi"] == f"rm:{red}"  # the Graph page's link carries the edit
    answer, delta = _metric(at, "Top answer"), _metric(at, "Δℓ")
    assert " → " in answer and _says(list(at.success) + list(at.info), "Removing '")
    assert "Heatmaps before and after the edits" in [e.label for e in at.expander]
    assert "after − before" in _strip_html(at)
    _clean(at.toggle(key="wi:graph").set_value(True).run())  # the edited prompt's graph, drawn below the numbers
    assert any("The edited prompt's graph:" in c.value for c in at.caption)
    assert [b for b in at.get("download_button") if "dl:wi_graph:" in b.proto.id]  # drawn, with its downloads
    # the same edit on the Heatmap page, and a link opened on the Graph page restores it there
    at.switch_page("pages/heatmap.py")
    _clean(at.run())
    assert list(at.session_state["wi"]) == [f"rm:{red}"] and _metric(at, "Top answer") == answer
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.query_params["wi"] = [f"rm:{red}"]
    fresh.switch_page("pages/graph.py")
    _clean(fresh.run())
    assert _metric(fresh, "Top answer") == answer and _metric(fresh, "Δℓ") == delta


def test_a_case_saved_on_the_graph_page_keeps_the_graph_as_shown_and_reopens_it_read_only(deferred):
    import json

    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/graph.py")
    _clean(at.run())
    shown = next(c.value for c in at.caption if " edges shown." in c.value)
    nodes, edges = (int(x) for x in re.match(r"(\d+) nodes, (\d+) edges shown", shown).groups())
    saved = json.loads(_made(at, deferred, "wi:save"))
    graph = saved["results"]["graph"]
    assert (len(graph["nodes"]), len(graph["edges"])) == (nodes, edges) and graph["target"]
    _clean(at.slider(key="w:top_p").set_value(0.3).run())  # pruned harder in the graph's fragment
    fewer = json.loads(_made(at, deferred, "wi:save"))["results"]["graph"]
    assert len(fewer["edges"]) < edges  # the graph as shown now, not as it was when the button was made
    # another model loaded (here: the file names zoo:xs): the saved graph is drawn read-only
    saved["model"]["name"] = "zoo:xs"
    fresh = _clean(AppTest.from_file(APP, default_timeout=120).run())
    fresh.file_uploader(key="wi:open").set_value(("g.flcase", json.dumps(saved).encode(), "application/json"))
    _clean(fresh.run())
    assert _says(fresh.warning, "saved results are shown read-only")
    assert any(f"The graph as it was shown when saved: {nodes} nodes, {edges} edges" in c.value
               for c in fresh.caption)


def test_inline_text_edit_is_one_text_edit_shown_before_and_after(deferred):
    import io

    from pptx import Presentation

    from engine.runs.prompts import prompt_hash

    at = _clean(AppTest.from_file(APP, default_timeout=120).run())
    prompt = at.session_state["prompt"]
    i = next(j for j, c in enumerate(prompt) if c.isdigit())
    new = prompt[:i] + str((int(prompt[i]) + 1) % 10) + " more" + prompt[i + 1:]
    at.text_area(key=f"wi:text:{prompt_hash(prompt)}").set_value(new)
    _clean(at.button(key="wi:text_apply").click().run())
    spec = f"tx:{i}-{i + 1}={(int(prompt[i]) + 1) % 10} more"
    assert list(at.session_state["wi"]) == [spec] and at.query_params["wi"] == spec
    assert " → " in _metric(at, "Top answer")
    assert _says(list(at.success) + list(at.info), f"Replacing '{prompt[i]}' with")
    html = _strip_html(at)
    assert "after − before" in html and f"{prompt[i]}→" in html  # the edited column reads old→new
    # the deck gets the text edit's slide too
    prs = Presentation(io.BytesIO(_made(at, deferred, "slides:heatmap")))
    words = [p.text for sl in prs.slides for sh in sl.shapes if sh.has_text_frame for p in sh.text_frame.paragraphs]
    assert f"Edits: {spec}" in words
    # a token edit on top of a text edit is refused with the way out; undo resets the text box
    _edit(at, [_first_red(at)[0]])
    assert _says(at.info, "A text edit stands alone") and list(at.session_state["wi"]) == [spec]
    _clean(at.button(key="wi:undo").click().run())
    assert not at.session_state["wi"] and at.text_area(key=f"wi:text:{prompt_hash(prompt)}").value == prompt
