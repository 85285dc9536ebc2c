"""Shared parts of the Scaling and Evolution pages: zoo defaults, case picking, the long Δℓ / segment task
(cached by model and cases), one case's heatmap in one model. The case at hand lives in ui.sections.case_views."""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import pandas as pd
import streamlit as st

from engine import zoo
from engine.compare.deltas import (
    CaseDelta,
    CaseSpec,
    Checkpoint,
    cases_from_failures,
    first_token,
    logit_diffs,
    segment_breakdown,
)
from engine.model_spec import ModelSpec
from engine.objectives import Objective
from engine.records import Attribution, FailureLensError
from ui import layout, loaders, safe, state, widgets

MAX_RESULTS = 16  # comparisons kept for instant redraws (thresholds, case choice)
Run = Callable[[str, str, Callable], Any]  # ui.layout.run_task


@dataclass(frozen=True)
class Comparison:
    """Δℓ and segment relevance of the same cases in several models (or checkpoints), in the given order."""

    deltas: dict[str, list[CaseDelta]]  # label -> one CaseDelta per case
    breakdown: pd.DataFrame  # engine.compare.deltas.segment_breakdown rows of every model


def defaults_once(page: str, values: dict[str, Any]) -> None:
    """Fill a page's zoo defaults on its first visit in a session, where the link did not set the key."""
    done = state.get(state.DEFAULTS_DONE)
    if page in done:
        return
    for key, value in values.items():
        if state.get(key) == state.FIELDS[key].default:
            state.put(key, value)
    state.put(state.DEFAULTS_DONE, done | {page})


def label(param: str) -> str:
    try:
        return ModelSpec.parse(param).title
    except FailureLensError:  # a bad entry from a link: shown as typed; loading it reports the problem
        return param


def number(label_: str, key: str, lo: float, hi: float, **kw) -> float:
    """A number input bound to `key`; a value from a link outside [lo, hi] is clamped first."""
    state.put(key, type(lo)(min(max(state.get(key), lo), hi)))
    return st.number_input(label_, lo, hi,  # md-safe: the caller's label (cv.number is scanned)
                           **widgets.bind(key), **kw)


def model_options(extra: Sequence[str] = ()) -> list[str]:
    """Zoo sizes, then the loaded models, then `extra` (e.g. from a link), without repeats."""
    return list(dict.fromkeys([f"zoo:{s}" for s in zoo.zoo_sizes()] + state.model_params() + list(extra)))


def pick_cases(failures: Sequence[Any], n: int) -> list[CaseSpec]:
    """Up to n cases, one family after the other in turn (shortest prompts first within a family), unique ids."""
    by_family: dict[str, list[CaseSpec]] = {}
    seen = set()
    for c in sorted(cases_from_failures(failures), key=lambda c: len(c.prompt)):
        if c.case_id not in seen:
            seen.add(c.case_id)
            by_family.setdefault(c.family, []).append(c)
    out: list[CaseSpec] = []
    while len(out) < n and any(by_family.values()):
        for family in list(by_family):
            if by_family[family] and len(out) < n:
                out.append(by_family[family].pop(0))
    return out


def zoo_cases(param: Optional[str], n: int) -> list[CaseSpec]:
    """The zoo failures of a zoo model (all zoo failures for other models), picked by `pick_cases`."""
    name = ModelSpec.parse(param).zoo_name if param else None
    return pick_cases(zoo.load_failures(name) if name in zoo.zoo_names() else zoo.load_failures(), n)


def case_label(case: CaseSpec) -> str:
    return f"{case.case_id} · {case.family} · {case.target!r} instead of {case.contrast!r}"


def load(param: str):
    """A model from the shared cache, raising FailureLensError (for use inside a long task)."""
    return loaders._load(param, param in state.get(state.TRUSTED))


def checkpoint_param(cp: Checkpoint) -> str:
    return ModelSpec(cp.source, revision=cp.revision).param()


