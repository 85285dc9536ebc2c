"""The case at hand on the Scaling and Evolution pages: the Heatmap page's case (or prompt, target, contrast) in
several models or checkpoints — verdicts with their headline, and the aligned heatmaps row over row."""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from typing import Optional, Sequence

import pandas as pd
import streamlit as st

from engine import zoo
from engine.cases.segments import assign_segments, segment_relevance
from engine.compare import verdicts as V
from engine.compare.align import align_attribution_rows
from engine.compare.deltas import CaseDelta, CaseSpec, cases_from_failures, logit_diffs
from engine.present import aligned, compare_charts, glossary, render
from engine.present.headline import verdict_cards
from engine.present.shift import shift_sentences
from engine.records import FailureLensError
from ui import layout, loaders, safe, state, widgets
from ui.sections import compare_views as cv

SCALES = {"row": "per row (each row's own max)", "shared": "shared (one max for all rows)"}
NONE = "—"
MAX_RESULTS = 32


def case_at_hand() -> Optional[CaseSpec]:
    """The Heatmap page's view as a model-independent case (target / contrast as text); None with a message."""
    failure = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    prompt, target, contrast = state.get(state.PROMPT), state.get(state.TARGET), state.get(state.CONTRAST)
    if failure is not None and (target, contrast) == (f"#{failure.target_id}", f"#{failure.contrast_id}"):
        return cases_from_failures([failure])[0]
    if not prompt.strip():
        st.info("No case at hand: pick a failure case or type a prompt on the **Heatmap** page.")
        return None
    param = state.active_param()
    handle = loaders.model(param) if param else None
    if handle is None:
        return None
    fields = {}
    if failure is not None and failure.prompt == prompt:
        base = cases_from_failures([failure])[0]
        fields = {"segments": base.segments, "family": base.family}
    try:
        spec = V.spec_from_view(handle, prompt, target, contrast,
                                case_id=failure.case_id if failure is not None else "your prompt", **fields)
    except FailureLensError as e:
        st.error(f"The Heatmap page's view cannot be compared: {safe.plain(e)}")
        return None
    if failure is not None and spec.contrast == failure.contrast:
        spec = dataclasses.replace(spec, reference=cases_from_failures([failure])[0].reference)
    return spec


def describe(case: CaseSpec) -> str:
    """Markdown: the case id in bold, its wrong and right tokens quoted (all escaped by ui.safe)."""
    return f"**{safe.plain(case.case_id)}** · says {safe.quoted(case.target)}, should say {safe.quoted(case.contrast)}"


def add_cases(key: str, here: Optional[CaseSpec]) -> list[CaseSpec]:
    """A picker of more zoo failure cases to judge beside the case at hand (their refs live in `key`)."""
    by_ref = {state.case_ref(f): f for f in zoo.load_failures()}
    widgets.multiselect("Add cases", key, list(by_ref), format_func=lambda r: f"{r} · {by_ref[r].family} · "
                        f"{by_ref[r].target!r} instead of {by_ref[r].contrast!r}",
                        help="More zoo failure cases, judged in every model beside the case at hand.")
    out = cases_from_failures([by_ref[r] for r in state.get(key)])
    return [c for c in out if here is None or c.case_id != here.case_id or c.prompt != here.prompt]


@st.cache_resource(show_spinner=False)
def _deltas() -> OrderedDict:
    return OrderedDict()


def case_deltas(params: Sequence[str], labels: Sequence[str], cases: Sequence[CaseSpec]) -> Optional[dict]:
    """label -> CaseDelta per case (one batched forward per model), cached by models and cases."""
    key = hashlib.sha1(repr((list(params), list(labels), list(cases))).encode()).hexdigest()[:16]
    cache = _deltas()
    if key not in cache:
        out: dict[str, list[CaseDelta]] = {}
        with st.spinner(f"Judging {len(cases)} case(s) in {len(params)} models …"):
            for param, name in zip(params, labels):
                handle = loaders.model(param)
                if handle is None:
                    return None
                try:
                    out[name] = [dataclasses.replace(d, model=name) for d in logit_diffs(handle, cases)]
                except FailureLensError as e:
                    st.error(f"{safe.plain(name)}: {safe.plain(e)}")
                    return None
        cache[key] = out
        while len(cache) > MAX_RESULTS:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


