"""Long prompts stay legible: token groups on the Heatmap page (granularity, minimap, strongest groups, a window
around the selection, a group opened into its tokens) and supernodes on the Graph page (open / close, a cap on
the number of nodes drawn). The maths are in engine.token_groups, engine.graph.supernodes and
engine.present.group_views.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import streamlit as st

from engine.cases.segments import assign_segments
from engine.graph.supernodes import group_graph, node_cap_threshold
from engine.graph.types import AttributionGraph, PruneSettings
from engine.present import render
from engine.present.group_views import group_heatmap_fragment, group_view, minimap_chart, ranked_rows
from engine.records import Attribution
from engine.token_groups import (
    KINDS,
    SHORT_PROMPT,
    Grouping,
    auto_window,
    default_kind,
    group_tokens,
    pieces,
    snippet,
    top_groups,
    window_around,
    with_open,
)
from ui import layout, safe, state, widgets
from ui.sections import views

VIEW_TOKENS = 600  # the heatmap of a long prompt shows about this many tokens around the selection
OPEN_TOKENS = 600  # an opened group shows at most this many of its tokens (around its strongest one)
TOP_N = 5  # strongest groups listed per sign
MAX_NODES = 80  # a grouped or long graph draws at most this many nodes
_MINIMAP_SEEN = "_long:minimap_seen"  # session only: the minimap click already taken (a click jumps once)
_BASE = "_long:graph_base"  # session only: the graph's grouping before any group was opened
_BUILT = "_long:graph_open"  # session only: the opened groups the drawn graph was built with


def _label(kind: str) -> str:
    return "Automatic (by length)" if kind == "auto" else KINDS[kind]


def segment_labels(att: Attribution, prompt: str) -> list[str]:
    """[tokens] Instruction / Query / Answer / Special of the view's prompt (its case's spans, if it is a case)."""
    case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    spans = dict(case.segments) if case is not None and case.prompt == prompt else {}
    return assign_segments(att.offsets, spans, att.special_mask)


def grouping(att: Attribution, prompt: str, kind: str, graph: bool = False) -> Grouping:
    """The view's token groups; "auto" picks by length (the graph prefers segments when they say something)."""
    piece = pieces(prompt, att.offsets, att.tokens)
    labels = segment_labels(att, prompt)
    n = len(att.tokens)
    if kind == "auto":
        kind = default_kind(n, piece, att.special_mask)
        if graph and n > SHORT_PROMPT and group_tokens("segments", piece, att.special_mask, labels).n_groups >= 4:
            kind = "segments"
    g = group_tokens(kind, piece, att.special_mask, labels, auto_window(n))
    if kind == "segments":  # name each group by its segment
        g = replace(g, texts=tuple(f"{labels[s].capitalize()}: {t}" for s, t in zip(g.starts, g.texts)))
    return g


def _select(token: int) -> None:
    state.put(state.GROUP, int(token))


def _ranked(view, groups: list[int], title: str, key: str) -> None:
    st.markdown(title)  # md-safe: the caller's constant title (_ranked is scanned)
    if not groups:
        st.caption("none")
    for row in ranked_rows(view, groups, limit=48):
        st.button(f"{row['R']:+.3f} · tokens {safe.plain(row['tokens'])} · {safe.plain(row['text'])}",
                  key=f"{key}:{row['group']}",
                  on_click=_select, args=(view.grouping.starts[row["group"]],), width="stretch",
                  help="Jump to this group in the heatmap and open it into its tokens.")


