"""AppTests: the plain-language summary at the top of the Heatmap and Graph pages, slide downloads, glossary titles."""
from __future__ import annotations

import io

from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from test_app_pages import app, clean, texts


def _summary(at) -> str:
    return next(h.value for h in at.html if "fl-summary" in h.value)


def test_heatmap_and_graph_pages_open_with_the_case_in_plain_words():
    from ui.state import find_case

    at = clean(app())  # the default: a short real failure of the largest zoo model
    assert not at.error, texts(at.error)
    f = find_case(at.session_state["case"])
    text = _summary(at)
    assert f"The model says '{f.target}' but should say '{f.contrast}'" in text.replace("&#x27;", "'")
    assert f"by {f.logit_diff:.1f} logits" in text and "conservation" in text and "Toward the wrong answer" in text
    labels = [b.proto.label for b in at.get("download_button")]
    assert "⬇ Download slides" in labels and "⬇ Case report (HTML)" in labels
    # the summary comes before the heatmap
    kinds = [h.value for h in at.html]
    assert next(i for i, v in enumerate(kinds) if "fl-summary" in v) < next(i for i, v in enumerate(kinds)
                                                                          if "fl-heatmap" in v)
    at.switch_page("pages/graph.py")
    clean(at.run())
    assert not at.error, texts(at.error)
    # the same story on both pages: the Graph page leads with the headline, the whole text one click away
    head = next(h.value for h in at.html if "fl-summary" in h.value)
    assert "<li>" not in head and head.split("</p>")[0] == text.split("</p>")[0]
    whole = next(h.value for h in at.html if "fl-summary" in h.value and "<li>" in h.value)
    assert "The whole story in words" in [e.label for e in at.expander]
    assert "⬇ Download slides" in [b.proto.label for b in at.get("download_button")]
    # the Graph page also ablated the top nodes: back on the Heatmap page the story is the same, word for word
    at.switch_page("pages/heatmap.py")
    clean(at.run())
    assert _summary(at) == whole


def test_summary_of_an_own_prompt_escapes_it():
    at = clean(app(prompt="<q> <script>alert(1)</script> 1 + 2 = <a>"))
    assert not at.error, texts(at.error)
    text = _summary(at)
    assert "<script>" not in text and ("The model says" in text or "prefers" in text)


def _plain(html: str) -> str:
    return html.replace("&#x27;", "'").replace("&quot;", '"')


def test_the_summary_category_is_the_checks_and_follows_it():
    from engine.cases.checks import causal_outcome
    from ui.sections.check_views import VERDICT_NAMES

    at = clean(app())  # the default case; the check is on and runs at once on a short prompt
    assert not at.error, texts(at.error)
    shown = next(str(m.value) for m in at.metric if m.label == "Verdict")
    verdict = next(k for k, v in VERDICT_NAMES.items() if v == shown)
    code = causal_outcome(verdict, None)
    text = _plain(_summary(at))
    assert "decided by the causal check" in text and "guessed" not in text
    assert (f"({code})" in text) if code else "Category: none" in text
    assert "Suggested category" not in text
    # check off: the same summary says its category is only a guess from the heatmap
    clean(at.toggle(key="w:check").set_value(False).run())
    text = _plain(_summary(at))
    assert "guessed from the heatmap alone" in text and "decided by the causal check" not in text
    clean(at.toggle(key="w:check").set_value(True).run())
    assert "decided by the causal check" in _plain(_summary(at))


def test_should_say_only_for_the_cases_own_pair_and_reset_returns_to_it():
    from ui.state import find_case

    at = clean(app())
    f = find_case(at.session_state["case"])
    assert "should say" in _plain(_summary(at))
    # another candidate as the contrast: a preference, not the right answer
    at.session_state["contrast"] = "#0" if f.contrast_id != 0 else "#1"
    clean(at.run())
    text = _plain(_summary(at))
    assert "should say" not in text and f"The model prefers '{f.target}' over" in text
    # Reset goes back to the case's own pair (not to top-1 vs runner-up)
    clean(at.button(key="tok:reset").click().run())
    assert (at.session_state["target"], at.session_state["contrast"]) == (f"#{f.target_id}", f"#{f.contrast_id}")
    assert f"should say '{f.contrast}'" in _plain(_summary(at))
    assert "case's own pair" in at.button(key="tok:reset").help


def test_own_prompts_never_say_should_say():
    at = clean(app(prompt="<q> 1 + 2 = <a>"))
    assert not at.error, texts(at.error)
    text = _plain(_summary(at))
    assert "should say" not in text and "prefers" in text


