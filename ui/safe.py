"""Untrusted text shown as plain text in Streamlit.

st.caption, st.info / warning / error / success, st.markdown, st.toast, widget labels, `help=` tooltips, radio and
pills options all render Markdown. A model name from the URL such as `![x](http://127.0.0.1:8624/a.png)` would
make every viewer's browser fetch that address; a benchmark label could draw links or headings. Every value that
comes from a URL, a file, a model, a tokenizer or an error message that quotes them goes through `plain` before
it is put into such a string (tests/test_ui_markdown_safety.py scans pages/ and ui/ for interpolations without it).
"""
from __future__ import annotations

from typing import Any

from engine.present.text import markdown_plain


def plain(value: Any) -> str:
    """Markdown source that shows `value` exactly as text (hidden characters as visible escapes)."""
    return markdown_plain(value)


def quoted(value: Any) -> str:
    """`plain(repr(value))`: a token or name in quotes, with its hidden characters escaped."""
    return markdown_plain(repr(value))
