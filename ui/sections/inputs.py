"""The inputs every analysis page shares: failure case or own prompt, target / contrast tokens, objective."""
from __future__ import annotations

from typing import Optional

import pandas as pd
import streamlit as st

from engine import zoo
from engine.model_spec import ModelSpec
from engine.records import Attribution
from engine.tokens import display, token_id_of
from ui import safe, state, widgets

SOURCES = ("Failure case", "Own prompt")
MODES = {"logit_diff": "Logit difference (target − contrast)", "max_logit": "Target logit only"}
STRATEGIES = {"by_ref_token": "minus the contrast token", "by_topk_avg": "minus the mean of the top-k",
              "demean": "minus the mean logit"}


def _failures() -> list:
    """Failures of the active zoo model (all zoo failures for other models), plus the current case."""
    param = state.active_param()
    name = ModelSpec.parse(param).zoo_name if param else None
    fails = zoo.load_failures(name) if name in zoo.zoo_names() else zoo.load_failures()
    current = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    if current is not None and current not in fails:
        fails = [current] + fails
    return fails


def _label(f) -> str:
    return f"{f.model}/{f.case_id} · {f.family} · says {f.target!r}, should say {f.contrast!r} (Δℓ {f.logit_diff:.2f})"


def _switch_source() -> None:
    """Back to "Failure case" reopens the case that was open (else the default one); "Own prompt" keeps its text."""
    if st.session_state[widgets.wkey("source")] == SOURCES[0]:
        fails = _failures()
        last = state.find_case(state.get(state.LAST_CASE)) if state.get(state.LAST_CASE) else None
        if fails:
            state.apply_case(last or state.default_case(state.active_param()) or fails[0])
    else:
        state.put(state.LAST_CASE, state.get(state.CASE))
        state.put(state.CASE, "")


def _new_prompt() -> None:
    """A new prompt has new candidates: target and contrast go back to its top-1 and runner-up."""
    _reset_tokens()
    state.put(state.NODE, "")


def _pick_case() -> None:
    failure = state.find_case(state.get(state.CASE))
    if failure is not None:
        state.apply_case(failure)


def prompt_picker() -> str:
    """Failure-case picker or prompt box; returns the prompt of the view."""
    st.session_state[widgets.wkey("source")] = SOURCES[0] if state.get(state.CASE) else SOURCES[1]
    source = st.radio("Input", SOURCES, horizontal=True, key=widgets.wkey("source"), on_change=_switch_source,
                      label_visibility="collapsed")
    if source == SOURCES[0]:
        fails = _failures()
        if not fails:
            st.info("No failure cases are available for this model. Type your own prompt instead.")
            return state.get(state.PROMPT)
        by_ref = {state.case_ref(f): f for f in fails}
        widgets.selectbox("Failure case", state.CASE, list(by_ref), on_change=_pick_case,
                          format_func=lambda r: _label(by_ref[r]),
                          help="Zoo cases where the model's top-1 token is wrong; the prompt ends right before it.")
        if state.get(state.CASE) in by_ref and state.get(state.PROMPT) != by_ref[state.get(state.CASE)].prompt:
            state.apply_case(by_ref[state.get(state.CASE)])
        long = len(state.get(state.PROMPT)) > 1500  # a long prompt scrolls inside a box instead of filling the page
        st.code(state.get(state.PROMPT), language=None, wrap_lines=True, height=220 if long else "content")
    else:
        widgets.text_area("Prompt", state.PROMPT, height=100, placeholder="Type the text the model continues …",
                          help="The model predicts the token that follows this text.", on_change=_new_prompt)
        st.caption("A new prompt resets target and contrast to its top-1 and runner-up.")
    return state.get(state.PROMPT)


def _reset_tokens() -> None:
    state.put(state.TARGET, "")
    state.put(state.CONTRAST, "")


def _reset_pair() -> None:
    """Reset: a case goes back to its own pair (its recorded wrong and right answer), an own prompt to its top-1
    and runner-up."""
    case = state.find_case(state.get(state.CASE)) if state.get(state.CASE) else None
    if case is not None and case.prompt == state.get(state.PROMPT):
        state.put(state.TARGET, f"#{case.target_id}")
        state.put(state.CONTRAST, f"#{case.contrast_id}")
    else:
        _reset_tokens()


