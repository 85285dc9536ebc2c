"""Slide-ready figures, the case deck (PPTX) and the one-file HTML case report, on hand-built results.

Hostile text (markup, spreadsheet formulas, RTF) in prompts and tokens must come out as literal text.
"""
from __future__ import annotations

import io
import re

from graph_fixtures import small_graph
from PIL import Image

from engine.present import charts, deck, figures, glossary
from engine.present.figures import FigureContext
from engine.records import Attribution, TokenChoice, TopToken

HOSTILE = ["<script>alert(1)</script>", "=1+1", "{\\rtf1 evil}", "@SUM(A1)", "CHERRY"]
REL = [0.2, 0.9, -0.4, 0.3, -0.6]


def hostile_att(target="CHERRY", contrast="=cherry<b>") -> Attribution:
    return Attribution(
        model="m", tokens=HOSTILE, token_ids=list(range(5)), relevance=REL, layer_relevance=[REL, REL],
        objective=2.0, mode="logit_diff", strategy="by_ref_token", k=10, position=4,
        target=TokenChoice(7, target), contrast=TokenChoice(8, contrast), logit_diff=2.0,
        topk=[TopToken(1, target, 7, 3.0, 0.8), TopToken(2, contrast, 8, 1.0, 0.1)], conservation=0.2 / 2.0 + 0.1,
        rule="attnlrp", special_mask=[False] * 5, offsets=[(0, 0)] * 5)


def test_file_names_carry_model_case_and_view():
    ctx = FigureContext("zoo:l", "l/eval-math-00014", "2", "3")
    assert ctx.file_name("heatmap", "png") == "zoo-l_eval-math-00014_heatmap.png"
    evil = FigureContext("../../etc/passwd;rm -rf", "", "<x>", None)
    name = evil.file_name("graph", "svg")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and "/" not in name and name.endswith("_own-prompt_graph.svg")


def test_exports_have_title_legend_in_words_and_16x9():
    ctx = FigureContext("zoo:l", "l/eval-math-00014", "CHERRY", "cherry", "The model says 'CHERRY'.")
    shown = [True] * 5
    chart = charts.token_chart(HOSTILE, [0.2, 1.0, -0.4, 0.3, -0.6], REL, shown)
    slide = figures.slide_chart(chart, ctx, "Token relevance")
    title = slide.to_dict()["title"]
    assert title["text"] == "zoo:l · l/eval-math-00014 · 'CHERRY' vs 'cherry'"
    words = " ".join(title["subtitle"])  # wrapped to the chart's width
    assert ("red: supports 'CHERRY' (the wrong answer)" in words
            and "blue: supports 'cherry' (the right answer)" in words)
    assert "The model says 'CHERRY'." in words
    png = Image.open(io.BytesIO(figures.png_16x9(slide)))
    assert abs(png.width / png.height - 16 / 9) < 0.01
    svg = figures.svg_16x9(slide)
    w, h = (float(x) for x in re.search(r'<svg[^>]* width="([\d.]+)" height="([\d.]+)"', svg).groups())
    assert abs(w / h - 16 / 9) < 0.01 and "&lt;script&gt;" in svg and "<script" not in svg
    for legend in (chart.to_dict()["layer"][0]["encoding"]["color"]["legend"],
                   charts.layer_chart(HOSTILE, [REL, REL], shown).to_dict()["encoding"]["color"]["legend"]):
        assert "wrong answer" in legend["labelExpr"] and "R (scaled)" not in str(legend)


def test_long_prompts_are_cropped_to_the_window_with_most_relevance():
    rel = [0.01] * 300
    rel[200:210] = [1.0] * 10
    mask, note = figures.crop_window(rel, [True] * 300, 96)
    kept = [i for i, on in enumerate(mask) if on]
    assert len(kept) == 96 and kept == list(range(kept[0], kept[0] + 96)) and kept[0] <= 200 and kept[-1] >= 209
    assert f"tokens {kept[0]}–{kept[-1]} of 300" in note
    assert figures.crop_window(rel[:50], [True] * 50, 96) == ([True] * 50, "")


def _story(others=()):
    g = small_graph()
    g = type(g)(**{**g.__dict__, "tokens": ["<script>", "=1+1", "{\\rtf1", "c"]})
    return deck.case_story(hostile_att(), ["query"] * 5, model="zoo:<b>l</b>", case="l/eval-x", prompt="".join(HOSTILE),
                           graph=g, others=others)


