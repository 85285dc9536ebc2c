"""Pure renderers: heatmap HTML / LaTeX / CSV, the pyvis graph page, chart export. Untrusted text stays text."""
from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from graph_fixtures import small_graph

from engine.graph.prune import prune
from engine.graph.types import PruneSettings
from engine.present import render
from engine.present.text import csv_cell

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
TOKENS = ["<s>", SCRIPT, " a", IMG, "\n", "=SUM(A1)", 'say "hi", ok']
REL = [0.5, -0.25, 0.1, 0.0, 0.2, -0.5, 0.05]


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [k for k, _ in attrs]


def tags(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


def heat(**kw):
    shown = [True] * len(TOKENS)
    values = render.normalise(REL, shown)
    return render.heatmap_html(TOKENS, values, REL, shown, title=SCRIPT, target=IMG, contrast=SCRIPT, norm="max",
                               notes=[f"Prompt: {SCRIPT}{IMG}"], **kw)


def test_heatmap_html_shows_payloads_as_text():
    html = heat()
    p = tags(html)
    assert set(p.tags) <= {"html", "head", "meta", "title", "body", "h2", "p", "div", "span", "br"}
    assert not [a for a in p.attrs if a.startswith("on")]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;" in html
    assert "default-src 'none'" in html  # the page can load and run nothing even if opened from disk


def test_heatmap_fragment_escapes_tooltips_and_shows_controls():
    shown = [True] * len(TOKENS)
    frag = render.heatmap_fragment(TOKENS, render.normalise(REL, shown), REL, shown)
    assert "<script" not in frag and "<img" not in frag
    assert "\\n</span><br>" in frag  # a newline token is visible and breaks the line
    assert frag.count("<span") == len(TOKENS)
    hidden = render.heatmap_fragment(TOKENS, [0.0] * 7, REL, [False] + [True] * 6)
    assert hidden.count("<span") == len(TOKENS) - 1


def test_normalise_modes():
    r, on = [2.0, -1.0, 0.5, -4.0], [True, True, True, False]
    assert render.normalise(r, on, "max") == [1.0, -0.5, 0.25, 0.0]
    assert render.normalise(r, on, "sign") == [1.0, -1.0, 0.25, 0.0]
    assert render.normalise(r, on, "none") == [1.0, -1.0, 0.5, 0.0]
    assert render.normalise([0.0, 0.0], [True, True], "max") == [0.0, 0.0]
    with pytest.raises(ValueError):
        render.normalise(r, on, "log")
    assert render.colour(1.0) == render.RED and render.colour(-1.0) == render.BLUE and render.colour(0) == (255,) * 3
    assert render.shown_mask(3, [True, False, True], hide_first=False, hide_special=True) == [False, True, False]
    assert render.shown_mask(3, [], hide_first=True, hide_special=True) == [False, True, True]


def test_latex_escape_every_special():
    assert render.latex_escape("a_b%c$d&e#f{g}h~i^j\\k") == (
        r"a\_b\%c\$d\&e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k")
    assert render.latex_escape(" <x> |\"") == r"\ \textless{}x\textgreater{}\ \textbar{}\textquotedbl{}"
    assert render.latex_escape("\n\t\x07") == r"\textbackslash{}n\textbackslash{}t\textbackslash{}x07"


def test_heatmap_latex_is_one_box_per_token_and_safe():
    shown = [True] * len(TOKENS)
    tex = render.heatmap_latex(TOKENS, render.normalise(REL, shown), shown,
                               title="bad\n\\input{/etc/passwd}\r\\end{document}")
    assert tex.count("\\colorbox[RGB]") == len(TOKENS)
    for line in tex.splitlines():  # untrusted text never starts a line of code
        assert line.startswith(("%", "{", "}", "\\colorbox[RGB]"))
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert "\\input" not in body and "\\end{document}" not in body
    # no unescaped special character inside any box
    for arg in re.findall(r"\{\\strut (.*)\}\\allowbreak%", tex):
        assert not re.search(r"(?<!\\)[#$%&_^~{}]", arg.replace("{}", "")), arg
    assert "{255,255,255}" in tex  # relevance 0 -> white


def test_heatmap_csv_round_trips_and_guards_formulas():
    shown = [True] * len(TOKENS)
    values = render.normalise(REL, shown)
    text = render.heatmap_csv(TOKENS, list(range(7)), REL, values, shown, ["query"] * 7, [True] + [False] * 6)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["token"] for r in rows] == [*TOKENS[:5], "'=SUM(A1)", TOKENS[6]]
    assert [float(r["relevance"]) for r in rows] == REL
    assert rows[0]["special"] == "1" and rows[1]["special"] == "0"
    assert csv_cell("-1") == "'-1" and csv_cell("a=b") == "a=b"
    df = pd.DataFrame({"token": ["@cmd", "ok"], "n": [1, 2]})
    assert render.frame_csv(df).splitlines() == ["token,n", "'@cmd,1", "ok,2"]


