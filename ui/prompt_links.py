"""Short links: a prompt longer than engine.runs.prompts.URL_LIMIT characters travels as ph=<hash>; the text
waits in the local prompt store (engine.runs.prompts). Plumbing for ui.state (the listing on the Models page is
ui.sections.saved_prompts)."""
from __future__ import annotations

import streamlit as st

from engine.records import FailureLensError
from engine.runs import prompts

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