def heatmap(att: Attribution, prompt: str, mask: list[bool], values: list[float]) -> None:
    """The Heatmap page's token view: token by token for short prompts, else groups with a minimap, the
    strongest groups, a window around the selection and the selected group opened into its tokens."""
    widgets.selectbox("Granularity", state.GRAN, ["auto", *KINDS], format_func=_label,
                      help="Sum relevance over words, lines, sentences, segments or fixed windows (sums are exact). "
                           "Automatic: tokens up to 300 tokens, lines or sentences (else windows) beyond.")
    n = len(att.tokens)
    groups = grouping(att, prompt, state.get(state.GRAN))
    if groups.kind == "tokens" and n <= SHORT_PROMPT:
        views.heatmap(att, mask, values)
        return
    contrast = att.contrast.text if att.contrast else None
    st.html(render.legend_html(att.target.text, contrast, state.get(state.NORM)))
    view = group_view(groups, att.relevance, mask, state.get(state.NORM), att.special_mask)
    chosen = state.get(state.GROUP)
    opened = groups.find(chosen) if 0 <= chosen < n else None
    plain = [view.shown[i] and not all(att.special_mask[s:e]) for i, (s, e) in enumerate(groups.spans)]
    focus = opened if opened is not None else max(  # the strongest group of ordinary tokens (not a sink)
        (i for i in range(groups.n_groups) if plain[i]), key=lambda i: abs(view.relevance[i]), default=0)
    lo, hi = window_around(groups, focus, VIEW_TOKENS)
    first, last = groups.starts[lo], groups.ends[hi - 1]
    if n > SHORT_PROMPT:
        _minimap(att, mask, (first, last))
    st.caption(f"{safe.plain(_label(groups.kind))}: {groups.n_groups:d} groups over {n:d} tokens "
               f"(colour: Σ R of each group). "
               f"Showing tokens {first:d}–{last - 1:d}" + ("" if (first, last) == (0, n) else " around the selection")
               + ". Pick a group below (or click the strip) to jump to it and open it.")
    st.html(group_heatmap_fragment(view, lo, hi, selected=opened, font_scale=layout.scale()))
    pos, neg = top_groups([r if on else 0.0 for r, on in zip(view.relevance, view.shown)], TOP_N)
    c1, c2 = st.columns(2, gap="medium")
    with c1:
        _ranked(view, pos, f"**Strongest towards the target** ({att.target.text!r}, red)", "grp:pos")
    with c2:
        _ranked(view, neg, f"**Strongest towards the contrast** ({contrast!r}, blue)" if contrast else
                "**Strongest against the target** (blue)", "grp:neg")
    if opened is not None:
        _opened(att, groups, opened, mask)


def _minimap(att: Attribution, mask: list[bool], window: tuple[int, int]) -> None:
    """The whole prompt as one strip; a click on a cell jumps there (taken once per click)."""
    chart = minimap_chart(att.relevance, mask, window, scale=layout.scale(), special=att.special_mask)
    event = st.altair_chart(chart, on_select="rerun",
                            selection_mode="pick", key="long:minimap", width="content")
    picked = (event or {}).get("selection", {}).get("pick") or []
    start = picked[0].get("start") if picked and isinstance(picked[0], dict) else None
    if start is not None and start != st.session_state.get(_MINIMAP_SEEN):
        st.session_state[_MINIMAP_SEEN] = start
        state.put(state.GROUP, int(start))
        st.rerun()