def headline(rows: Sequence[V.ModelVerdict], labels: Sequence[str], single: bool, series: bool = False) -> None:
    """One card per model: its verdict (one case) or 'fixed k of n' (several), from the same rows as the table."""
    st.html(verdict_cards(rows, labels, single, series, layout.scale()))


def verdicts(params: Sequence[str], labels: Sequence[str], cases: Sequence[CaseSpec], key: str,
             series: bool = False) -> Optional[list[V.ModelVerdict]]:
    """Headline, verdict bars and table of `cases` in every model; returns the rows (None when not computed)."""
    deltas = case_deltas(params, labels, cases)
    if deltas is None:
        return None
    rows = V.verdicts([d for name in labels for d in deltas[name]], cases)
    headline(rows, labels, len(cases) == 1, series)
    table = V.table(rows)
    if len(cases) > 1:
        layout.chart(compare_charts.verdict_bars(V.counts(rows, labels), layout.scale(), series,
                                                 "checkpoint" if series else "model"), f"verdicts_{key}",
                     table, key=f"verdicts_{key}")
    with st.expander("Verdict table (one row per case and model)", expanded=len(cases) == 1):
        st.caption(" · ".join(f"**{v}**: {glossary.define(v)}" for v in V.VERDICTS[:3])  # md-safe: glossary
                   + " p = probability.")
        layout.table(table, f"verdict_table_{key}", key=f"verdict_table_{key}")
    return rows


def _pick(key: str, options: list[str], default: str) -> str:
    if state.get(key) not in options:
        state.put(key, default)
    return key


def film_strip(params: Sequence[str], labels: Sequence[str], case: CaseSpec, key: str, series: bool = False) -> None:
    """The case's heatmap in every model, one row each over shared columns, an optional difference row, exports,
    and where relevance moved (one sentence per model)."""
    atts, names = [], []
    for param, name in zip(params, labels):
        handle = loaders.model(param)
        att = handle and cv.case_attribution(handle, case)
        if att:
            atts.append(att)
            names.append(name)
    if not atts:
        return
    try:
        al = align_attribution_rows(case.prompt, atts)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    c1, c2, c3 = st.columns([2, 1, 1])
    with c1:
        scale = widgets.radio("Colour scale", state.STRIP_SCALE, list(SCALES), format_func=SCALES.get,
                              horizontal=True)
    with c2:
        a = widgets.selectbox("Difference row: A", _pick(state.STRIP_A, [NONE] + names, names[-1]), [NONE] + names)
    with c3:
        b = widgets.selectbox("… minus B", _pick(state.STRIP_B, names, names[0]), names,
                              disabled=a == NONE)
    diff = (names.index(a), names.index(b)) if a != NONE and a != b else None
    title = f"{case.case_id}: {case.target!r} (wrong) vs {case.contrast!r} (right)"
    notes = [f"Prompt: {case.prompt}", f"Colour scale: {SCALES[scale]}"] + \
        [f"{n}: Δℓ {t.logit_diff:+.3f}, conservation {t.conservation:.2f}" for n, t in zip(names, atts)]
    strip = aligned.build_strip(al, names, scale, diff, title, notes, series)
    st.html(render.legend_html(case.target, case.contrast, "max" if scale == "row" else "none"))
    st.html(aligned.strip_fragment(strip, layout.scale()))
    if diff is not None:
        st.caption(f"Difference row: red = {safe.plain(names[diff[0]])} leans more towards the wrong token than "
                   f"{safe.plain(names[diff[1]])}.")
    layout.downloads(f"strip_{key}_{case.case_id}", key=f"strip_{key}", extra={
        "PNG": (lambda: _png(strip), "image/png", "png"),
        "SVG": (lambda: _svg(strip), "image/svg+xml", "svg"),
        "HTML": (lambda: aligned.strip_html(strip, case.target, case.contrast, scale), "text/html", "html"),
        "LaTeX": (lambda: aligned.strip_latex(strip), "application/x-tex", "tex"),
        "CSV": (lambda: aligned.strip_csv(strip), "text/csv", "csv")})
    segments = {n: segment_relevance(t.relevance, assign_segments(t.offsets, case.segments, t.special_mask))
                for n, t in zip(names, atts)}
    _slides(params, labels, names, case, strip, series, shift_sentences(names[0], segments) if len(names) > 1 else [],
            key)
    if len(names) > 1:
        st.markdown("**Where the relevance moved** (segment relevance ÷ the case's max |R|; > 0 pushes towards the "
                    "wrong token)")
        if not case.segments:
            st.caption("This prompt has no marked segments: every ordinary token counts as Query.")
        st.markdown("\n".join(f"- {safe.plain(s)}" for s in shift_sentences(names[0], segments)))  # md-safe: plain
        seg = pd.DataFrame([{"row": n, **{k: round(v, 4) for k, v in s.items()}} for n, s in segments.items()])
        with st.expander("Segment relevance per row"):
            layout.table(seg, f"segments_{key}_{case.case_id}", key=f"segments_{key}")


