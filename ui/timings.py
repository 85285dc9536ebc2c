"""Where a page run's time goes: named phases with their durations, shown on demand in a small "Timings" fold.

app.py starts a record per script run (`begin`); cached loaders and page sections wrap their work in
`phase(name)`; the fold at the end of the page lists the phases (a phase that ran twice is summed) and the
whole run. `python -m bench dashboard` reads the same record (`last()`) to print the phases per interaction.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator

import streamlit as st

KEY = "_timings"  # session_state: the last finished run's phases (read by the bench and the fold)


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float


def begin() -> None:
    st.session_state[KEY + ":open"] = (time.perf_counter(), [])


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as `name` within the current run (nothing is recorded outside a run that began)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        run = st.session_state.get(KEY + ":open")
        if run is not None:
            run[1].append(Phase(name, time.perf_counter() - t0))


def finish() -> list[Phase]:
    """Close the run: its phases (summed by name, in first-seen order) plus 'whole page run'."""
    run = st.session_state.pop(KEY + ":open", None)
    if run is None:
        return []
    start, phases = run
    totals: dict[str, float] = {}
    for p in phases:
        totals[p.name] = totals.get(p.name, 0.0) + p.seconds
    out = [Phase(n, s) for n, s in totals.items()] + [Phase("whole page run", time.perf_counter() - start)]
    st.session_state[KEY] = out
    return out


def last() -> list[Phase]:
    return list(st.session_state.get(KEY, []))


def fold(phases: list[Phase]) -> None:
    """The timings of this run, collapsed at the end of the page."""
    if not phases:
        return
    with st.expander("Timings of this view", expanded=False):
        st.caption(" · ".join(f"{p.name} {p.seconds:.2f} s" for p in phases))  # md-safe: constant names, numbers
