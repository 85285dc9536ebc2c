"""Every session-state key of the dashboard, defined once, and its mirror in the URL query string.

The view state lives in `st.session_state[<key>]`; at the end of every run `sync_url` writes the values that
differ from their defaults into the query string, and the first run of a session reads them back, so a copied
link reopens the exact view. Widgets never own these keys: `ui.widgets` binds a widget to a key (the widget
has its own key "w:<key>"), so values survive page switches.

URL scheme (all optional; defaults are left out):
  model=<spec> (repeatable)   loaded models, see ModelSpec: zoo:l | /path/to/folder |
                              org/name;rev=main;dtype=bfloat16;q=4bit;rule=cp-lrp
  active=<i>                  index of the model the pages show (0 = first)
  case=<zoo model>/<case id>  a zoo failure case (sets prompt, target, contrast); else prompt=<text>, or
                              ph=<hash> for a prompt over 500 characters (saved in engine.runs.prompts' store)
  target, contrast            token text, or #<token id>; empty: top-1 / runner-up
  mode, strategy, k           objective (logit_diff | max_logit; by_ref_token | by_topk_avg | demean; k)
  norm, hide_first, hide_special               heatmap colour scale and hidden tokens
  layers, stages, split, prune, top_p, edge_thr, node_thr, connected, hide_bos, node   graph view
  gran, grp, ggran, open      long prompts: heatmap granularity, selected group, graph supernodes, opened supernodes
  present=1                   presentation mode
  cmp_models (repeatable), cmp_ref, cmp_add (repeatable), cmp_case, ncases, overlay, corr_x, corr_y   Scaling page
  ev_source, ev_series, ev_points (repeatable), ev_path, ev_revs, ev_cases, ev_add (repeatable), ev_case   Evolution
  strip_scale, strip_a, strip_b, y_scale   the row-over-row heatmaps (colour scale, difference row) and robust charts
  Both pages open on the case of the Heatmap page (case / prompt, target, contrast): "the case at hand".
  store, run, sw_models, sw_bench, sw_cat (repeatable), sw_case                       Sweeps page (results browser)
  check, check_k, check_seeds, check_repl, check_nodes      causal checks (deletion curves, node ablation)
  wi (repeatable)             What if? edits of the Heatmap page's prompt, in order: rm:<token> | rp:<token>=<word>
  st_store, study             Study page: the store folder and the study shown
Trusting remote code is never read from a URL: a link must not be able to run code on the viewer's machine.
To add a page's own state: add Field lines below (the key doubles as the URL parameter name).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import streamlit as st

from engine.graph.types import DEFAULT_TOP_P
from engine.model_spec import ModelSpec
from ui import prompt_links


@dataclass(frozen=True)
class Field:
    key: str
    default: Any
    url: bool = True  # mirrored in the query string


MODELS, ACTIVE, CASE, PROMPT, TARGET, CONTRAST = "model", "active", "case", "prompt", "target", "contrast"
MODE, STRATEGY, K = "mode", "strategy", "k"
NORM, HIDE_FIRST, HIDE_SPECIAL = "norm", "hide_first", "hide_special"
LAYERS, STAGES, SPLIT, PRUNE, TOP_P, EDGE_THR, NODE_THR = ("layers", "stages", "split", "prune", "top_p", "edge_thr",
                                                           "node_thr")
CONNECTED, HIDE_BOS, NODE, PRESENT = "connected", "hide_bos", "node", "present"
TRUSTED = "trusted"  # session only: model specs the user allowed to run remote code
STOPPED = "stopped"  # session only: key of the long task the user stopped
URL_ISSUES = "url_issues"  # session only: URL values that could not be used
# Scaling / Evolution / Sweeps pages
CMP_MODELS, CMP_REF, CMP_ADD, CMP_CASE = "cmp_models", "cmp_ref", "cmp_add", "cmp_case"  # models, reference
NCASES, OVERLAY, CORR_X, CORR_Y = "ncases", "overlay", "corr_x", "corr_y"  # cases per set; old threshold overlay
EV_SOURCE, EV_POINTS, EV_PATH, EV_REVS = "ev_source", "ev_points", "ev_path", "ev_revs"  # zoo | local | hub checkpoints
EV_SERIES, EV_CASES, EV_ADD, EV_CASE = "ev_series", "ev_cases", "ev_add", "ev_case"  # zoo size, set cases, added, strip
STRIP_SCALE, STRIP_A, STRIP_B, Y_SCALE = "strip_scale", "strip_a", "strip_b", "y_scale"  # row-over-row heatmaps
STORE, RUN = "store", "run"  # results store folder and run id
SW_MODELS, SW_BENCH, SW_CAT, SW_CASE = "sw_models", "sw_bench", "sw_cat", "sw_case"  # result filters, opened case
SW_CONFIG, SW_RESUME = "sw_config", "sw_resume"  # session only: sweep config text, resume a stopped run
SW_FORM_ERROR = "sw_form_error"  # session only: why the sweep form could not write a config ("" when it could)
SW_JOB = "sw_job"  # session only: (store, run id) of the sweep this session started last; () before one
DEFAULTS_DONE = "defaults_done"  # session only: pages whose zoo defaults were filled in
GRAPH_CLICK = "graph_click"  # session only: the last graph click already taken (a click selects a node once)
CHK_ON, CHK_K, CHK_SEEDS, CHK_REPL, CHK_NODES = "check", "check_k", "check_seeds", "check_repl", "check_nodes"  # checks
CHK_CURVES = "check_curves"  # the deletion check's full curves (chart and table) beside its verdict
# long prompts (ui.sections.long_views): heatmap granularity, selected
GRAN, GROUP, GGRAN, OPEN = "gran", "grp", "ggran", "open"
# group (by a token in it), graph supernodes, supernodes opened into tokens (by their first token)
LAST_CASE = "last_case"  # session only: the case open before "Own prompt" (going back reopens it)
# session only: {content key: result} of the checks run on request (ui.sections.check_views); replaced,
# never mutated in place (the default is shared)
CHK_DONE = "check_done"
# What if? (ui.sections.whatif_views): edit specs;
WHATIF, WI_FOR, WI_PICK, WI_WORD = "wi", "wi_for", "wi_pick", "wi_word"
# session only: the prompt hash they belong to, the picked token positions, the replacement word
WI_OPENED, WI_NOTICE = "wi_opened", "wi_notice"  # session only: last case file opened (upload id), an editor hint
WI_OPEN_MSG, WI_NOTE_ERR = "wi_open_msg", "wi_note_err"  # session only: what opening a case did, a refused note
# session only, one dict each all session long, read on click by buttons made in an earlier run: {prompt hash: edit
# specs} (the deck), {view: (graph, pruning)} the Graph page drew last (Save case)
WI_LIVE, WI_SHOWN = "wi_live", "wi_shown"
ST_STORE, ST_NAME, ST_SIZE = "st_store", "study", "st_size"  # Study page: store folder, study, size of a new run

FIELDS: dict[str, Field] = {f.key: f for f in [
    Field(MODELS, []), Field(ACTIVE, 0), Field(CASE, ""), Field(PROMPT, ""), Field(TARGET, ""), Field(CONTRAST, ""),
    Field(MODE, "logit_diff"), Field(STRATEGY, "by_ref_token"), Field(K, 10),
    Field(NORM, "max"), Field(HIDE_FIRST, False), Field(HIDE_SPECIAL, False),
    Field(LAYERS, "All"), Field(STAGES, []), Field(SPLIT, False), Field(PRUNE, "cum_mass"), Field(TOP_P, DEFAULT_TOP_P),
    Field(EDGE_THR, 0.02), Field(NODE_THR, 0.0), Field(CONNECTED, True), Field(HIDE_BOS, True), Field(NODE, ""),
    Field(PRESENT, False),
    Field(TRUSTED, frozenset(), url=False), Field(STOPPED, "", url=False), Field(URL_ISSUES, [], url=False),
    # ---- Scaling, Evolution and Sweeps pages (ui.sections.compare_views, ui.sections.sweep_views) ----
    Field(CMP_MODELS, []), Field(CMP_REF, ""), Field(CMP_ADD, []), Field(CMP_CASE, ""), Field(NCASES, 12),
    Field(OVERLAY, False), Field(CORR_X, 1.0), Field(CORR_Y, -1.0),
    Field(EV_SOURCE, "zoo"), Field(EV_SERIES, ""), Field(EV_POINTS, []), Field(EV_PATH, ""), Field(EV_REVS, ""),
    Field(EV_CASES, ""), Field(EV_ADD, []), Field(EV_CASE, ""),
    Field(STRIP_SCALE, "row"), Field(STRIP_A, ""), Field(STRIP_B, ""), Field(Y_SCALE, "linear"),
    Field(STORE, ""), Field(RUN, ""), Field(SW_MODELS, []), Field(SW_BENCH, []), Field(SW_CAT, []), Field(SW_CASE, ""),
    Field(SW_CONFIG, "", url=False), Field(SW_RESUME, False, url=False), Field(SW_FORM_ERROR, "", url=False),
    Field(SW_JOB, (), url=False),
    Field(DEFAULTS_DONE, frozenset(), url=False),
    Field(GRAPH_CLICK, "", url=False), Field(LAST_CASE, "", url=False),
    # ---- causal checks beside the heatmap and the graph (ui.sections.check_views) ----
    Field(CHK_ON, True), Field(CHK_K, 10), Field(CHK_SEEDS, 5), Field(CHK_REPL, "neutral"), Field(CHK_NODES, 20),
    Field(CHK_DONE, {}, url=False),
    Field(CHK_CURVES, False),
    Field(GRAN, "auto"), Field(GROUP, -1), Field(GGRAN, "auto"), Field(OPEN, []),
    # ---- What if? on the Heatmap page (ui.sections.whatif_views) ----
    Field(WHATIF, []), Field(WI_FOR, "", url=False), Field(WI_PICK, [], url=False), Field(WI_WORD, "", url=False),
    Field(WI_OPENED, "", url=False), Field(WI_NOTICE, "", url=False), Field(WI_OPEN_MSG, "", url=False),
    Field(WI_NOTE_ERR, "", url=False), Field(WI_LIVE, None, url=False),
    Field(WI_SHOWN, None, url=False),
    # ---- Study page (ui.sections.study_views) ----
    Field(ST_STORE, ""), Field(ST_NAME, ""), Field(ST_SIZE, "quick", url=False),
]}
_LOADED = "_url_loaded"


# ---------------------------------------------------------------- defaults from the zoo
def default_model() -> Optional[str]:
    """The largest zoo size that has failure cases (else the largest size); None without a zoo."""
    from engine import zoo

    sizes = zoo.zoo_sizes()
    with_failures = {f.model for f in zoo.load_failures()}
    pick = [s for s in sizes if s in with_failures] or sizes
    return f"zoo:{pick[-1]}" if pick else None


def find_case(ref: str):
    """The ZooFailure named "<zoo model>/<case id>", or None."""
    from engine import zoo

    model, _, case_id = ref.partition("/")
    if model not in zoo.zoo_names():
        return None
    return next((f for f in zoo.load_failures(model) if f.case_id == case_id), None)


def case_ref(failure) -> str:
    return f"{failure.model}/{failure.case_id}"


def default_case(model_param: Optional[str]) -> Optional[Any]:
    """A real failure of the model: the clearest one (largest logit difference) among the shortest prompts."""
    from engine import zoo

    name = ModelSpec.parse(model_param).zoo_name if model_param else None
    fails = zoo.load_failures(name) if name in zoo.zoo_names() else zoo.load_failures()
    short = sorted(fails, key=lambda f: len(f.prompt))[:20]
    return max(short, key=lambda f: f.logit_diff) if short else None


def apply_case(failure) -> None:
    """Point the view at a zoo failure: its prompt, its wrong token as target, the right one as contrast."""
    ss = st.session_state
    ss[CASE], ss[PROMPT] = case_ref(failure), failure.prompt
    ss[TARGET], ss[CONTRAST] = f"#{failure.target_id}", f"#{failure.contrast_id}"
    ss[MODE], ss[NODE], ss[GROUP], ss[OPEN] = "logit_diff", "", -1, []


# ---------------------------------------------------------------- URL <-> session state
def _parse(field: Field, values: list[str]) -> Any:
    d = field.default
    if isinstance(d, list):
        return [int(v) for v in values] if field.key in (STAGES, OPEN) else list(values)
    v = values[-1]
    if isinstance(d, bool):
        if v.lower() not in ("1", "0", "true", "false"):
            raise ValueError(v)
        return v.lower() in ("1", "true")
    value = type(d)(v)
    if isinstance(value, float) and not math.isfinite(value):  # "nan" / "inf" parse as floats
        raise ValueError(v)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def init() -> None:
    """Called at the top of every run: the first run of a session reads the URL and fills in the defaults."""
    ss = st.session_state
    if not ss.get(_LOADED):
        ss[_LOADED] = True
        issues = []
        for f in FIELDS.values():
            ss[f.key] = f.default
            values = st.query_params.get_all(f.key) if f.url else []
            if values:
                try:
                    ss[f.key] = _parse(f, values)
                except ValueError:
                    issues.append(f"{f.key}={values[-1]!r} in the link is not valid; using the default.")
        ss[PROMPT] = prompt_links.read(ss[PROMPT], issues)
        ss[URL_ISSUES] = issues
        _fill_defaults(issues)
    for f in FIELDS.values():  # fields added after the session started
        if f.key not in ss:
            ss[f.key] = f.default


def _fill_defaults(issues: list[str]) -> None:
    ss = st.session_state
    if not ss[MODELS]:
        model = default_model()
        ss[MODELS] = [model] if model else []
    if ss[CASE]:
        failure = find_case(ss[CASE])
        if failure is None:
            issues.append(f"The failure case {ss[CASE]!r} from the link does not exist in this zoo.")
            ss[CASE] = ""
        else:  # the case fills in what the link leaves out; what the link says wins (tokens, objective, node)
            linked = {k: ss[k] for k in (TARGET, CONTRAST, MODE, NODE) if ss[k] != FIELDS[k].default}
            apply_case(failure)
            ss.update(linked)
    elif not ss[PROMPT]:
        failure = default_case(active_param())
        if failure is not None:
            apply_case(failure)


def url_params() -> dict[str, Any]:
    """The query string of the current view: fields that differ from their defaults (prompt only without a case)."""
    ss = st.session_state
    out = {}
    for f in FIELDS.values():
        v = ss.get(f.key, f.default)
        if f.url and v != f.default and not (f.key == PROMPT and ss.get(CASE)):
            out[f.key] = _encode(v)
    return prompt_links.shorten(out)


def sync_url() -> None:
    """Write the view into the query string (only when it changed, so the browser history stays clean)."""
    want = url_params()
    have = {k: st.query_params.get_all(k) for k in st.query_params.keys() if k not in ("embed", "embed_options")}
    if have != {k: v if isinstance(v, list) else [v] for k, v in want.items()}:
        st.query_params.from_dict(want)


# ---------------------------------------------------------------- small accessors
def get(key: str) -> Any:
    return st.session_state.get(key, FIELDS[key].default)


def put(key: str, value: Any) -> None:
    st.session_state[key] = value


def model_params() -> list[str]:
    return list(get(MODELS))


def active_param() -> Optional[str]:
    models = model_params()
    if not models:
        return None
    i = get(ACTIVE)
    return models[i] if 0 <= i < len(models) else models[0]

