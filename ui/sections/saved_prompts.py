"""The Models page's list of saved long prompts (ui.prompt_links stores them; links carry their hash)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.runs import prompts
from ui import safe, state


def saved_prompts(limit: int = 20) -> None:
    """The prompt store: where it is, what it holds (newest first), and a button to open each prompt."""
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