def _swap_tokens() -> None:
    t, c = state.get(state.TARGET), state.get(state.CONTRAST)
    state.put(state.TARGET, c)
    state.put(state.CONTRAST, t)


def _readable(tokenizer, key: str) -> str:
    """The box shows a token chosen by id ("#12", from a click or a case) as its text; the state keeps the id."""
    value = state.get(key)
    tid = token_id_of(value)
    if tid is not None and tid < len(tokenizer):
        text = display(tokenizer, tid)
        if text and text == text.strip() and text.isprintable():
            return text
    return value


def token_inputs(handle) -> None:
    """Target / contrast boxes (text of one token, or #id) and the objective."""
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    c1.text_input("Target (the wrong token)", placeholder="empty: the top-1 token",
                  help="One token as text, or #<id>. Red tokens push towards it.",
                  **widgets.bind(state.TARGET, _readable(handle.tokenizer, state.TARGET)))
    c2.text_input("Contrast (the right token)", placeholder="empty: the runner-up",
                  help="One token as text, or #<id>. Blue tokens push towards it.",
                  **widgets.bind(state.CONTRAST, _readable(handle.tokenizer, state.CONTRAST)),
                  disabled=not contrastive())
    with st.container(horizontal=True, gap="small"):  # full labels: a narrow column cut "Reset" to "R…"
        st.button("⇄ Swap", on_click=_swap_tokens, help="Swap target and contrast.", key="tok:swap")
        st.button("Reset", icon=":material/restart_alt:", on_click=_reset_pair, key="tok:reset",
                  help="Back to the case's own pair: its wrong answer vs its right answer. For an own prompt: the "
                       "top-1 token vs the runner-up.")
    with st.expander("Objective"):
        widgets.radio("What to explain", state.MODE, list(MODES), format_func=MODES.get, horizontal=True)
        if state.get(state.MODE) == "logit_diff":
            widgets.radio("Logit of the target …", state.STRATEGY, list(STRATEGIES), format_func=STRATEGIES.get,
                          horizontal=True)
            if state.get(state.STRATEGY) == "by_topk_avg":
                st.number_input("k", 1, 1000, **widgets.bind(state.K))


def contrastive() -> bool:
    return state.get(state.MODE) == "logit_diff" and state.get(state.STRATEGY) == "by_ref_token"


def _set_token(key: str) -> None:
    tid = st.session_state[widgets.wkey(f"pick:{key}")]
    if tid is not None:
        state.put(key, f"#{tid}")


def _chosen_id(key: str, att: Attribution) -> Optional[int]:
    value = state.get(key)
    if token_id_of(value) is not None:
        return token_id_of(value)
    choice = att.target if key == state.TARGET else att.contrast
    return choice.token_id if choice is not None else None


def topk_table(att: Attribution) -> pd.DataFrame:
    """The top-k next tokens with their logits, probabilities and current role."""
    role = {att.target.token_id: "target"} | ({att.contrast.token_id: "contrast"} if att.contrast else {})
    return pd.DataFrame([{"rank": t.rank, "token": t.token, "id": t.token_id, "logit": round(t.logit, 3),
                          "prob": round(t.prob, 4), "role": role.get(t.token_id, "")} for t in att.topk])


def topk_pills(att: Attribution) -> None:
    """One click on a next-token candidate makes it the contrast (first row) or the target (second row)."""
    ids = [t.token_id for t in att.topk]
    text = {t.token_id: f"{t.token!r} {t.prob:.0%}" for t in att.topk}
    for key, label in ((state.CONTRAST, "Click a candidate to make it the **contrast** (the right token)"),
                       (state.TARGET, "… or the **target** (the wrong token)")):
        if key == state.CONTRAST and not contrastive():
            continue
        other = _chosen_id(state.TARGET if key == state.CONTRAST else state.CONTRAST, att)
        options = [i for i in ids if i != other]  # a token cannot be its own contrast
        chosen = _chosen_id(key, att)
        st.session_state[widgets.wkey(f"pick:{key}")] = chosen if chosen in options else None
        st.pills(label, options, format_func=lambda i: safe.plain(text[i]),  # md-safe: label from the tuple above
                 key=widgets.wkey(f"pick:{key}"), on_change=_set_token, args=(key,), wrap=True)
