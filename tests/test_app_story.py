"""AppTests: the plain-language summary at the top of the Heatmap and Graph pages, slide downloads, glossary titles."""
from __future__ import annotations

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
    assert any(text == h.value for h in at.html)  # inside "The whole story in words"
    assert "The whole story in words" in [e.label for e in at.expander]
    assert "⬇ Download slides" in [b.proto.label for b in at.get("download_button")]


def test_summary_of_an_own_prompt_escapes_it():
    at = clean(app(prompt="<q> <script>alert(1)</script> 1 + 2 = <a>"))
    assert not at.error, texts(at.error)
    text = _summary(at)
    assert "<script>" not in text and ("The model says" in text or "prefers" in text)