def test_presentation_mode_names_model_and_case_in_the_page_header():
    from engine.model_spec import ModelSpec

    at = clean(app(present="1"))
    case = at.session_state["case"]
    model = ModelSpec.parse(at.session_state["model"][at.session_state["active"]]).title
    for page in ("heatmap", "graph", "scaling", "evolution", "models"):
        if page != "heatmap":
            at.switch_page(f"pages/{page}.py")
            clean(at.run())
        header = [m.value for m in at.markdown if m.value.startswith("Model **")]
        assert header, page
        words = texts_of(header[0])
        assert f"Model {model} · case {case}" == words.replace("**", ""), (page, words)
    at = clean(app())  # not in presentation mode: the sidebar names the model, the title stays alone
    assert not [m for m in at.markdown if m.value.startswith("Model **")]


def texts_of(markdown: str) -> str:
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def test_graph_page_in_presentation_mode_gives_the_drawing_more_height():
    """The folded controls share one row and the caption is left out, so the drawing (which must end on the
    first screen) is not squeezed to ~290 px at 1280x720 (measured in Chromium: 271 px before, 383 px after)."""
    at = app(present="1")
    at.switch_page("pages/graph.py")
    clean(at.run())
    assert not at.error, texts(at.error)
    in_columns = [[e.label for e in c.expander] for c in at.columns]
    with_prompt = [labels for labels in in_columns if "Prompt and tokens" in labels]
    with_rows = [labels for labels in in_columns if "Rows" in labels]
    assert with_prompt and with_rows and not any("Rows" in labels for labels in with_prompt)  # side by side
    assert not any(c.value.startswith("Explaining target") for c in at.caption)
    at.session_state["present"] = False
    clean(at.run())
    assert any(c.value.startswith("Explaining target") for c in at.caption)


def test_evolution_says_whose_training_it_shows():
    from engine import zoo

    series = zoo.checkpoint_series()
    at = app(ncases="2")
    case_model = at.session_state["case"].partition("/")[0]
    at.switch_page("pages/evolution.py")
    clean(at.run())
    assert not at.error, texts(at.error)
    shown = at.session_state["ev_series"]
    notes = texts(list(at.info) + list(at.warning)).replace("**", "")
    if case_model == shown:
        assert f"zoo:{case_model}, the model" not in notes
    elif case_model in series:
        assert f"comes from zoo:{case_model}" in notes and f"training of zoo:{shown}" in notes
    else:  # the default zoo: only zoo:m has saved checkpoints, the default case is zoo:l's
        assert f"zoo:{case_model}, the model the case at hand comes from, has no saved training checkpoints" in notes
        assert f"the training of zoo:{shown}" in notes


def test_scaling_and_evolution_offer_slides_of_the_case():
    at = app(ncases="2")
    for page, key in (("scaling", "slides:scaling"), ("evolution", "slides:evolution")):
        at.switch_page(f"pages/{page}.py")
        clean(at.run())
        assert not at.error, texts(at.error)
        buttons = {b.key: b.proto.label for b in at.get("download_button")}
        assert buttons.get(key) == "⬇ Download slides", (page, sorted(buttons))


def test_scaling_and_evolution_offer_slides_of_the_set_view(monkeypatch):
    """After a set view was computed, each page offers its deck, made only when clicked; made as a click would,
    it holds the verdict counts and one slide per set-view chart."""
    from pptx import Presentation
    from streamlit.runtime.media_file_manager import MediaFileManager

    made = {}  # deferred file id -> the callable a click runs (AppTest's runtime is gone after each run)
    add = MediaFileManager.add_deferred

    def keep(self, fn, *a, **kw):
        made[file_id := add(self, fn, *a, **kw)] = fn
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    at = app(ncases="2")
    for page, charts in (("scaling", 4), ("evolution", 3)):
        at.switch_page(f"pages/{page}.py")
        clean(at.run())
        assert not at.error, texts(at.error)
        button = next((b for b in at.get("download_button") if b.key == f"slides:set_{page}"), None)
        assert button is not None and button.proto.label == "⬇ Download slides (set view)", page
        assert not button.proto.url and button.proto.deferred_file_id in made  # nothing rendered before a click
        deck = Presentation(io.BytesIO(made[button.proto.deferred_file_id]()))
        titles = [s.shapes.title.text for s in deck.slides]
        assert len(titles) == 2 + charts, (page, titles)  # title, verdict counts, one slide per chart
        assert titles[1].startswith("Of 2 failures of" if page == "scaling" else "Training fixed"), titles
