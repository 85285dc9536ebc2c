"""Renderers of engine results into Streamlit (token heatmap, result header, unknown words)."""
from __future__ import annotations

from typing import Any, Optional

import streamlit as st

from engine.objectives import Objective
from engine.present import render
from engine.records import Attribution
from ui import layout, safe, state

CONSERVATION_HELP = ("Conservation = sum of token relevance ÷ the explained logit difference. Near 1: the heatmap "
                     "accounts for the whole difference; far from 1: biases or numerics absorbed part of it.")
MEMORY_PATHS = {"kept": "Memory path: kept activations.",
                "recompute": "Memory path: per-layer recompute (each layer re-run during the backward: the same "
                             "numbers in far less memory, somewhat slower)."}


def precision_help() -> str:
    from engine.models import bf16_is_fast

    cpu = ("this CPU has bfloat16 units: bfloat16 halves the memory and runs faster" if bf16_is_fast() else
           "this CPU has no bfloat16 units: bfloat16 halves the memory but runs slower than float32")
    return ("auto: float32 on CPU, bfloat16 on a GPU for 16-bit checkpoints. bfloat16 was checked against float32 "
            f"on the trained zoo (relevance correlation 0.995 or more, Δℓ within 0.3); {cpu}.")


FOUR_BIT_HELP = ("4-bit (NF4) needs bitsandbytes. On a GPU it cuts the weights' memory about 4x. On a CPU it saves "
                 "no memory (measured: 2.9-3.6 GB resident after loading a 0.6B model, 2.4 GB in float32) and loads "
                 "about 7x slower: leave it off there; long prompts on a CPU run with per-layer recompute instead.")


def shown(att: Attribution) -> list[bool]:
    return render.shown_mask(len(att.tokens), att.special_mask, state.get(state.HIDE_FIRST),
                             state.get(state.HIDE_SPECIAL))


def colour_values(att: Attribution, mask: list[bool]) -> list[float]:
    return render.normalise(att.relevance, mask, state.get(state.NORM))


def md(text: str) -> str:
    """Untrusted text (prompt words, tokens) made inert inside Streamlit markdown: `ui.safe.plain` under the
    name this module's callers use."""
    return safe.plain(text)


def shipped_logit_diff(att: Attribution, case: Any, zoo_name: Optional[str], prompt: str) -> Optional[float]:
    """The Δℓ stored with a zoo case, only while the view still shows that case's own model, prompt, target and
    contrast (after a new contrast it would be a stale number)."""
    if case is None or case.model != zoo_name or case.prompt != prompt or att.contrast is None:
        return None
    same = (att.target.token_id, att.contrast.token_id) == (case.target_id, case.contrast_id)
    return case.logit_diff if same else None


def unknown_words(tokenizer: Any, prompt: str, model_label: str) -> None:
    """Before the heatmap: which words of the prompt the model cannot read (shown as its unknown token)."""
    from engine.tokens import unknown_words as find
    from engine.tokens import vocabulary

    got = find(tokenizer, prompt)
    if not got.count:
        return
    n = len(got.words) or got.count
    which = f": {', '.join(md(w) for w in got.words)}" if got.words else ""
    st.warning(f"{n:d} word{'s are' if n != 1 else ' is'} unknown to {md(model_label)} "  # md-safe: which uses md
               "and shown as "
               f"{md(got.unk_token)}{which}. They carry no meaning for the model; use words from its vocabulary.",
               icon=":material/spellcheck:")
    vocab = vocabulary(tokenizer)
    if len(vocab) <= 5000:
        with st.expander(f"The vocabulary of {md(model_label)} ({len(vocab)} tokens)"):
            st.code(" ".join(vocab), language=None, wrap_lines=True)


def header(att: Attribution, expected: Optional[float] = None) -> None:
    """Target, contrast, Δℓ and conservation in one row; `expected`: the Δℓ stored with the zoo case."""
    cols = st.columns(4)
    cols[0].metric("Target (red)", repr(att.target.text), help=f"token id {att.target.token_id:d}")
    if att.contrast is not None:
        cols[1].metric("Contrast (blue)", repr(att.contrast.text), help=f"token id {att.contrast.token_id:d}")
        delta = None if expected is None else f"zoo case: {expected:+.2f}"
        cols[2].metric("Δℓ = ℓ(target) − ℓ(contrast)", f"{att.logit_diff:+.3f}", delta=delta, delta_color="off",
                       delta_arrow="off", help="Positive: the model prefers the target, i.e. it makes the mistake.")
    else:
        cols[1].metric("Objective", att.mode if att.strategy is None else f"{att.mode}/{att.strategy}")
        cols[2].metric("Objective value", f"{att.objective:+.3f}")
    cols[3].metric("Conservation", f"{att.conservation:.2f}", help=CONSERVATION_HELP)
    if not state.get(state.PRESENT):  # a room reads it in the summary; the metric's help keeps it
        st.caption(CONSERVATION_HELP + " " + MEMORY_PATHS.get(att.path, ""))  # md-safe: constants
    for w in att.warnings:
        st.info(safe.plain(w))


def heatmap(att: Attribution, mask: list[bool], values: list[float]) -> None:
    """The coloured tokens with their legend (all text escaped by engine.present.render)."""
    contrast = att.contrast.text if att.contrast else None
    st.html(render.legend_html(att.target.text, contrast, state.get(state.NORM)))
    st.html(render.heatmap_fragment(att.tokens, values, att.relevance, mask, font_scale=layout.scale()))


def compare(att: Attribution, prompt: str) -> None:
    """The same prompt, target and contrast (by token text) on every other loaded model, one heatmap each."""
    from engine.model_spec import ModelSpec
    from ui import loaders

    others = [p for p in state.model_params() if p != state.active_param()]
    if not others:
        return
    st.subheader("The other loaded models")
    st.caption("Same prompt; target and contrast matched by their text. Colour scale per model.")
    contrast = att.contrast.text if att.contrast else ""
    for param in others:
        st.markdown(f"**{safe.plain(ModelSpec.parse(param).title)}**")
        handle = loaders.model(param)
        other = handle and loaders.attribution(handle, prompt, Objective(att.target.text, contrast or None, att.mode,
                                                                         att.strategy, att.k))
        if other:
            mask = shown(other)
            what = (f"Δℓ {other.logit_diff:+.3f}" if other.logit_diff is not None
                    else f"objective {other.objective:+.3f}")
            st.caption(f"{safe.plain(what)} · conservation {other.conservation:.2f}")
            st.html(render.heatmap_fragment(other.tokens, colour_values(other, mask), other.relevance, mask,
                                            font_scale=layout.scale()))