def _opened(att: Attribution, groups: Grouping, g: int, mask: list[bool]) -> None:
    """The selected group's tokens, coloured on their own scale (max |R| inside the group)."""
    s, e = groups.spans[g]
    if e - s > OPEN_TOKENS:  # centre the strongest token of the group
        peak = max(range(s, e), key=lambda t: abs(att.relevance[t]) if mask[t] else 0.0)
        s = min(max(s, peak - OPEN_TOKENS // 2), e - OPEN_TOKENS)
        e = s + OPEN_TOKENS
    head, close = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**Opened: group {g:d}**, tokens {s:d}–{e - 1:d}"
                  + (f" (of {groups.spans[g][0]:d}–{groups.spans[g][1] - 1:d})" if (s, e) != groups.spans[g] else "")
                  + " · colour scale: max |R| inside the group")
    close.button("Close", key="grp:close", on_click=_select, args=(-1,))
    sub_mask = [mask[t] for t in range(s, e)]
    sub_values = render.normalise(att.relevance[s:e], sub_mask, state.get(state.NORM))
    st.html(render.heatmap_fragment(att.tokens[s:e], sub_values, att.relevance[s:e], sub_mask,
                                    font_scale=layout.scale()))


# ---------------------------------------------------------------- graph supernodes
@st.cache_resource(max_entries=8, show_spinner=False)
def _grouped(graph_key: str, kind: str, starts: tuple[int, ...], _graph: AttributionGraph,
             _groups: Grouping) -> AttributionGraph:
    return group_graph(_graph, _groups)


def _short_labels(groups: Grouping) -> Grouping:
    """Node labels and tooltips: a group's first words, not its whole text (a segment can be 4k tokens)."""
    return replace(groups, texts=tuple(t if groups.size(i) == 1 else snippet(t, 40)
                                       for i, t in enumerate(groups.texts)))


def grouped_graph(graph: AttributionGraph, key: str, att: Attribution, prompt: str) -> AttributionGraph:
    """Granularity of the graph's columns; the graph with supernodes (cached), or the graph itself for tokens."""
    # in presentation mode a short prompt's graph is drawn token by token without the control above it (first screen)
    quiet = state.get(state.PRESENT) and len(att.tokens) <= SHORT_PROMPT and state.get(state.GGRAN) == "auto"
    if quiet:
        st.session_state[_BUILT], st.session_state[_BASE] = tuple(state.get(state.OPEN)), None
        return graph
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    with c1:
        widgets.selectbox("Supernodes", state.GGRAN, ["auto", *KINDS], format_func=_label, on_change=_close_all,
                          help="Merge the nodes of a group into one node per layer (edges summed exactly). "
                               "Automatic: tokens up to 300 tokens, segments (else lines / windows) beyond.")
    base = grouping(att, prompt, state.get(state.GGRAN), graph=True)
    st.session_state[_BUILT] = tuple(state.get(state.OPEN))
    if base.kind == "tokens":
        st.session_state[_BASE] = None
        return graph
    piece = pieces(prompt, att.offsets, att.tokens)
    opened = [t for t in state.get(state.OPEN) if t in set(base.starts)]
    groups = _short_labels(with_open(base, opened, piece))
    st.session_state[_BASE] = base
    with c2:
        if opened:
            st.button(f"Close {len(opened)} opened group{'s' if len(opened) > 1 else ''}", key="sn:close_all",
                      on_click=_close_all)
    st.caption(f"{safe.plain(_label(base.kind))} as supernodes: {base.n_groups:d} groups"
               + (f", {len(opened)} opened into tokens" if opened else "")
               + ". Click a node, then **Open** it to see its tokens.")
    return _grouped(key, base.kind, groups.starts, graph, groups)


def _close_all() -> None:
    state.put(state.OPEN, [])


def capped(graph: AttributionGraph, settings: PruneSettings, stages: list[int]) -> PruneSettings:
    """Grouped or long graphs draw at most MAX_NODES nodes (the strongest by |R|): the node floor is raised."""
    if graph.spans is None and graph.n_tokens <= SHORT_PROMPT:
        return settings
    floor = node_cap_threshold(graph, stages, MAX_NODES)
    return replace(settings, node_threshold=max(settings.node_threshold, floor))


def supernode(graph: AttributionGraph, stage: int, column: int) -> None:
    """Open a selected supernode into its tokens, or close the opened group a selected token belongs to."""
    if graph.spans is None:
        return
    s, e = graph.spans[column]
    base: Optional[Grouping] = st.session_state.get(_BASE)
    if e - s > 1:
        st.caption(f"A supernode of {e - s:d} tokens ({s:d}–{e - 1:d}): "
                   f"“{safe.plain(snippet(graph.tokens[column], 80))}”. "
                   "Hidden dimensions and neurons are per token: open it to see them.")
        st.button("Open this group into its tokens", key="sn:open", type="primary", on_click=_set_open,
                  args=(sorted(set(state.get(state.OPEN)) | {s}),))
    elif base is not None and base.size(base.find(s)) > 1:
        first = base.starts[base.find(s)]
        st.button("Close its group again", key="sn:collapse", on_click=_set_open,
                  args=([t for t in state.get(state.OPEN) if t != first],))


def _set_open(opened: list[int]) -> None:
    state.put(state.OPEN, opened)
    state.put(state.NODE, "")


def follow_grouping() -> None:
    """Called first in the Graph page's fragment: a group opened or closed inside the fragment changes the graph
    itself, which is built outside it, so the whole page runs again."""
    if st.session_state.get(_BUILT) is not None and st.session_state[_BUILT] != tuple(state.get(state.OPEN)):
        st.rerun(scope="app")