def test_deck_opens_with_titles_naming_both_answers_and_text_stays_literal():
    from pptx import Presentation

    data = deck.deck_pptx(_story(others=[("zoo:s", hostile_att())]))
    prs = Presentation(io.BytesIO(data))
    slides = list(prs.slides)
    assert len(slides) == 5  # title, heatmap, graph, numbers, scaling
    assert abs(prs.slide_width / prs.slide_height - 16 / 9) < 0.01
    for sl in slides:
        title = sl.shapes.title.text
        assert "CHERRY" in title and "=cherry<b>" in title, title
    assert sum(1 for sl in slides for sh in sl.shapes if sh.shape_type == 13) == 3  # pictures
    texts = [r.text for sl in slides for sh in sl.shapes if sh.has_text_frame
             for p in sh.text_frame.paragraphs for r in p.runs]
    cells = [c.text for sl in slides for sh in sl.shapes if sh.has_table for row in sh.table.rows for c in row.cells]
    joined = "\n".join(texts + cells)
    assert "'=cherry<b>'" in cells and "zoo:<b>l</b>" in cells  # literal, as typed
    assert "'<script>alert(1)</script>'" in joined
    xml = b"".join(p.blob for p in prs.part.package.iter_parts()
                   if re.fullmatch(r"/ppt/(slides|notesSlides)/\w+\.xml", str(p.partname)))
    assert b"<script>" not in xml and b"&lt;script&gt;" in xml
    assert b"<a:fld" not in xml  # no fields on the slides: nothing is computed from the text


def test_deck_without_graph_or_others_still_has_four_slides_without_contrast():
    from pptx import Presentation

    att = hostile_att()
    att = Attribution(**{**att.__dict__, "contrast": None, "logit_diff": None, "mode": "max_logit", "strategy": None})
    story = deck.case_story(att, None, model="m", case="", prompt="p", graph=small_graph())
    prs = Presentation(io.BytesIO(deck.deck_pptx(story)))
    assert len(prs.slides) == 4 and all("CHERRY" in s.shapes.title.text for s in prs.slides)


def test_html_report_is_inert():
    out = deck.report_html(_story(others=[("zoo:s", hostile_att())]))
    assert "<script" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "default-src 'none'" in out and "zoo:&lt;b&gt;l&lt;/b&gt;" in out
    assert "=1+1" in out and "{\\rtf1 evil}" in out  # inert in HTML: shown as written
    assert out.count('src="data:image/svg+xml;base64,') == 2  # graph and scaling
    assert "What the words mean" in out and "conservation" in out.lower()


def test_charts_of_several_models_get_a_title_and_16x9():
    import pandas as pd

    from engine.present import compare_charts

    ecdf = pd.DataFrame({"model": ["zoo:s", "zoo:s", "zoo:l"], "value": [0.5, 1.0, -0.2], "fraction": [0.5, 1.0, 1.0]})
    chart = figures.titled(compare_charts.ecdf_chart(ecdf), "How far each model prefers the wrong answer",
                           ["Failure Lens · delta_ecdf"])
    assert chart.to_dict()["title"]["text"] == "How far each model prefers the wrong answer"
    png = Image.open(io.BytesIO(figures.png_16x9(chart)))
    assert abs(png.width / png.height - 16 / 9) < 0.01


def _curves(verdict="not_explained"):
    from engine.cases.checks import DeletionCurves

    return DeletionCurves(
        base_logit_diff=2.0, target=(2.0, 2.4, 3.1), contrast=(2.0, 2.5, 2.9), random_mean=(2.0, 1.9, 1.8),
        random_std=(0.0, 0.1, 0.2), insertion=(0.5, 0.9, 1.2), target_positions=(1, 3),
        target_tokens=("=1+1", "@SUM(A1)"),
        contrast_positions=(4, 2), flip_k=None, flip_top=None, area=-0.9, verdict=verdict,
        sentence="Removing the highlighted tokens does not lower Δℓ (Δℓ +2.00 → +3.10 after 2; random tokens: "
                 "+1.80): the heatmap does not explain this failure.", replacement="neutral", mask_id=0, seeds=(0, 1),
        k_max=2, forward_rows=9)


