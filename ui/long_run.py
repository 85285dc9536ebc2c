"""A long heatmap says what it costs before it starts and shows per-layer progress while it runs.

The estimate is engine.cost's: the memory guard's path and the model's shape, at the speed measured once per model
by two timed forwards (cached). The attribution runs in a worker thread so that the page can draw its progress:
the cached attribution itself must draw nothing (st.cache_data would replay the drawing on every later hit).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Optional, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from engine.cost import Cost, Rate, calibrate, estimate_seconds, observed
from engine.models import ModelHandle

T = TypeVar("T")
LONG_TOKENS = 1000  # longer prompts always say what they cost
LONG_SECONDS = 3.0  # so does any heatmap estimated to take longer
POLL = 0.25  # seconds between progress updates
_RAN: OrderedDict = OrderedDict()  # attribution keys computed in this process (later calls are cache hits)
_RAN_MAX = 256
_RAN_LOCK = threading.Lock()  # sessions share _RAN
_SEEN: dict[str, Rate] = {}  # model key -> the speed its last long heatmap showed


@st.cache_resource(max_entries=8, show_spinner=False)
def _rate(model_key: str, _handle: ModelHandle) -> Rate:
    return calibrate(_handle)


def cost(handle: ModelHandle, tokens: int) -> Optional[Cost]:
    """The estimate when it is worth saying (over LONG_TOKENS tokens or LONG_SECONDS), else None. The model's
    speed is measured (once per model) only for prompts that the stored rate does not call short."""
    if tokens > handle.context_length:
        return None  # the attribution refuses it at once, saying why
    rough = estimate_seconds(handle, tokens)
    if tokens <= LONG_TOKENS and rough.seconds <= LONG_SECONDS / 3:
        return None
    with st.spinner("Measuring this model's speed for the estimate …"):
        c = estimate_seconds(handle, tokens, _SEEN.get(handle.key) or _rate(handle.key, handle))
    return c if tokens > LONG_TOKENS or c.seconds > LONG_SECONDS else None


def _remember(key: tuple) -> None:
    with _RAN_LOCK:
        _RAN[key] = None
        _RAN.move_to_end(key)
        while len(_RAN) > _RAN_MAX:
            _RAN.popitem(last=False)


def _fraction(phase: str, done: int, total: int) -> float:
    """Share of the run behind us: the forward is about a third of it, the backward the rest."""
    share = min(done / total, 1.0) if total else 0.0
    return {"forward": share / 3, "backward": 1 / 3 + 2 * share / 3}.get(phase, 0.0)


def run(key: tuple, c: Cost, compute: Callable[[Optional[Callable[[str, int, int], None]]], T]) -> T:
    """`compute(progress)` with the estimate shown first and its progress per layer; `key` (the model key first)
    names the result so that a later call (a cache hit) runs plainly. Errors of the computation are raised here;
    the speed it showed serves the model's next estimate."""
    if key in _RAN:
        with st.spinner("Computing relevance …"):
            return compute(None)
    box = st.empty()
    with box.container():
        st.info(c.sentence(), icon=":material/hourglass_top:")  # md-safe: numbers and constant words
        bar = st.progress(0.0, text="starting")
    seen = ["starting", 0, 1]
    out: dict = {}

    def progress(phase: str, done: int, total: int) -> None:  # any thread: only records
        seen[:] = [phase, done, total]

    def work() -> None:
        try:
            out["value"] = compute(progress)
            _remember(key)
        except BaseException as e:  # raised again in the script thread
            out["error"] = e

    t0 = time.perf_counter()
    worker = threading.Thread(target=work, name="failure-lens-heatmap", daemon=True)
    add_script_run_ctx(worker, get_script_run_ctx())
    worker.start()
    while worker.is_alive():
        worker.join(POLL)
        phase, done, total = seen
        where = f"{phase}: layer {done} of {total}" if total > 1 else phase
        bar.progress(_fraction(phase, done, total),
                     text=f"{where} · {time.perf_counter() - t0:.0f} s of about {c.seconds:.0f} s")
    box.empty()
    if "error" in out:
        raise out["error"]
    took = time.perf_counter() - t0
    _SEEN[key[0]] = observed(c, took)
    st.caption(f"{c.sentence()} It took {took:.1f} s.")  # md-safe: numbers, constant words
    return out["value"]