# ---------------------------------------------------------------- the long task, cached
@st.cache_resource(show_spinner=False)
def _results() -> OrderedDict:
    return OrderedDict()


def compare(params: Sequence[str], labels: Sequence[str], cases: Sequence[CaseSpec], run: Run) -> Optional[Comparison]:
    """Δℓ (batched) and the segment breakdown (one heatmap per case) of `cases` in every model, one model
    loaded at a time; through `run` (a stoppable task with progress "case i of n"), or from the cache."""
    key = hashlib.sha1(repr((list(params), list(labels), cases)).encode()).hexdigest()[:16]
    cache = _results()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    n, k_all = len(cases), len(params)

    def work(progress) -> Comparison:
        deltas, frames = {}, []
        for k, (param, name) in enumerate(zip(params, labels)):
            def step(what: str, offset: int):
                return lambda i, _n, _m: progress(f"{name} ({k + 1}/{k_all}): {what}, case {i} of {n}",
                                                  (2 * k + offset) * n + i, 2 * k_all * n)

            handle = load(param)
            deltas[name] = [dataclasses.replace(d, model=name) for d in logit_diffs(handle, cases, step("Δℓ", 0))]
            frames.append(segment_breakdown(handle, cases, step("heatmaps", 1)).assign(model=name))
        return Comparison(deltas, pd.concat(frames, ignore_index=True))

    out = run(f"compare:{key}", f"Δℓ and segment relevance of {n} cases in {k_all} models", work)
    if out is not None:
        cache[key] = out
        while len(cache) > MAX_RESULTS:
            cache.popitem(last=False)
    return out


# ---------------------------------------------------------------- one case
def case_attribution(handle, case: CaseSpec) -> Optional[Attribution]:
    """The case's heatmap in one model, scoring the first token of target and contrast
    (engine.compare.deltas's rule)."""
    tgt, t_note = first_token(handle.tokenizer, case.target, "target")
    con, c_note = first_token(handle.tokenizer, case.contrast, "contrast")
    if tgt is None or con is None or tgt.token_id == con.token_id:
        st.info(
            f"{safe.plain(handle.label)}: no heatmap for this case — "
            f"{safe.plain(t_note if tgt is None else c_note if con is None else 'target and contrast start alike')}.")
        return None
    for note in (t_note, c_note):
        if note:
            st.caption(f"ℹ {safe.plain(handle.label)}: {safe.plain(note)}")
    return loaders.attribution(handle, case.prompt, Objective(f"#{tgt.token_id}", f"#{con.token_id}"))


def outside_the_charts(parts: Sequence[tuple[str, pd.DataFrame, str]]) -> None:
    """What "clip" charts leave out: a count per part ("{n} {what}"), then each non-empty part's table.
    parts: (what, rows, table name / widget key)."""
    counts = ", ".join(f"{len(rows)} {safe.plain(what)}" for what, rows, _ in parts)
    st.markdown(f"**Outside the charts** (beyond 3 × the interquartile range): {counts}.")  # md-safe: ints, plain
    for _, rows, name in parts:
        if len(rows):
            layout.table(rows, name, key=name)


def set_slides(make: Callable[[], Any], key: str, series: bool = False) -> None:
    """"Download slides" of a set view: `make()` -> engine.present.set_deck.SetView, built (and its charts
    rendered) only when the button is clicked."""
    from engine.present.set_deck import set_deck
    from ui.sections.story import PPTX

    who = "checkpoint" if series else "model"
    st.download_button("⬇ Download slides (set view)", lambda: set_deck(make()), mime=PPTX, type="primary",
                       file_name=f"{key}_set_view_slides.pptx", on_click="ignore", key=f"slides:set_{key}",
                       help=f"A deck of the set view: the verdict counts of every {who} in order, "  # md-safe: who
                            "then each chart below with the sentence that sums it up as its title.")
