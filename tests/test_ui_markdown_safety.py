"""Untrusted text never reaches Streamlit's Markdown unescaped (pages/ and ui/ scanned, plus rendered checks).

1. A scan of pages/ and ui/ (AST): every argument of a Markdown-rendering call (st.caption / info / warning /
   error / markdown / toast / labels / help= / radio and pills options ...) is a constant, a module constant
   (ALL_CAPS), or text built only from constants, numbers with a format spec and values passed through
   `safe.plain` / `safe.quoted`. Anything else must say why it is safe in a `# md-safe: <reason>` comment on
   its line. The scan is tested on planted violations, so it can fail.
2. `markdown_plain` is checked with an independent CommonMark renderer (markdown-it-py): the rendered HTML of
   hostile text holds no tag but the paragraph, and its text is exactly the input.
3. The issue's example `?model=![x](http://127.0.0.1:8624/a.png)` in the running app (AppTest): no element's
   Markdown renders an image or a link.
"""
from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from engine.present.text import markdown_plain, visible

ROOT = Path(__file__).resolve().parents[1]

# Streamlit calls whose first positional argument (or the named keywords) is rendered as Markdown
MESSAGE_SINKS = {"markdown", "caption", "info", "warning", "error", "success", "toast", "write", "title", "header",
                 "subheader", "status", "spinner", "expander", "popover", "exception"}
LABEL_SINKS = {"button", "download_button", "form_submit_button", "link_button", "page_link", "text_input",
               "text_area", "number_input", "selectbox", "multiselect", "radio", "toggle", "checkbox", "slider",
               "select_slider", "pills", "segmented_control", "file_uploader", "metric", "date_input", "color_picker"}
OPTION_SINKS = {"radio", "pills", "segmented_control"}  # their option labels are Markdown too
# ui functions that pass this argument on to a sink
WRAPPERS = {"number": 0, "page": 0, "run_task": 1, "controls": 0, "_ranked": 2}
NOT_SINKS = {("views", "header"), ("glossary", "title")}  # project functions that share a sink's name
TEXT_KEYWORDS = {"body", "label", "text", "help"}
# md: ui.sections.views.md = safe.plain; define: glossary
SAFE_CALLS = {"plain", "quoted", "md", "len", "int", "round", "define"}
NUMBER_SPEC = re.compile(r"[-+ ]?[#0]?\d*(?:[,_](?:\.\d+)?[dfeEgG%n]?|(?:\.\d+)?[dfeEgG%n])$")  # fails on str