def test_deck_and_report_get_a_check_slide_and_the_check_decides_the_category():
    from pptx import Presentation

    # REL sums toward the target: the heatmap alone would guess "explained by the heatmap" (M-IA)
    guess = deck.case_story(hostile_att(), ["query"] * 5, model="zoo:l", case="l/eval-x", prompt="p")
    assert guess.summary.outcome == "M-IA" and guess.check is None
    assert ("Category decided by", "guessed from the heatmap alone") in guess.numbers
    story = deck.case_story(hostile_att(), ["query"] * 5, model="zoo:l", case="l/eval-x", prompt="p",
                            graph=small_graph(), check=_curves(), r_zero=0.2)
    assert story.summary.outcome == "NC-IA+AG" and story.summary.category.source == "check"
    assert ("Category", "not explained yet (NC-IA+AG)") in story.numbers
    assert ("Category decided by", "the causal check") in story.numbers
    prs = Presentation(io.BytesIO(deck.deck_pptx(story)))
    titles = [s.shapes.title.text for s in prs.slides]
    assert len(titles) == 5 and titles[3].startswith("The check: does removing the red tokens flip")
    check_slide = list(prs.slides)[3]
    words = " ".join(r.text for sh in check_slide.shapes if sh.has_text_frame and sh != check_slide.shapes.title
                     for p in sh.text_frame.paragraphs for r in p.runs)
    assert words.startswith("Does not explain. Removing the highlighted tokens does not lower Δℓ")
    assert "Category: not explained yet (NC-IA+AG)" in words and "r = +0.20" in words
    assert sum(1 for sh in check_slide.shapes if sh.shape_type == 13) == 1  # the curves
    every = " ".join(r.text for s in prs.slides for sh in s.shapes if sh.has_text_frame
                     for p in sh.text_frame.paragraphs for r in p.runs)
    assert "explained by the heatmap (M-IA)" not in every  # no slide contradicts the check
    out = deck.report_html(story)
    assert "The check: does removing the red tokens flip" in out and "Does not explain. Removing" in out
    assert out.count('src="data:image/svg+xml;base64,') == 2  # graph and curves
    assert "explained by the heatmap (M-IA)" not in out and "not explained yet (NC-IA+AG)" in out


