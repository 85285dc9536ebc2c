"""Untrusted text (prompts, tokens, file contents, model names, URL values) made inert, one function per output.

- `visible`: characters that draw nothing or reorder what follows (controls, zero-width, bidi overrides, soft
  hyphens, line separators) become visible escapes (\\n, \\u200b, ...), so a token never shows as an empty box
  and a bidi override cannot flip the text after it. Every renderer (HTML, LaTeX, charts, Markdown) uses it.
- `markdown_plain`: text that Markdown (Streamlit's st.caption / st.error / labels / help) shows exactly as
  typed: no image fetched, no link, no heading, no colour directive or formula.
- `csv_cell` / `csv_text` / `frame_csv`: CSV that spreadsheets open as data, never as formulas.
"""
from __future__ import annotations

import io
import re
import unicodedata
from typing import Any, Iterable, Sequence

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_INVISIBLE_EXTRA = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}  # fillers that look like nothing


def _hidden(ch: str) -> bool:
    """True for a character that draws nothing or changes the layout around it."""
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ch in _INVISIBLE_EXTRA


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def visible(text: str, empty: str = "∅") -> str:
    """`text` with hidden characters as escapes (\\n, \\t, \\x07, \\u200b, \\u202e, \\ud800); `empty` for ""."""
    out = "".join(_escape(ch) if _hidden(ch) else ch for ch in text)
    return out or empty


# ---------------------------------------------------------------- Markdown
_MD_INLINE = re.compile(r"([\\`*_~\[\]<&|$@]|:(?=//|[\w+-]+:|material/))")  # emphasis, code, links, images,
# HTML, entities, tables, formulas, Streamlit's :colour[...] directives, autolinks (http://, a@b), :emoji: codes
_MD_BLOCK_START = re.compile(r"^(\s*\d*)([#>+=.)-])")  # headings, quotes, lists ("-", "1."), setext lines
_MD_AUTOLINK = re.compile(r"(?<=[A-Za-z])(?=\\?://)|(?<=www)(?=\\?\.)|(?<=@)", re.I)
_JOINER = "\u2060"  # WORD JOINER: invisible; GFM's bare-URL linking (run on the parsed text, after escapes) stops at it


def markdown_plain(value: Any) -> str:
    """Markdown source that renders as the literal text of `value`, on one line, hidden characters escaped.

    Backslash-escapes (CommonMark allows it for every ASCII punctuation character) the characters that open
    inline constructs anywhere: images, links, autolinks, HTML, entities, emphasis, code, tables, `$` formulas,
    Streamlit's `:colour[...]` directives, `:emoji:` and `:material/icon:` codes (a colon only there). Block markers
    (#, >, -, +, =, "1.") only act at the start of a line:
    they are escaped there, and newlines become a visible `\n`, so untrusted text never starts a block.
    GFM also links bare URLs and e-mail addresses in the text left after parsing, where escapes no longer
    count; an invisible word joiner after the scheme, `www` and `@` stops that. Other punctuation stays as it
    is, so messages keep reading normally.
    """
    text = _MD_INLINE.sub(r"\\\1", visible(str(value), empty=""))
    text = _MD_AUTOLINK.sub(_JOINER, text)
    return _MD_BLOCK_START.sub(r"\1\\\2", text, count=1)


# ---------------------------------------------------------------- CSV
_FORMULA_START = set("=+-@") | {"\uff1d", "\uff0b", "\uff0d", "\uff20"}  # and their full-width forms


def csv_cell(text: str) -> str:
    """Spreadsheet formula injection guard (OWASP): a leading apostrophe when the text, after any leading
    whitespace or control characters, starts with = + - @ (spreadsheets skip those characters), or when it
    starts with a tab or carriage return itself."""
    i = 0
    while i < len(text) and (text[i].isspace() or _hidden(text[i])):
        i += 1
    if text[:1] in ("\t", "\r") or text[i:i + 1] in _FORMULA_START:
        return "'" + text
    return text


def _field(value: Any) -> str:
    try:
        if value is None or value != value:  # None, NaN, pandas NA
            return ""
    except (TypeError, ValueError):  # pd.NA refuses a truth value
        return ""
    if isinstance(value, str):
        text = csv_cell(value)
        if any(ch in text for ch in ',"\r\n'):  # quoted, so a CR or LF stays inside its cell
            return '"' + text.replace('"', '""') + '"'
        return text
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy scalar
    return repr(value) if isinstance(value, float) else str(value)


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """CSV (one line per row, "\\n" between rows): every text cell guarded by `csv_cell`; a cell holding a
    comma, quote, CR or LF is quoted (Python's csv module quotes a lone CR only when it is in the line
    terminator, which let `\\r=1+1` start a new spreadsheet row)."""
    buf = io.StringIO()
    for row in rows:
        buf.write(",".join(_field(v) for v in row) + "\n")
    return buf.getvalue()


def frame_csv(df: Any) -> str:
    """CSV of a pandas DataFrame (header, then one line per row) through `csv_text`."""
    return csv_text([list(map(str, df.columns)), *df.itertuples(index=False, name=None)])
