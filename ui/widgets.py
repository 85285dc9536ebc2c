"""Widgets bound to a state key of `ui.state`: the widget shows the key's value and writes changes back.

The widget gets its own key "w:<key>", so the state survives page switches (Streamlit drops the state of
widgets that are not drawn) and code may change the value programmatically before the widget is drawn.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import streamlit as st

from ui import state


def wkey(key: str) -> str:
    return f"w:{key}"


def _copy(key: str, after: Optional[Callable[[], None]]) -> None:
    st.session_state[key] = st.session_state[wkey(key)]
    if after is not None:
        after()


def bind(key: str, value: Any = None, on_change: Optional[Callable[[], None]] = None) -> dict:
    """kwargs for a widget bound to `key`: widget key, current value, change callback."""
    st.session_state[wkey(key)] = state.get(key) if value is None else value
    return {"key": wkey(key), "on_change": _copy, "args": (key, on_change)}


def choice(key: str, options: Sequence[Any], on_change: Optional[Callable[[], None]] = None) -> dict:
    """`bind` for a widget with fixed options: a value outside them (e.g. from an old link) falls back."""
    value = state.get(key)
    if value not in options:
        value = (state.FIELDS[key].default if key in state.FIELDS and state.FIELDS[key].default in options
                 else options[0])
        state.put(key, value)
    return bind(key, on_change=on_change)


def text_input(label: str, key: str, on_change=None, **kw) -> str:
    return st.text_input(label, **bind(key, on_change=on_change), **kw)  # md-safe: caller's label


def text_area(label: str, key: str, on_change=None, **kw) -> str:
    return st.text_area(label, **bind(key, on_change=on_change), **kw)  # md-safe: caller's label


def toggle(label: str, key: str, on_change=None, **kw) -> bool:
    return st.toggle(label, **bind(key, on_change=on_change), **kw)  # md-safe: caller's label


def selectbox(label: str, key: str, options: Sequence[Any], on_change=None, **kw) -> Any:
    return st.selectbox(label, options, **choice(key, options, on_change), **kw)  # md-safe: caller's label


def radio(label: str, key: str, options: Sequence[Any], on_change=None, **kw) -> Any:
    return st.radio(label, options, **choice(key, options, on_change), **kw)  # md-safe: caller's label


def multiselect(label: str, key: str, options: Sequence[Any], on_change=None, **kw) -> list:
    state.put(key, [v for v in state.get(key) if v in options])
    return st.multiselect(label, options, **bind(key, on_change=on_change), **kw)  # md-safe: caller's label


def slider(label: str, key: str, lo: float, hi: float, step: float, on_change=None, **kw) -> float:
    value = type(lo)(min(max(state.get(key), lo), hi))
    state.put(key, value)
    return st.slider(label, lo, hi, step=step, **bind(key, on_change=on_change), **kw)  # md-safe: caller's label
