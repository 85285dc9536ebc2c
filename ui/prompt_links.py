"""Short links: a prompt longer than engine.runs.prompts.URL_LIMIT characters travels as ph=<hash>; the text
waits in the local prompt store (engine.runs.prompts). Also the store's listing on the Models page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.records import FailureLensError
from engine.runs import prompts
from ui import safe

PARAM = "ph"


def shorten(params: dict) -> dict:
    """The query string with a long prompt replaced by its hash (saved first); as is when saving fails."""
    text = params.get("prompt")
    if not isinstance(text, str) or len(text) <= prompts.URL_LIMIT:
        return params
    try:
        h = prompts.save(text)
    except FailureLensError:
        return params  # a long link still works; the store's folder problem is shown on the Models page
    return {**{k: v for k, v in params.items() if k != "prompt"}, PARAM: h}


def read(prompt: str, issues: list[str]) -> str:
    """The prompt of a first run: the link's prompt=, else the stored text of its ph=<hash>."""
    ref = st.query_params.get(PARAM)
    if prompt or not ref:
        return prompt
    text = prompts.load(ref)
    if text is None:
        issues.append(f"This link names a saved prompt ({ref[:24]!r}) that this machine does not have. Paste the "
                      "prompt into **Own prompt**, pick a failure case, or open one of the saved prompts listed on "
                      "the Models page.")
        return ""
    return text


def saved_prompts(limit: int = 20) -> None:
    """The prompt store: where it is, what it holds (newest first), and a button to open each prompt."""
    from ui import state

    listed = prompts.listing()
    st.caption(f"Prompts over {prompts.URL_LIMIT:,} characters are kept in {safe.plain(prompts.default_folder())} and "
               "links carry "
               "their hash instead of the text (set FAILURE_LENS_PROMPTS to use another folder). A link opens the "
               "prompt only on a machine that has it.")
    if not listed:
        st.caption("None yet.")
        return
    df = pd.DataFrame([{"hash": p.hash, "characters": p.chars, "saved": prompts.age(p.saved), "starts with": p.preview}
                       for p in listed[:limit]])
    st.dataframe(df, hide_index=True)
    pick = st.selectbox("Open a saved prompt on the Heatmap page", [""] + [p.hash for p in listed[:limit]],
                        key="ph:pick", format_func=lambda h: "choose …" if not h else
                        next(f"{p.hash[:8]} · {p.chars} chars · {p.preview[:50]}" for p in listed if p.hash == h))
    if pick and st.button("Open", key="ph:open"):
        state.put(state.CASE, "")
        state.put(state.PROMPT, prompts.load(pick) or "")
        state.put(state.GROUP, -1)
        st.switch_page("pages/heatmap.py")
