"""The Heatmap and Graph pages' "What if?" section: remove or replace tokens, or edit the prompt's text, and see the
answer change; save and open case files; notes on the case.

Edits stack (state.WHATIF, in the link as wi=rm:<token> / wi=rp:<token>=<word>; a text edit,
wi=tx:<start>-<end>=<text>, stands alone) and undo one by one. They belong to one prompt: a new prompt clears them.
Before -> after numbers and the sentence come from engine.cases.whatif, the aligned heatmaps from
engine.present.whatif; both are cached by content. A case file (engine.cases.casefile)
restores the view when its model is the one loaded, and is shown read-only with a notice otherwise.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import pandas as pd
import streamlit as st

from engine.cases import casefile
from engine.cases.notes import CATEGORIES, STATUSES, Note, Notebook, case_key
from engine.cases.whatif import (
    ALONE,
    Edit,
    WhatIf,
    apply_text,
    describe_edits,
    describe_text,
    text_edit,
    what_if_attribution,
)
from engine.objectives import Objective
from engine.present import aligned, glossary, render
from engine.present.text import visible
from engine.present.whatif import text_strip, whatif_strip, window
from engine.records import Attribution, FailureLensError
from engine.runs.prompts import prompt_hash
from ui import layout, safe, state, widgets

VIEW_KEYS = (state.NORM, state.HIDE_FIRST, state.HIDE_SPECIAL, state.GRAN, state.GROUP, state.LAYERS, state.STAGES,
             state.SPLIT, state.PRUNE, state.TOP_P, state.EDGE_THR, state.NODE_THR, state.CONNECTED, state.HIDE_BOS,
             state.GGRAN, state.OPEN)  # heatmap and graph settings a case file carries
HOW = ("Pick tokens, then **Remove** them (they become the neutral token of the causal checks, so positions stay) "
       "or **Replace** them with one word of the vocabulary, or edit the prompt's text below. Edits stack; undo them "
       "one by one.")


@st.cache_data(max_entries=64, show_spinner=False)
def _compute(model_key: str, _handle, _att: Attribution, view: tuple, specs: tuple,
             prompt: str) -> tuple[WhatIf, Attribution, float]:
    """view: `_view(_att)`, which names the attribution in the cache key (with the model key and the prompt)."""
    start = time.perf_counter()
    w, after = what_if_attribution(_handle, _att, [Edit.parse(s) for s in specs], prompt=prompt)
    return w, after, time.perf_counter() - start


def _describe(handle, att: Attribution, prompt: str, edits: list[Edit]) -> str:
    if len(edits) == 1 and edits[0].kind == "text":
        return describe_text(prompt, edits[0])
    return describe_edits(handle.tokenizer, att.token_ids, edits)


def _box(key: str) -> dict:
    """One dict of this session, the same object all session long: a download button made in an earlier run
    reads it when clicked (outside any script run) and finds what a fragment put there since."""
    box = state.get(key)
    if box is None:
        box = {}
        state.put(key, box)
    return box


def live_edits() -> dict[str, list[str]]:
    """{prompt hash: edit specs} as this section last saw them (the deck's What if? slide)."""
    return _box(state.WI_LIVE)


def _view(att: Attribution) -> tuple:
    """The attribution on screen: its token ids and the request it answered (target and contrast by id)."""
    return tuple(att.token_ids), Objective.of(att).key()


def show_graph(att: Attribution, graph, pruned) -> None:
    """The Graph page drew `graph` pruned as `pruned` for `att`: a case file saved now keeps it (engine.graph.shown)."""
    box = _box(state.WI_SHOWN)
    box.clear()
    box[_view(att)] = (graph, pruned)


def note_key(handle, prompt: str) -> tuple[str, str]:
    """(model, case) the notes of this view are filed under (engine.cases.notes)."""
    return casefile.model_ref(handle).name, case_key(_case_ref(), prompt)


def _edits(prompt: str) -> list[Edit]:
    """The edit stack of this prompt (cleared when the prompt changed; unreadable specs from a link dropped)."""
    mine = prompt_hash(prompt)
    if state.get(state.WI_FOR) not in ("", mine):
        state.put(state.WHATIF, [])
    state.put(state.WI_FOR, mine)
    out = []
    for spec in state.get(state.WHATIF):
        try:
            out.append(Edit.parse(spec))
        except FailureLensError as e:
            st.warning(safe.plain(e))
    state.put(state.WHATIF, [e.spec() for e in out])
    box = live_edits()
    box.clear()
    box[mine] = [e.spec() for e in out]
    return out


def _push(kind: str) -> None:
    picks = list(state.get(state.WI_PICK))
    word = str(st.session_state.get(widgets.wkey(state.WI_WORD), "")).strip()
    if kind == "replace" and not word:
        state.put(state.WI_NOTICE, "Type the word to put in place of the picked tokens, then press Replace.")
        return
    if any(str(x).startswith("tx:") for x in state.get(state.WHATIF)):
        state.put(state.WI_NOTICE, "A text edit stands alone: undo it (or clear) before removing or replacing "
                                   "tokens.")
        return
    new = [f"rm:{p}" if kind == "remove" else f"rp:{p}={word}" for p in picks]
    state.put(state.WHATIF, list(state.get(state.WHATIF)) + new)
    state.put(state.WI_PICK, [])
    state.put(state.WI_NOTICE, "")


def _text_key(prompt: str) -> str:
    return f"wi:text:{prompt_hash(prompt)}"  # one text box per prompt: a new prompt starts from its own text


def _push_text(prompt: str) -> None:
    """The text box's edit of the prompt as one text edit (it replaces an earlier text edit)."""
    if any(not str(x).startswith("tx:") for x in state.get(state.WHATIF)):
        state.put(state.WI_NOTICE, ALONE)
        return
    try:
        e = text_edit(prompt, str(st.session_state.get(_text_key(prompt), prompt)))
    except FailureLensError as err:
        state.put(state.WI_NOTICE, str(err))
        return
    state.put(state.WHATIF, [e.spec()])
    state.put(state.WI_NOTICE, "")


def _undo(everything: bool = False) -> None:
    state.put(state.WHATIF, [] if everything else list(state.get(state.WHATIF))[:-1])
    for key in [k for k in st.session_state if str(k).startswith("wi:text:")]:
        del st.session_state[key]  # the text box shows the prompt as the remaining edits leave it
    state.put(state.WI_NOTICE, "")


def _editor(att: Attribution, edits: list[Edit], prompt: str) -> None:
    options = [i for i, s in enumerate(att.special_mask) if not s]
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        widgets.multiselect("Tokens to edit", state.WI_PICK, options, placeholder="pick tokens of the prompt",
                            format_func=lambda i: f"{i} · {visible(att.tokens[i])}")
    with c2:
        widgets.text_input("Replace with (one word)", state.WI_WORD, placeholder="e.g. minus")
    with st.container(horizontal=True, gap="small"):
        picked = bool(state.get(state.WI_PICK))
        st.button("Remove", key="wi:remove", on_click=_push, args=("remove",), disabled=not picked, type="primary")
        st.button("Replace", key="wi:replace", on_click=_push, args=("replace",), disabled=not picked)
        st.button("Undo", key="wi:undo", on_click=_undo, disabled=not edits, icon=":material/undo:")
        st.button("Clear", key="wi:clear", on_click=_undo, args=(True,), disabled=not edits)
    text = edits[0] if len(edits) == 1 and edits[0].kind == "text" else None
    with st.expander("Edit the prompt's text", expanded=text is not None):
        key = _text_key(prompt)
        if key not in st.session_state:
            st.session_state[key] = apply_text(prompt, text) if text is not None else prompt
        st.text_area("Prompt text", key=key, height=120, max_chars=len(prompt) + 4000,
                     help="Change any part of the prompt; the edited prompt is tokenized anew. A text edit stands "
                          "alone (no token edits with it).")
        st.button("Apply text edit", key="wi:text_apply", on_click=_push_text, args=(prompt,))
    if state.get(state.WI_NOTICE):
        st.info(safe.plain(state.get(state.WI_NOTICE)))


def _numbers(w: WhatIf) -> None:
    b, a = w.before, w.after
    c = st.columns(2) + st.columns(2)  # two by two: before → after values stay whole on a 1280 px projector
    c[0].metric("Top answer", f"{b.top1!r} → {a.top1!r}")  # md-safe: metric values are plain text
    c[1].metric("Δℓ", f"{b.logit_diff:+.2f} → {a.logit_diff:+.2f}", f"{a.logit_diff - b.logit_diff:+.2f}",
                delta_color="inverse")
    c[2].metric(f"p({safe.quoted(w.target)}) wrong", f"{b.p_target:.1%} → {a.p_target:.1%}")
    c[3].metric(f"p({safe.quoted(w.contrast)}) right", f"{b.p_contrast:.1%} → {a.p_contrast:.1%}")
    (st.success if a.logit_diff < 0 < b.logit_diff else st.info)(safe.plain(w.sentence))


def _strip(tokens, special, before, after, tokens_after, changed, target: str, contrast: str, title: str) -> None:
    lo, hi = window(len(tokens), changed)
    if (lo, hi) != (0, len(tokens)):
        st.caption(f"Tokens {lo:d}–{hi - 1:d} of {len(tokens):,}, around the edits "
                   "(each row scaled over these tokens).")
    strip = whatif_strip(tokens[lo:hi], special[lo:hi], before[lo:hi], after[lo:hi], tokens_after[lo:hi],
                         [c - lo for c in changed if lo <= c < hi], title=title)
    _draw(strip, target, contrast)


def _draw(strip, target: str, contrast: str) -> None:
    for note in strip.notes[1:]:  # a window of a long prompt
        st.caption(safe.plain(note))
    st.html(render.legend_html(target, contrast, "max"))
    st.html(aligned.strip_fragment(strip, layout.scale()))
    st.caption("Before and after, each on its own colour scale; the difference row is after − before: red = the "
               "token leans more towards the wrong answer after the edit. Edited tokens read old→new.")
    layout.downloads("whatif", key="whatif", extra={
        "HTML": (lambda: aligned.strip_html(strip, target, contrast, "each row its own scale"), "text/html", "html"),
        "CSV": (lambda: aligned.strip_csv(strip), "text/csv", "csv"),
    })


@st.fragment
def section(handle, att: Attribution, prompt: str, curves: Any = None, graph_page: bool = False) -> None:
    """What if?, case files and notes for the heatmap on view. A fragment: an edit or a note re-runs only this
    section, not the page's heatmap, charts and check above it (opening a case file re-runs the whole page).
    graph_page: the aligned heatmaps folded away below the numbers, and the edited prompt's graph on request."""
    try:
        _section(handle, att, prompt, curves, graph_page)
    finally:  # a fragment re-run does not reach app.py's sync at the end of the script
        state.sync_url()


def _section(handle, att: Attribution, prompt: str, curves: Any, graph_page: bool = False) -> None:
    st.subheader("What if?")
    if att.contrast is None:
        st.info("What if? compares the wrong answer with the right one: choose the logit difference against a "
                "contrast (Objective) to edit the prompt.")
        return
    if state.get(state.WI_OPEN_MSG):
        st.warning(safe.plain(state.get(state.WI_OPEN_MSG)))
        state.put(state.WI_OPEN_MSG, "")
    edits = _edits(prompt)
    st.caption(HOW)
    _editor(att, edits, prompt)
    w = after = None
    if edits:
        try:
            with st.spinner("Re-running the edited prompt …"):
                w, after, seconds = _compute(handle.key, handle, att, _view(att), tuple(e.spec() for e in edits),
                                             prompt)
        except FailureLensError as e:
            st.error(safe.plain(e) + " Undo the last edit or clear them.")
        else:
            steps = "; ".join(f"{i + 1}. {_describe(handle, att, prompt, [e])}" for i, e in enumerate(edits))
            st.caption(f"Edits: {safe.plain(steps)} · computed in {seconds:.2f} s")
            _numbers(w)
            title = f"What if? {_describe(handle, att, prompt, edits)}"
            with st.expander("Heatmaps before and after the edits") if graph_page else st.container():
                if edits[0].kind == "text":
                    e = edits[0]
                    _draw(text_strip(prompt, e.position, e.end, e.word,
                                     (att.tokens, att.offsets, att.special_mask, att.relevance),
                                     (after.tokens, after.offsets, after.special_mask, after.relevance), w.changed,
                                     title=title), w.target, w.contrast)
                else:
                    _strip(att.tokens, att.special_mask, att.relevance, after.relevance, w.tokens, w.changed,
                           w.target, w.contrast, title)
        if graph_page and after is not None and st.toggle("Draw the edited prompt's graph", key="wi:graph",
                                   help="Builds the attribution graph of the edited prompt (as long as the graph "
                                        "above takes) and draws it pruned as the Graph page does by default."):
            _edited_graph(handle, after)
    _case_files(handle, att, prompt, edits, w, after, curves)
    notes(handle, prompt)


def _edited_graph(handle, after: Attribution) -> None:
    """The edited prompt's graph (cached by its token ids like every graph), drawn static below the numbers."""
    from engine.graph.prune import prune
    from engine.present import charts
    from engine.present.deck import dashboard_prune, dashboard_prune_words
    from ui import loaders

    g, _ = loaders.graph(handle, "", after, None, False, layout.run_task)  # "": build from the edited ids
    if g is None:
        return
    pruned = prune(g, dashboard_prune())
    n_edges = sum(int(m.sum()) for m in pruned.edge_masks)
    layout.chart(charts.graph_chart(g, pruned, scale=layout.scale()), "whatif_graph", key="wi_graph")
    shown = (f"The edited prompt's graph: {len(pruned.visible())} nodes, {n_edges} edges ({dashboard_prune_words()})."
             " Edited tokens read as the neutral token or the replacement word.")
    st.caption(shown)  # md-safe: two counts and constant words


# ---------------------------------------------------------------- case files
def _case_ref() -> str:
    case = state.get(state.CASE)
    return case if case and state.find_case(case) is not None else ""


def _case_file(handle, att: Attribution, prompt: str, edits: list[Edit], w, after, curves) -> casefile.CaseFile:
    ref = casefile.model_ref(handle)
    case = _case_ref()
    try:
        kept = tuple(Notebook().notes(model=ref.name, case=case_key(case, prompt)))
    except FailureLensError:
        kept = ()
    return casefile.CaseFile(
        ref, case, prompt, f"#{att.target.token_id}", f"#{att.contrast.token_id}", att.mode, att.strategy, att.k,
        {k: state.get(k) for k in VIEW_KEYS}, state.get(state.NODE), tuple(e.spec() for e in edits),
        tuple(Note(n.model, n.case, n.hypothesis, n.category, n.status, n.author, n.created) for n in kept),
        casefile.results_of(att, w, after, curves), time.time())


def _fits(key: str, value: Any) -> bool:
    d = state.FIELDS[key].default
    if isinstance(d, list):
        return isinstance(value, list) and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value)
    if isinstance(d, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(d, bool)
    return isinstance(value, (int, float)) if isinstance(d, (int, float)) else isinstance(value, type(d))


def _restore(cf: casefile.CaseFile, message: str) -> None:
    """Point the whole view at the case file (the next run recomputes it on the loaded model)."""
    failure = state.find_case(cf.case) if cf.case else None
    if failure is not None and failure.prompt == cf.prompt:
        state.apply_case(failure)
    else:
        state.put(state.CASE, "")
    state.put(state.PROMPT, cf.prompt)
    for key, value in ((state.TARGET, cf.target), (state.CONTRAST, cf.contrast), (state.MODE, cf.mode),
                       (state.STRATEGY, cf.strategy or "by_ref_token"), (state.K, cf.k), (state.NODE, cf.node)):
        state.put(key, value)
    for key in VIEW_KEYS:
        if key in cf.graph and _fits(key, cf.graph[key]):
            state.put(key, type(state.FIELDS[key].default)(cf.graph[key]))
    state.put(state.WHATIF, list(cf.edits))
    state.put(state.WI_FOR, prompt_hash(cf.prompt))
    state.put(state.WI_PICK, [])
    state.put(state.WI_OPEN_MSG, message)


def _import_notes(cf: casefile.CaseFile) -> int:
    """Add the case file's notes this notebook does not have yet; how many were added."""
    nb = Notebook()
    added = 0
    for n in cf.notes:
        have = nb.notes(model=n.model, case=n.case)
        if not any((h.hypothesis, h.author, h.created) == (n.hypothesis, n.author, n.created) for h in have):
            nb.add(n)
            added += 1
    return added


def _read_only(cf: casefile.CaseFile) -> None:
    """The saved results of a case whose model is not loaded."""
    r = cf.results
    st.markdown(f"**Saved case** · {safe.plain(cf.model.name)} · {safe.plain(cf.case or 'own prompt')}")
    if r is None:
        st.caption("The case file holds no results.")
    else:
        if r.logit_diff is not None:
            st.caption(f"Says {safe.quoted(r.target)} instead of {safe.quoted(r.contrast)}, Δℓ {r.logit_diff:+.3f}, "
                       f"{len(r.tokens)} tokens.")
        if r.whatif:
            st.info(safe.plain(r.whatif.get("sentence", "")))
        after = r.after_relevance or r.relevance
        tokens_after = r.whatif.get("tokens", r.tokens) if r.whatif else r.tokens
        changed = r.whatif.get("changed", []) if r.whatif else []
        token_edits = not any(e.startswith("tx:") for e in cf.edits)  # a text edit's tokens do not line up
        if token_edits and len(tokens_after) == len(r.tokens) and all(isinstance(i, int) for i in changed):
            _strip(r.tokens, r.special, r.relevance, after, tokens_after, changed, r.target, r.contrast,
                   f"Saved case: {cf.case or 'own prompt'}")
        if r.verdict:
            st.caption(f"Check: {safe.plain(r.verdict_sentence)}")
        if r.graph is not None:
            from engine.graph.shown import rebuild
            from engine.present import charts

            g, pruned = rebuild(r.graph, model=cf.model.name)
            layout.chart(charts.graph_chart(g, pruned, scale=layout.scale()), "saved_graph", key="wi_saved_graph")
            st.caption(f"The graph as it was shown when saved: {len(r.graph.nodes)} nodes, {len(r.graph.edges)} "
                       "edges (read-only: load the model to explore it).")
    if cf.notes:
        st.dataframe(_notes_frame(cf.notes), hide_index=True)


def _case_files(handle, att: Attribution, prompt: str, edits: list[Edit], w, after, curves) -> None:
    left, right = st.columns(2, gap="large")
    with left:
        cf = _case_file(handle, att, prompt, edits, w, after, curves)
        name = f"{casefile.model_ref(handle).name.replace(':', '-')}_{(cf.case or 'prompt').replace('/', '-')}"
        shown, view = _box(state.WI_SHOWN), _view(att)

        def save() -> bytes:  # when clicked: the graph the Graph page shows now, pruned as it is now
            from engine.graph.shown import shown_graph

            try:
                graph = shown_graph(*shown[view]) if view in shown else None
            except FailureLensError:
                graph = None  # more than a case file keeps: saved without it
            return dataclasses.replace(cf, results=dataclasses.replace(cf.results, graph=graph)).to_bytes()

        st.download_button("⬇ Save case", save, file_name=f"{name}{casefile.SUFFIX}",
                           mime="application/json", on_click="ignore", key="wi:save",
                           help="One .flcase file: model and fingerprint, prompt, tokens, objective, view "
                                "settings, edits, notes and the results as computed (with the graph as the Graph "
                                "page shows it, once it was drawn).")
    with right:
        up = st.file_uploader("Open case", type=["flcase"], key="wi:open", help="A .flcase file saved here or "
                              "elsewhere: the view is restored when its model is loaded.")
    if up is None:
        state.put(state.WI_OPENED, "")
        return
    try:
        opened = casefile.read_case(up.getvalue(), f"case file {up.name}")
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    m = casefile.match(opened.model, handle)
    if m.status == "absent":
        st.warning(safe.plain(m.message))
        _read_only(opened)
        return
    if state.get(state.WI_OPENED) == up.file_id:
        return
    state.put(state.WI_OPENED, up.file_id)
    try:
        added = _import_notes(opened)
    except FailureLensError as e:
        st.error(safe.plain(e))
        added = 0
    message = m.message or f"Opened the case file {up.name}: the view is as it was saved."
    _restore(opened, message + (f" {added} note(s) added to the notebook." if added else ""))
    st.rerun(scope="app")


# ---------------------------------------------------------------- notes
def _notes_frame(notes) -> pd.DataFrame:
    return pd.DataFrame([{"id": n.id, "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(n.created)),
                          "who": n.author or "—", "status": n.status, "category": glossary.label(n.category) if
                          n.category else "—", "hypothesis": n.hypothesis, "model": n.model, "case": n.case}
                         for n in notes], columns=["id", "when", "who", "status", "category", "hypothesis", "model",
                                                   "case"])


def _add_note(model: str, case: str) -> None:
    ss = st.session_state
    try:
        Notebook().add(Note(model, case, ss.get("wi:note_text", ""), ss.get("wi:note_cat", ""),
                            ss.get("wi:note_status", "open"), ss.get("wi:note_author", "")))
    except FailureLensError as e:
        state.put(state.WI_NOTE_ERR, str(e))
        return
    ss["wi:note_text"] = ""


def _set_status(nb: Notebook) -> None:
    try:
        nb.set_status(st.session_state["wi:status_id"], st.session_state.get("wi:status_new", "open"))
    except FailureLensError as e:
        state.put(state.WI_NOTE_ERR, str(e))


def notes(handle, prompt: str) -> None:
    """The case's notes (a form to add one, the list, status changes) and every noted case with filters."""
    st.subheader("Notes on this case")
    model, case = note_key(handle, prompt)
    try:
        nb = Notebook()
        mine = nb.notes(model=model, case=case)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    if state.get(state.WI_NOTE_ERR):
        st.error(safe.plain(state.get(state.WI_NOTE_ERR)))
        state.put(state.WI_NOTE_ERR, "")
    with st.form("wi:note", clear_on_submit=False, border=True):
        st.text_area("Hypothesis", key="wi:note_text", placeholder="e.g. the second '2' is read as the first "
                     "operand", max_chars=4000)
        c1, c2, c3 = st.columns(3)
        c1.selectbox("Category", list(CATEGORIES), key="wi:note_cat",
                     format_func=lambda c: glossary.label(c) if c else "none yet")
        c2.selectbox("Status", list(STATUSES), key="wi:note_status")
        c3.text_input("Who", key="wi:note_author", max_chars=200)
        st.form_submit_button("Add note", on_click=_add_note, args=(model, case))
    if mine:
        st.dataframe(_notes_frame(mine).drop(columns=["model", "case"]), hide_index=True, key="wi:notes")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        c1.selectbox("Note", [n.id for n in mine], key="wi:status_id",
                            format_func=lambda i: f"#{i} · {next(n.hypothesis for n in mine if n.id == i)[:60]}")
        c2.selectbox("New status", list(STATUSES), key="wi:status_new")
        c3.button("Set status", key="wi:status_set", on_click=_set_status, args=(nb,))
    else:
        st.caption("No notes on this case yet.")
    with st.expander("All noted cases"):
        c1, c2 = st.columns(2)
        status = c1.selectbox("Status", ["any", *STATUSES], key="wi:all_status")
        category = c2.selectbox("Category", ["any", *CATEGORIES], key="wi:all_cat",
                                format_func=lambda c: c if c == "any" else glossary.label(c) if c else "none yet")
        every = nb.notes(status=None if status == "any" else status, category=None if category == "any" else category)
        if every:
            st.dataframe(_notes_frame(every), hide_index=True, key="wi:all_notes")
        else:
            st.caption("No notes match.")
