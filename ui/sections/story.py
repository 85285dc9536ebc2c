"""The case's story on the Heatmap and Graph pages: the plain-language summary at the top, slide-ready figure
exports, and "Download slides" (a .pptx deck) with the same content as a one-file HTML case report."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from engine.cases.checks import DeletionCurves
from engine.cases.segments import assign_segments
from engine.model_spec import ModelSpec
from engine.present import charts, render, summary
from engine.present.figures import MAX_TOKENS, FigureContext, crop_window
from engine.present.summary import CaseSummary
from engine.records import Attribution
from ui import state

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def case_ref(prompt: str) -> str:
    """The open failure case ("l/eval-math-00014") when the view shows its prompt; "" for an own prompt."""
    case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    return state.case_ref(case) if case is not None and case.prompt == prompt else ""


def labels(att: Attribution, prompt: str) -> list[str]:
    """[tokens] segment of each token (a failure case's marked segments; own prompts: query / special)."""
    case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    spans = dict(case.segments) if case is not None and case.prompt == prompt else {}
    return assign_segments(att.offsets, spans, att.special_mask)


def model_label() -> str:
    return ModelSpec.parse(state.active_param()).title


def recorded(att: Attribution, prompt: str) -> bool:
    """True when target and contrast are the open case's recorded wrong and right answer ("should say" is then
    true); any other pair (a clicked candidate, an own prompt's top-1 vs runner-up) is only a preference."""
    case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    if case is None or case.prompt != prompt or att.contrast is None:
        return False
    return (att.target.token_id, att.contrast.token_id) == (case.target_id, case.contrast_id)


def show(att: Attribution, prompt: str, full: bool = True, check: Optional[DeletionCurves] = None,
         r_zero: Optional[float] = None) -> tuple[CaseSummary, FigureContext]:
    """The summary at the top of a page; returns it with the figure context the page's exports use.
    full=False (and presentation mode): the headline, with the rest one click away, so the figure stays on screen.
    check / r_zero: the causal checks of this view (ui.sections.check_views.page_curves / known_r_zero): they
    decide the category."""
    s = summary.case_summary(att, labels(att, prompt), model=model_label(), case=case_ref(prompt),
                             recorded=recorded(att, prompt), verdict=check.verdict if check is not None else None,
                             r_zero=r_zero)
    if full and not state.get(state.PRESENT):
        st.html(summary.to_html(s))
    else:
        st.html(summary.to_html(s, details=False))
        with st.expander("The whole story in words"):
            st.html(summary.to_html(s))
    ctx = FigureContext(s.model, s.case, att.target.text, att.contrast.text if att.contrast else None, s.headline)
    return s, ctx


def token_export(att: Attribution, values: list[float], mask: list[bool]):
    """The token chart for PNG / SVG export (long prompts cropped to the window with most relevance), made when a
    download asks for it (ui.layout.downloads), and its notes."""
    crop, note = crop_window(att.relevance, mask, MAX_TOKENS)
    return (lambda: charts.token_chart(att.tokens, values, att.relevance, crop)), [note] if note else []


def latex_notes(s: CaseSummary) -> str:
    """The summary as LaTeX comment lines (untrusted text cannot leave the comment)."""
    return "".join(render._comment(line) + "\n" for line in s.sentences)


def slides(handle, att: Attribution, prompt: str, s: CaseSummary, ctx: FigureContext, *, graph=None, pruned=None,
           graph_note: str = "", key: str, check: Optional[DeletionCurves] = None) -> None:
    """"Download slides" and "Case report (HTML)": made when clicked (outside the script run, so every model
    handle is looked up here). Without a graph (the Heatmap page) the graph slide uses the cached graph of the
    whole model, or builds it, pruned as the Graph page does by default. The check slide shows `check` (the
    page's deletion check), else the check is run with the page's settings when clicked; the category follows it
    as on the page (engine.cases.outcome). The What if? edits of this prompt (read when clicked: edits made in the
    What if? fragment since count) add a what-if slide; the case's notes a notes slide."""
    from engine.runs.prompts import prompt_hash
    from ui import loaders
    from ui.sections import check_views, whatif_views

    others = [(ModelSpec.parse(p).title, loaders.model(p, quiet=True)) for p in state.model_params()
              if p != state.active_param()]
    shown = render.shown_mask(len(att.tokens), att.special_mask, state.get(state.HIDE_FIRST),
                              state.get(state.HIDE_SPECIAL))

    segs = labels(att, prompt)
    settings, r_zero, pair = check_views.check_settings(), check_views.known_r_zero(handle, att), recorded(att, prompt)
    live, mine, (note_model, note_case) = whatif_views.live_edits(), prompt_hash(prompt), whatif_views.note_key(
        handle, prompt)

    def story():
        from engine.cases.checks import check_attribution
        from engine.present.deck import case_story
        from engine.records import FailureLensError

        g, note = (graph, graph_note) if graph is not None else _default_graph(handle, att, prompt)
        curves = check if check is not None and check.curves == "full" else None  # the slide draws every curve
        if curves is None and att.contrast is not None:
            try:
                curves = check_attribution(handle, att, settings[0], tuple(range(settings[1])), settings[2],
                                           curves="full")
            except FailureLensError:
                curves = None  # the deck then says the category is guessed from the heatmap alone
        return case_story(att, segs, model=s.model, case=s.case, prompt=prompt, graph=g,
                          pruned=pruned, graph_note=note, others=_others(att, prompt, others),
                          shown=shown if any(shown) else None, check=curves, r_zero=r_zero, recorded=pair,
                          whatif=_whatif(handle, att, prompt, live.get(mine, [])),
                          notes=_notes(note_model, note_case))

    def pptx() -> bytes:
        from engine.present.deck import deck_pptx

        return deck_pptx(story())

    def report() -> str:
        from engine.present.deck import report_html

        return report_html(story())

    with st.container(horizontal=True, gap="small"):
        st.download_button("⬇ Download slides", pptx, file_name=ctx.file_name("slides", "pptx"), mime=PPTX,
                           on_click="ignore", key=f"slides:{key}", type="primary",
                           help="A PowerPoint deck: title, heatmap, graph, the causal check, what if (when the prompt "
                                "is edited), numbers and summary, notes (and the other loaded models). Made when "
                                "clicked; may take a few seconds.")
        st.download_button("⬇ Case report (HTML)", report, file_name=ctx.file_name("report", "html"),
                           mime="text/html", on_click="ignore", key=f"report:{key}",
                           help="The same content as the slides in one HTML file that opens offline.")


def _whatif(handle, att: Attribution, prompt: str, specs: list[str]):
    """(WhatIf, edited heatmap) of the edits, or None (no edits, no contrast, or edits the prompt refuses)."""
    from engine.cases.whatif import Edit, what_if_attribution
    from engine.records import FailureLensError

    if not specs or att.contrast is None:
        return None
    try:
        return what_if_attribution(handle, att, [Edit.parse(x) for x in specs], prompt=prompt)
    except FailureLensError:
        return None  # the What if? section shows why; the deck leaves the slide out


def _notes(model: str, case: str) -> list:
    from engine.cases.notes import Notebook
    from engine.records import FailureLensError

    try:
        return Notebook().notes(model=model, case=case)
    except FailureLensError:
        return []  # an unreadable notebook: the page's notes section says so


def _default_graph(handle, att: Attribution, prompt: str):
    from engine.graph.build import build_graph
    from engine.objectives import Objective
    from engine.present.deck import dashboard_prune_words
    from ui import loaders

    g = loaders.graph_cache().get(loaders.graph_key_of(handle, att))
    if g is None:
        g = build_graph(handle, prompt, Objective.of(att))
    return g, f"Pruned as the Graph page does by default: {dashboard_prune_words()}."


def _others(att: Attribution, prompt: str, handles) -> list[tuple[str, Attribution]]:
    """The same prompt, target and contrast (by text) on the other loaded models; models that cannot are left out."""
    from engine.heatmap import attribute
    from engine.objectives import Objective
    from engine.records import FailureLensError

    out = []
    for label, handle in handles:
        if handle is None:
            continue
        try:
            out.append((label, attribute(handle, prompt, Objective(att.target.text,
                                         att.contrast.text if att.contrast else None, att.mode, att.strategy, att.k))))
        except FailureLensError:
            continue
    return out