def _is_safe(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.Attribute):  # state.URL_HELP, MODES.get, {"a": "A"}.get
        return node.attr.isupper() or node.attr == "get" and (_is_safe(node.value) if isinstance(node.value, ast.Name)
                                                              else isinstance(node.value, ast.Dict)
                                                              and all(map(_is_safe, node.value.values)))
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return name in SAFE_CALLS
    if isinstance(node, ast.JoinedStr):
        return all(_is_safe(v) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        spec = node.format_spec
        numeric = (isinstance(spec, ast.JoinedStr) and len(spec.values) == 1
                   and isinstance(spec.values[0], ast.Constant)
                   and NUMBER_SPEC.match(str(spec.values[0].value)) is not None)
        return numeric or (node.conversion == -1 and _is_safe(node.value))
    if isinstance(node, ast.BinOp):
        return _is_safe(node.left) and _is_safe(node.right)
    if isinstance(node, ast.IfExp):
        return _is_safe(node.body) and _is_safe(node.orelse)
    if isinstance(node, ast.Lambda):
        return _is_safe(node.body)
    return False


def _sink_args(call: ast.Call) -> list[ast.AST]:
    if not isinstance(call.func, ast.Attribute) or isinstance(call.func.value, ast.Name) and call.func.value.id in (
            "log", "logging", "logger"):
        return []
    name = call.func.attr
    if (getattr(call.func.value, "id", None), name) in NOT_SINKS:
        return []
    args: list[ast.AST] = []
    if name in WRAPPERS:
        args += call.args[WRAPPERS[name]:WRAPPERS[name] + 1]
    if name in MESSAGE_SINKS or name in LABEL_SINKS:
        args += call.args[:1] + [k.value for k in call.keywords if k.arg in TEXT_KEYWORDS]
    if name in OPTION_SINKS:
        args += [k.value for k in call.keywords if k.arg == "format_func"]
    return args


def violations(source: str, filename: str = "<planted>") -> list[str]:
    """'file:line: code' of each Markdown-rendering call argument that is not provably plain."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for arg in _sink_args(node):
                if not _is_safe(arg) and "# md-safe:" not in lines[arg.lineno - 1]:
                    out.append(f"{filename}:{arg.lineno}: {ast.unparse(arg)}")
    return out


def test_pages_and_ui_put_no_untrusted_text_into_markdown():
    files = sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "ui").rglob("*.py")) + [ROOT / "app.py"]
    found = [v for f in files for v in violations(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert not found, "untrusted text into Markdown without ui.safe.plain:\n" + "\n".join(found)


@pytest.mark.parametrize("planted", [
    'st.caption(f"Model: **{label}**")',
    'st.error(f"Model {param!r}: {e}")',
    'st.error(str(e))',
    'st.warning(issue)',
    'cols[0].markdown("**" + name + "**")',
    'st.info("{} failed".format(name))',
    'st.metric("x", 1, help=f"id {tok}")',
    'widgets.radio("Active", KEY, opts, format_func=lambda i: labels[i])',
    'st.text_input(f"Value of {field}")',
    'st.toast(f"{plain(a)} and {b}")',
])
def test_scan_finds_planted_violations(planted):
    assert violations(planted), planted


@pytest.mark.parametrize("fine", [
    'st.caption(f"Model: **{safe.plain(label)}**")',
    'st.error(safe.plain(e))',
    'st.caption(f"Δℓ {x:+.3f} · {n:,} tokens, {len(tokens)} shown")',
    'st.warning(HELP)',
    'widgets.radio("Active", KEY, opts, format_func=lambda i: safe.plain(labels[i]))',
    'st.info(note)  # md-safe: built from constants above',
    'log.info(f"{anything}")',
])
def test_scan_accepts_plain_text(fine):
    assert not violations(fine), fine


def _md() -> MarkdownIt:
    """CommonMark with GFM tables and strikethrough (GFM's bare-URL autolinks need linkify-it, not installed)."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


HOSTILE = [
    "![x](http://127.0.0.1:8624/a.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "# heading\n- item\n1. one\n> quote\n    code",
    "http://127.0.0.1:8624/a and www.example.com and a@b.co",
    "**bold** _it_ `code` ~~s~~ $x^2$ :red[red] |a|b|\n|-|-|",
    "&lt;script&gt; &#x3C; \\*not\\* \\",
    "setext\n===",
    "1. one", "12) twelve", "  - item", "+ plus", "= equal", "> quote", "www.example.com/x", "e.g. 3.14 (pi)!",
    "zero\u200bwidth \u202etxet\u202c soft\u00adhyphen \ud800",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_plain_renders_as_the_literal_text(text):
    out = _md().render(markdown_plain(text))
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", out))
    assert tags <= {"p"}, (text, out)
    shown = html.unescape(re.sub(r"</?p>", "", out)).replace("\u2060", "").strip()  # joiners stop GFM autolinks
    assert shown == visible(text, empty="").strip(), (text, shown)  # a paragraph drops leading spaces


def test_the_issue_example_renders_inert_in_the_app():
    from streamlit.testing.v1 import AppTest

    bomb = "![x](http://127.0.0.1:8624/a.png)"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = bomb
    at.run()
    assert not at.exception
    bodies = [str(getattr(e, "value", "") or "") + str(getattr(e, "label", "") or "") for e in at.main] + \
             [str(getattr(e, "value", "") or "") + str(getattr(e, "label", "") or "") for e in at.sidebar]
    assert any("127" in b for b in bodies), "the model name should be shown (escaped), not dropped"
    md = _md()
    for body in bodies:
        rendered = md.render(body)
        assert "<img" not in rendered and "<a " not in rendered, (body, rendered)