def payload_graph():
    g = small_graph()
    return type(g)(**{**g.__dict__, "tokens": ["<s>", SCRIPT, IMG, "</script><script>x()</script>"]})


def test_graph_html_embeds_tokens_as_inert_json():
    g = payload_graph()
    pruned = prune(g, PruneSettings(top_p=1.0))
    page = render.graph_html(g, pruned, title=SCRIPT)
    data = page.split("const D = ", 1)[1].split(";\nconst net", 1)[0]
    assert "<" not in data and ">" not in data  # nothing in the data can close the script element
    parsed = json.loads(data)
    labels = {n["label"] for n in parsed["nodes"]}
    assert render.visible(SCRIPT)[:14] in labels
    assert any(SCRIPT in n.get("title", "") for n in parsed["nodes"])  # tooltips: vis-network shows them as text
    lib = render._vis_js()
    assert "</script" not in lib.lower()  # the inlined library cannot end its own element early
    rest = page.replace(lib, "")
    assert rest.count("<script>") == 2 and "&lt;script&gt;" in rest.split("<body>")[1].split("<script>")[0]
    nodes = [n for n in parsed["nodes"] if not n["id"].startswith("row:")]
    assert parsed["options"]["nodes"]["physics"] is False and parsed["options"]["nodes"]["fixed"] is True
    assert all(n.get("physics", False) is False and "x" in n and "y" in n for n in nodes)  # fixed positions
    assert len(nodes) == int(pruned.node_mask.sum())
    colours = {e["color"] for e in parsed["edges"]}
    assert colours <= {"#d62728", "#1f77b4"} and len(parsed["edges"]) == sum(int(m.sum()) for m in pruned.edge_masks)


def test_graph_html_offline_and_layout():
    g = small_graph()
    page = render.graph_html(g, prune(g, PruneSettings()))
    assert "http://" not in page.split("<script>")[0] and "cdn" not in page.lower().split("<script>")[0]
    parsed = json.loads(page.split("const D = ", 1)[1].split(";\nconst net", 1)[0])
    ys = {n["id"]: n["y"] for n in parsed["nodes"]}
    assert ys["0:0"] > ys["1:0"] > ys["2:3"]  # embedding at the bottom, later layers above
    xs = {n["id"]: n["x"] for n in parsed["nodes"]}
    assert xs["0:0"] < xs["0:2"]  # tokens left to right


def test_script_json():
    assert render.script_json({"a": "</script><!--&\u2028"}) == '{"a": "\\u003c/script\\u003e\\u003c!--\\u0026\\u2028"}'


def test_charts_export_escapes_token_text():
    from engine.present import charts

    shown = [True] * len(TOKENS)
    values = render.normalise(REL, shown)
    svg = charts.to_svg(charts.token_chart(TOKENS, values, REL, shown))
    assert "<script" not in svg and "<img" not in svg and "&lt;script&gt;" in svg
    png = charts.to_png(charts.segment_chart({"instruction": 0.4, "query": -0.2, "answer": 0.1, "special": 0.0}))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    g = payload_graph()
    chart = charts.graph_chart(g, prune(g, PruneSettings()))
    spec = chart.to_dict()
    assert "tokenLabels" in json.dumps(spec)
    layer = charts.layer_chart(TOKENS, np.ones((3, len(TOKENS))).tolist(), shown)
    assert layer.to_dict()["encoding"]["y"]["sort"] == ["layer 1", "layer 0", "embedding"]
