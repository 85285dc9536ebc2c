"""Cached engine calls. Models: st.cache_resource (bounded, shared, never mutated). Results: st.cache_data on
picklable records, keyed by the model fingerprint plus every input. Graphs: a byte-bounded GraphCache keyed by
content (engine.graph.cache.graph_key), so pruning sliders re-draw without recomputing.

Errors the user can fix (FailureLensError) are shown with st.error and the loader returns None.
"""
from __future__ import annotations

import dataclasses
import gc
import sys
from typing import Callable, Optional

import streamlit as st

import engine
from engine.graph.cache import GraphCache, graph_key
from engine.heatmap import RUNNER_UP_NOTE
from engine.model_spec import ModelSpec
from engine.models import ModelHandle, describe
from engine.objectives import Objective
from engine.records import Attribution, FailureLensError
from engine.tokens import EncodedPrompt, encode_prompt
from ui import long_run, safe, state, timings

MAX_MODELS = 4
GRAPH_CACHE_BYTES = 512 << 20


@st.cache_resource(max_entries=MAX_MODELS, show_spinner=False)
def _load(param: str, trust_remote_code: bool) -> ModelHandle:
    s = ModelSpec.parse(param)
    return engine.load_model(s.source, revision=s.revision, dtype=s.dtype, quantize=s.quantize, rule=s.rule,
                             trust_remote_code=trust_remote_code)


def _trusted(param: str) -> bool:
    return param in state.get(state.TRUSTED)


def model(param: str, quiet: bool = False) -> Optional[ModelHandle]:
    """The loaded model for a spec (loading it on first use); None (after an st.error) when it cannot load."""
    try:
        spec = ModelSpec.parse(param)
        with timings.phase("model from cache"):
            if quiet:
                return _load(param, _trusted(param))
            with st.spinner(f"Loading {safe.plain(spec.title)} …", show_time=True):
                return _load(param, _trusted(param))
    except FailureLensError as e:
        st.error(f"Model {safe.quoted(param)}: {safe.plain(e)}")
        return None


def active_model() -> Optional[ModelHandle]:
    """The model the pages show; None (with a message) when nothing is loaded or it fails to load."""
    param = state.active_param()
    if param is None:
        st.warning("No model is loaded. Open the **Models** page and load one (the zoo models need no download).")
        return None
    return model(param)


def unload(param: str) -> None:
    """Forget a model: drop it from the view and from the shared cache, then free its memory."""
    shown = state.active_param()
    models = [p for p in state.model_params() if p != param]
    state.put(state.MODELS, models)
    state.put(state.ACTIVE, models.index(shown) if shown in models else 0)  # unloading another keeps the view
    _load.clear(param, _trusted(param))
    from ui.sections import check_views

    check_views.forget_states()  # node states hold the model's tensors
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def summary(param: str) -> Optional[dict]:
    handle = model(param, quiet=True)
    return describe(handle) if handle is not None else None


@st.cache_data(max_entries=32, show_spinner=False)
def _encoded(model_key: str, _handle: ModelHandle, prompt: str) -> EncodedPrompt:
    """The prompt's tokens: they depend on the prompt only, so a new target or contrast reuses them."""
    return encode_prompt(_handle.tokenizer, prompt)


@st.cache_data(max_entries=128, show_spinner=False)
def _attribute(model_key: str, _handle: ModelHandle, prompt: str, objective_key: str,
               _objective: Objective, _progress=None) -> Attribution:
    enc = _encoded(model_key, _handle, prompt)
    return engine.attribute(_handle, prompt, _objective, token_ids=enc.ids, offsets=enc.offsets,
                            progress=_progress)


def _cached(handle: ModelHandle, prompt: str, objective: Objective) -> tuple[Optional[Attribution], str]:
    """(attribution, "") or (None, the message of the input error). A long prompt says first what it costs and
    shows its progress (ui.long_run)."""
    args = (handle.key, handle, prompt, objective.key(), objective)
    try:
        cost = long_run.cost(handle, len(_encoded(handle.key, handle, prompt).ids))
        if cost is not None:
            return long_run.run((handle.key, prompt, objective.key()), cost,
                                lambda progress: _attribute(*args, _progress=progress)), ""
        with st.spinner("Computing relevance …"):
            return _attribute(*args), ""
    except FailureLensError as e:
        return None, str(e)