def _slides(params: Sequence[str], labels: Sequence[str], names: Sequence[str], case: CaseSpec,
            strip: aligned.Strip, series: bool, shifts: Sequence[str], key: str) -> None:
    """"Download slides": the verdict of every model (checkpoint) in the page's order with its colour, the
    row-over-row heatmap and where the relevance moved (engine.present.compare_deck; made when clicked)."""
    from engine.present.compare_deck import compare_deck
    from ui.sections.story import PPTX

    deltas = case_deltas(params, labels, [case])
    if deltas is None:
        return
    rows = V.verdicts([d for name in names for d in deltas.get(name, [])], [case])
    question = "What did training fix in this failure?" if series else "Does a bigger model fix this failure?"
    line = f"{case.case_id} · says {case.target!r}, should say {case.contrast!r}"
    st.download_button("⬇ Download slides", lambda: compare_deck(question, line, rows, names, strip, series, shifts),
                       file_name=f"{layout.slug(f'{key}_{case.case_id}')}_slides.pptx", mime=PPTX, type="primary",
                       on_click="ignore", key=f"slides:{key}",
                       help=f"A PowerPoint deck: the verdict of every {'checkpoint' if series else 'model'} in "
                            "order, the heatmaps row over row and where the relevance moved.")


def _png(strip: aligned.Strip) -> bytes:
    from engine.present.charts import to_png

    return to_png(aligned.strip_chart(strip))


def _svg(strip: aligned.Strip) -> str:
    from engine.present.charts import to_svg

    return to_svg(aligned.strip_chart(strip))


LAST = "last"  # Evolution's case source: the cases failing at the last checkpoint


def failing_cases(param: str, n: int) -> list[CaseSpec]:
    """Up to n cases on which a model fails: a zoo model's shipped failures; for any other model, the zoo
    failure cases (of every zoo model, families in turn) on which its own verdict is not "fixed"."""
    name = state.ModelSpec.parse(param).zoo_name
    if name in zoo.zoo_names():
        return cv.zoo_cases(param, n)
    pool = cv.pick_cases(zoo.load_failures(), max(4 * n, 40))
    deltas = case_deltas([param], [param], pool)
    if deltas is None:
        return []
    bad = {r.case_id for r in V.verdicts(deltas[param], pool) if r.verdict in (V.STILL_WRONG, V.DIFFERENT)}
    return [c for c in pool if c.case_id in bad][:n]


def training_summary(rows: Sequence[V.ModelVerdict], first: str, last: str) -> None:
    """What training fixed and what it broke, from the first and the last checkpoint's verdicts of each case."""
    n = V.training_counts(rows, first, last)
    cols = st.columns(5)
    cols[0].metric(f"fixed at {safe.plain(last)}", f"{n.fixed_last} of {n.cases}")
    cols[1].metric("fixed by training", n.fixed_by_training,
                   help=f"wrong at {safe.plain(first)}, right at {safe.plain(last)}")
    cols[2].metric("broken by training", n.broken,
                   help=f"right at {safe.plain(first)}, wrong at {safe.plain(last)}")
    cols[3].metric("right once, lost again", n.lost_again,
                   help=f"wrong at {safe.plain(first)} and {safe.plain(last)}, right at some checkpoint between")
    cols[4].metric("never right", n.never, help="wrong at every checkpoint shown")