def test_across_models_slide_in_size_order_with_palette_colours_and_verdicts():
    from engine.present import palette
    from engine.zoo import zoo_sizes

    sizes = [f"zoo:{s}" for s in zoo_sizes()]
    rows = [(m, 1.0 + i, "still wrong") for i, m in enumerate(reversed(sizes))] + [("my-model", -0.5, "fixed")]
    spec = deck.scaling_chart(rows).to_dict()
    bars = spec["hconcat"][0]["layer"][0]
    assert bars["encoding"]["y"]["sort"] == sizes + ["my-model"]  # sizes first, smallest on top
    scale = bars["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == palette.colours(sizes + ["my-model"])
    assert spec["hconcat"][1]["encoding"]["text"]["field"] == "verdict"


def _whatif():
    """A hand-set edit of HOSTILE: token 1 ('=1+1') removed, the answer flips from 'CHERRY' to '=cherry<b>'."""
    from engine.cases.whatif import Side, WhatIf

    before, after = Side("CHERRY", 7, 0.8, 0.1, 2.0), Side("=cherry<b>", 8, 0.15, 0.7, -1.5)
    tokens = tuple(t if i != 1 else "<unk>" for i, t in enumerate(HOSTILE))
    return WhatIf(("rm:1",), before, after, "CHERRY", "=cherry<b>", (0, 99, 2, 3, 4), tokens, (1,), 1, True,
                  "Removing '=1+1' flips the answer to '=cherry<b>' — the right answer (Δℓ +2.00 → -1.50).")


def _notes():
    from engine.cases.notes import Note

    return [Note("zoo:l", "l/eval-x", "<img src=x onerror=alert(1)> the '=1+1' is read as a formula", "URT",
                 "confirmed", "=HYPERLINK(\"http://x\")", 1_700_000_000.0, 1),
            Note("zoo:l", "l/eval-x", "second idea", "", "open", "", 0.0, 2)]


def test_deck_gets_a_whatif_slide_with_the_numbers_and_a_notes_slide():
    from pptx import Presentation

    att = hostile_att()
    after = Attribution(**{**att.__dict__, "relevance": [0.1, 0.0, -0.8, 0.3, -0.2], "logit_diff": -1.5})
    story = deck.case_story(att, ["query"] * 5, model="zoo:l", case="l/eval-x", prompt="".join(HOSTILE),
                            whatif=(_whatif(), after), notes=_notes())
    prs = Presentation(io.BytesIO(deck.deck_pptx(story)))
    slides = list(prs.slides)
    titles = [sl.shapes.title.text for sl in slides]
    assert len(slides) == 5  # title, heatmap, what if, numbers, notes
    wi = slides[titles.index("What if the prompt is edited? 'CHERRY' vs '=cherry<b>'")]
    (table,) = [sh.table for sh in wi.shapes if sh.has_table]
    grid = [[c.text for c in row.cells] for row in table.rows]
    assert grid == [["", "Before", "After", "Change"],
                    ["Top answer", "'CHERRY'", "'=cherry<b>'", "flips"],
                    ["p('CHERRY'), wrong answer", "80.0%", "15.0%", "-65.0 pts"],
                    ["p('=cherry<b>'), right answer", "10.0%", "70.0%", "+60.0 pts"],
                    ["Logit gap (Δℓ)", "+2.000", "-1.500", "-3.500"]]
    words = [p.text for sh in wi.shapes if sh.has_text_frame for p in sh.text_frame.paragraphs]
    assert _whatif().sentence in words and "Edits: rm:1" in words
    assert sum(1 for sh in wi.shapes if sh.shape_type == 13) == 1  # the aligned rows as a picture
    (notes,) = [sh.table for sh in slides[titles.index("Notes on this case: 'CHERRY' vs '=cherry<b>'")].shapes
                if sh.has_table]
    cells = [[c.text for c in row.cells] for row in notes.rows]
    assert cells[0] == ["When", "Who", "Status", "Category", "Hypothesis"] and len(cells) == 3
    assert cells[1][1:4] == ["=HYPERLINK(\"http://x\")", "confirmed", glossary.label("URT")]
    assert cells[1][4] == _notes()[0].hypothesis and cells[2][1:4] == ["—", "open", "—"]
    xml = b"".join(p.blob for p in prs.part.package.iter_parts() if str(p.partname).startswith("/ppt/slides/"))
    assert b"<img" not in xml and b"<a:fld" not in xml
    # the strip on the slide: before, after and their difference over the original's columns, edit read old→new
    strip = story.whatif.slide_strip
    assert strip.names == ("before", "after", "after − before") and "=1+1→<unk>" in strip.columns
    j = strip.columns.index("{\\rtf1 evil}")
    assert abs(strip.raw[2][j] - (strip.raw[1][j] / 0.8 - strip.raw[0][j] / 0.9)) < 1e-6  # per-row scaled


def test_report_shows_the_whatif_and_the_notes_as_inert_text():
    att = hostile_att()
    after = Attribution(**{**att.__dict__, "relevance": [0.1, 0.0, -0.8, 0.3, -0.2], "logit_diff": -1.5})
    out = deck.report_html(deck.case_story(att, None, model="zoo:l", case="", prompt="p",
                                           whatif=(_whatif(), after), notes=_notes()))
    assert "<img src=x" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "Notes on this case" in out and "second idea" in out and "confirmed" in out
    assert "=HYPERLINK(&quot;http://x&quot;)" in out
    assert "What if the prompt is edited?" in out and "+2.000</td><td>-1.500</td><td>-3.500" in out
    assert "flips the answer to &#x27;=cherry&lt;b&gt;&#x27;" in out and "after − before" in out
    assert "<script" not in out


def test_deck_without_edits_or_notes_has_no_whatif_or_notes_slide():
    story = deck.case_story(hostile_att(), None, model="m", case="", prompt="p")
    assert story.whatif is None and story.notes == ()
    out = deck.report_html(story)
    assert "What if the prompt" not in out and "Notes on this case" not in out


def test_the_default_pruning_in_words_follows_the_default():
    from engine.graph.types import DEFAULT_TOP_P
    from engine.present.deck import dashboard_prune, dashboard_prune_words

    assert dashboard_prune().top_p == DEFAULT_TOP_P
    assert dashboard_prune_words().startswith(f"{round(DEFAULT_TOP_P * 100)} % of each layer's edge mass")