def _try_attribution(handle: ModelHandle, prompt: str, target: str, contrast: str, mode: str, strategy: str,
                     k: int) -> tuple[Optional[Attribution], str]:
    """`_cached` for the page's boxes: empty means the model's own choice; the contrast counts only for
    logit_diff/by_ref_token."""
    try:
        objective = Objective(target or None,
                              (contrast or None) if mode == "logit_diff" and strategy == "by_ref_token" else None,
                              mode, strategy, int(k))
    except FailureLensError as e:
        return None, str(e)
    return _cached(handle, prompt, objective)


def attribution(handle: ModelHandle, prompt: str, objective: Objective) -> Optional[Attribution]:
    """Token relevance for the view (cached); None after an st.error when the input is not usable."""
    with timings.phase("attribution"):
        att, error = _cached(handle, prompt, objective)
    if error:
        st.error(safe.plain(error))
    return att


def view_attribution(handle: ModelHandle, prompt: str) -> Attribution:
    """The attribution of the current view (prompt, tokens and objective from the state); stops the page with
    a message when the prompt is empty or not usable.

    A target or contrast that cannot be used (several tokens, not in the vocabulary) does not blank the page: the
    error says so, and the page shows the prompt's own top-1 / runner-up meanwhile, with the candidates to pick from.
    """
    if not prompt.strip():
        st.warning("The prompt is empty. Pick a failure case or type a prompt.")
        st.stop()
    target, contrast = state.get(state.TARGET), state.get(state.CONTRAST)
    objective = (state.get(state.MODE), state.get(state.STRATEGY), state.get(state.K))
    with timings.phase("attribution"):
        att, error = _try_attribution(handle, prompt, target, contrast, *objective)
    if error:
        for t, c in dict.fromkeys([(target, ""), ("", "")]):
            if (t, c) != (target, contrast):
                att, _ = _try_attribution(handle, prompt, t, c, *objective)
                if att is not None:
                    break
        if att is None:
            st.error(safe.plain(error))
            st.stop()
        # the error says what is shown meanwhile: the stand-in's own "no contrast given" note would contradict it
        att = dataclasses.replace(att, warnings=[w for w in att.warnings if not w.startswith(RUNNER_UP_NOTE)])
        shown = f"{att.target.text!r}" + (f" vs {att.contrast.text!r}" if att.contrast else "")
        st.error(f"{safe.plain(error)}\n\nMeanwhile the page shows {safe.plain(shown)}: "
                 "click a candidate under *Next-token "
                 "candidates* to choose, or correct the box.")
    return att


@st.cache_resource(show_spinner=False)
def graph_cache() -> GraphCache:
    return GraphCache(GRAPH_CACHE_BYTES)


def graph_key_of(handle: ModelHandle, att: Attribution, stages: Optional[list[int]] = None, split: bool = False) -> str:
    """The graph cache key of an attribution's graph: the model fingerprint, the prompt's token ids, the objective
    with its resolved target and contrast ids (Objective.of), the rule, the stage selection and the split."""
    return graph_key(handle.key, att.token_ids, Objective.of(att).key(), handle.rule, tuple(stages or ()), split)


def graph(handle: ModelHandle, prompt: str, att: Attribution, stages: Optional[list[int]], split: bool,
          run: Callable[[str, str, Callable], object]):
    """(graph, key) for the view: from the cache, or built through `run(key, label, work)` (a long task).

    The key is `graph_key_of` (it holds the prompt's token ids). prompt "": the graph of `att.token_ids` as they
    are (an edited prompt's, engine.cases.whatif).
    """
    key = graph_key_of(handle, att, stages, split)
    cache = graph_cache()
    hit = cache.get(key)
    if hit is not None:
        return hit, key

    def work(progress):
        from engine.graph.build import build_graph

        return build_graph(handle, prompt, Objective.of(att), split=split, stages=stages, progress=progress,
                           token_ids=None if prompt else list(att.token_ids))  # no text: an edited prompt's ids

    with timings.phase("graph"):
        g = run(key, f"Building the attribution graph ({len(att.token_ids)} tokens)", work)
    if g is not None:
        cache.put(key, g)
    return g, key
