"""The model palette (one colour per model on every chart builder, never the target red / contrast blue), the
row-over-row heatmap renderers, segment-shift sentences and the robust y scales."""
from __future__ import annotations

import math

import pandas as pd

from engine.compare.align import align_rows
from engine.compare.robust import fences, outliers
from engine.compare.verdicts import FIXED, STILL_WRONG, VERDICTS
from engine.present import aligned, compare_charts, palette
from engine.present.shift import shift_sentence, shift_sentences

MODELS = ["zoo:xs", "zoo:s", "zoo:m", "zoo:l", "org/other", "/runs/mine"]


def _lightness(hex_: str) -> float:
    r, g, b = palette._rgb(hex_)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _hue_is_red_or_blue(hex_: str) -> bool:
    r, g, b = palette._rgb(hex_)
    return (r > 150 and g < 90 and b < 90) or (b > 150 and r < 90 and g < 160)


def test_each_model_has_one_colour_whatever_the_set_or_order():
    full = palette.colours(MODELS)
    assert len(set(full.values())) == len(MODELS)
    assert palette.colours(MODELS[::-1]) == full
    assert all(palette.colour(m) == full[m] for m in ("zoo:xs", "zoo:l"))  # series colours never depend on the set
    assert palette.colours(["org/other"])["org/other"] == full["org/other"]
    assert all(not _hue_is_red_or_blue(c) and c.lower() not in (palette.TARGET_RED, palette.CONTRAST_BLUE)
               for c in list(full.values()) + list(palette.CATEGORICAL) + list(palette.FAMILY))


def test_size_and_checkpoint_series_are_ordered_shades():
    from engine import zoo

    sizes = [palette.colour(f"zoo:{s}") for s in zoo.zoo_sizes()]
    assert sizes == sorted(sizes, key=_lightness, reverse=True)  # light (small) -> dark (large)
    for points in zoo.checkpoint_series().values():
        shades = [palette.colour(p) for p in points]
        assert shades == sorted(shades, key=_lightness, reverse=True) and len(set(shades)) == len(points)
        assert palette.colour(f"zoo:{points[0]}") == shades[0]
    hub = palette.ordered(["x@step1", "x@step2", "x@step3"])
    assert list(hub.values()) == palette.shades(palette.CHECKPOINT_SHADES, 3)


def _scales(spec) -> list[dict[str, str]]:
    """Every colour / fill scale with a domain in a Vega-Lite spec, as name -> colour."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for ch in ("color", "fill"):
                enc = node.get(ch)
                if isinstance(enc, dict) and isinstance(enc.get("scale"), dict) and "range" in enc["scale"] \
                        and "domain" in enc["scale"]:
                    found.append(dict(zip(enc["scale"]["domain"], enc["scale"]["range"])))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def test_same_model_same_colour_in_every_chart_builder():
    names = MODELS[:4] + ["org/other"]
    rows = [{"case_id": f"c{i}", "family": "math", "model": m, "delta_ref": 1.0 + i, "delta": -1.0 + i,
             "corrected": False, "verdict": FIXED, "notes": ""} for i, m in enumerate(names[1:])]
    table = pd.DataFrame(rows)
    ecdf = pd.DataFrame({"model": names, "value": range(5), "fraction": [0.2] * 5})
    means = pd.DataFrame([{"model": m, "segment": "query", "mean": 0.1, "sem": 0.01, "n": 3} for m in names])
    counts = pd.DataFrame([{"model": m, "verdict": v, "count": 1, "cases": 4} for m in names for v in VERDICTS])
    hist = pd.DataFrame({"model_label": names, "logit_diff": [1.0] * 5})
    al = align_rows("ab", [[(0, 1), (1, 2)]] * len(names), [[1.0, -1.0]] * len(names), [None] * len(names))
    built = [compare_charts.scaling_scatter(table, "zoo:xs"), compare_charts.ecdf_chart(ecdf),
             compare_charts.segment_bars(means), compare_charts.verdict_bars(counts),
             compare_charts.delta_histogram(hist), aligned.strip_chart(aligned.build_strip(al, names))]
    want = palette.colours(names)
    for chart in built:
        maps = [m for m in _scales(chart.to_dict()) if set(m) & set(names)]
        assert maps, chart
        for m in maps:
            assert {k: v for k, v in m.items() if k in want} == {k: want[k] for k in m if k in want}
    strip = aligned.build_strip(al, names)
    assert list(strip.colours) == [want[n] for n in names]


def test_checkpoint_series_charts_use_the_series_shades():
    from engine import zoo

    points = next(iter(zoo.checkpoint_series().values()), ["a@1", "a@2", "a@3"])
    evolution = pd.DataFrame([{"case_id": "c", "family": "math", "checkpoint": p, "order": i, "delta": 1.0,
                               "notes": ""} for i, p in enumerate(points)])
    mean = pd.DataFrame({"checkpoint": points, "order": range(len(points)), "mean": 1.0, "sem": 0.0, "n": 1})
    means = pd.DataFrame([{"checkpoint": p, "segment": "query", "mean": 0.1, "sem": 0.0, "n": 1} for p in points])
    want = palette.ordered(points)
    for chart in (compare_charts.evolution_chart(evolution, mean),
                  compare_charts.segment_bars(means, "checkpoint", series=True)):
        assert any(m == want for m in _scales(chart.to_dict()))


def test_scatter_threshold_region_is_only_an_overlay():
    table = pd.DataFrame([{"case_id": "c", "family": "f", "model": "zoo:l", "delta_ref": 2.0, "delta": 0.5,
                           "corrected": False, "verdict": STILL_WRONG, "notes": ""}])
    plain = compare_charts.scaling_scatter(table, "zoo:xs").to_dict()
    overlay = compare_charts.scaling_scatter(table, "zoo:xs", (1.0, -1.0)).to_dict()
    assert len(overlay["layer"]) == len(plain["layer"]) + 1
    assert plain["layer"][-1]["encoding"]["shape"]["field"] == "verdict"


def test_robust_fences_and_scales():
    values = [0.1, 0.2, 0.3, 0.25, 0.15, 40.0]
    lo, hi = fences(values)
    assert (lo, hi) == (0.1, 0.3)
    df = pd.DataFrame({"case_id": list("abcdef"), "delta": values})
    assert outliers(df, "delta", (lo, hi), ["case_id"])["case_id"].tolist() == ["f"]
    assert math.isnan(fences([None, math.nan])[0])
    evolution = pd.DataFrame({"case_id": list("abcdef"), "family": "f", "checkpoint": "p", "order": 0,
                              "delta": values, "notes": ""})
    mean = pd.DataFrame({"checkpoint": ["p"], "order": [0], "mean": [7.0], "sem": [0.0], "n": [6]})
    clip = compare_charts.evolution_chart(evolution, mean, y_scale="clip").to_dict()
    dom = clip["layer"][1]["encoding"]["y"]["scale"]["domain"]
    assert dom[0] < 0 < 0.3 < dom[1] < 40 and clip["layer"][1]["mark"]["clip"] is True
    sym = compare_charts.evolution_chart(evolution, mean, y_scale="symlog").to_dict()
    assert sym["layer"][1]["encoding"]["y"]["scale"]["type"] == "symlog"


def test_scaling_scatter_robust_scales_keep_one_case_from_flattening_it():
    table = pd.DataFrame({"case_id": list("abcdef"), "family": "f", "model": "m", "delta_ref": [1.0, 2, 3, 2.5, 1.5, 2],
                          "delta": [0.5, 1.0, -0.5, 0.2, 0.1, 90.0], "verdict": "fixed"})
    linear = compare_charts.scaling_scatter(table, "ref").to_dict()
    assert linear["layer"][-1]["encoding"]["x"]["scale"]["domain"][1] > 90  # the outlier sets the range
    clip = compare_charts.scaling_scatter(table, "ref", y_scale="clip").to_dict()
    x = clip["layer"][-1]["encoding"]["x"]
    assert x["scale"]["domain"][1] < 10 and "(clipped)" in x["title"]
    shown = pd.DataFrame(next(d for d in clip["datasets"].values() if len(d) and "case_id" in d[0]))
    assert sorted(shown["case_id"]) == list("abcde")  # the far case is left out of the picture ...
    assert compare_charts.scatter_outliers(table)["case_id"].tolist() == ["f"]  # ... and listed
    sym = compare_charts.scaling_scatter(table, "ref", y_scale="symlog").to_dict()
    assert sym["layer"][-1]["encoding"]["y"]["scale"]["type"] == "symlog"
    assert len(pd.DataFrame(next(d for d in sym["datasets"].values() if len(d) and "case_id" in d[0]))) == 6


def test_strip_renderers_escape_untrusted_text():
    text = "<b>x</b> & {y}"
    al = align_rows(text, [[(0, 0), (0, 8), (9, 14)]] * 2, [[1.0, 2.0, -1.0], [0.0, 1.0, 1.0]],
                    [["<bos>", "<b>x</b>", "& {y}"]] * 2)
    strip = aligned.build_strip(al, ["<i>m</i>", "zoo:l"], diff=(0, 1), title="=cmd|' /C calc'!A0",
                                notes=["<script>alert(1)</script>"])
    page = aligned.strip_html(strip, "<t>", "c", "row")
    assert "<b>x</b>" not in page and "<script>" not in page and "&lt;i&gt;m&lt;/i&gt;" in page
    assert page.count("<tr>") == 3 and "<i>m</i> − zoo:l".replace("<", "&lt;").replace(">", "&gt;") in page
    tex = aligned.strip_latex(strip)
    assert r"\textless{}b\textgreater{}x" in tex and r"\{y\}" in tex and "\\begin{tabular}" in tex
    formula = aligned.build_strip(align_rows("=A1+1", [[(0, 5)]], [[1.0]], [None]), ["m"])
    assert "'=A1+1" in aligned.strip_csv(formula).splitlines()[1]  # spreadsheet formulas are guarded
    assert all(abs(v) <= 1 for row in strip.values for v in row)
    assert aligned.strip_frame(strip)["row"].tolist().count("zoo:l") == 3


def test_shift_sentences():
    ref = {"instruction": 0.1, "query": 0.9, "answer": 0.0}
    moved = shift_sentence("zoo:l", "zoo:xs", ref, {"instruction": 0.7, "query": 0.1, "answer": 0.0})
    assert moved.startswith("zoo:l moves 0.6 of relevance from the query to the instruction, compared with zoo:xs")
    assert "the query -0.80" in moved and "the instruction +0.60" in moved
    same = shift_sentence("zoo:l", "zoo:xs", ref, {"instruction": 0.12, "query": 0.85, "answer": 0.0})
    assert "as zoo:xs does" in same
    more = shift_sentence("zoo:l", "zoo:xs", ref, {"instruction": 0.1, "query": 1.4, "answer": 0.0})
    assert "puts 0.5 more relevance on the query" in more
    lopsided = shift_sentence("zoo:m", "zoo:xs", ref, {"instruction": 0.26, "query": -2.09, "answer": 0.0})
    assert lopsided.startswith("zoo:m puts 2.99 less relevance on the query") and "the instruction +0.16" in lopsided
    assert len(shift_sentences("a", {"a": ref, "b": ref, "c": ref})) == 2 and shift_sentences("z", {"a": ref}) == []


def test_headline_cards_say_what_the_rows_say():
    import torch

    from engine.compare import verdicts as V
    from engine.compare.deltas import CaseSpec
    from engine.present.headline import verdict_cards
    from engine.records import TokenChoice

    class Tok:
        def decode(self, ids, **_):
            return ["<b>", "2", "3"][ids[0]]

    case = CaseSpec("c", "p", "2", "3")
    t, c = TokenChoice(1, "2"), TokenChoice(2, "3")
    row = lambda m, top: V.from_logits(torch.eye(3)[top] * 5, Tok(), case, m, t, c)  # noqa: E731
    one = verdict_cards([row("zoo:xs", 0), row("<i>x</i>", 2)], ["zoo:xs", "<i>x</i>"], single=True)
    assert 'data-value="different wrong answer"' in one and 'data-value="fixed"' in one
    assert "<i>x</i>" not in one and "says &#x27;&lt;b&gt;&#x27;" in one
    assert palette.colour("zoo:xs") in one
    many = verdict_cards([row("zoo:l", 2), row("zoo:l", 1), row("zoo:l", 0)], ["zoo:l"], single=False)
    assert 'data-value="fixed 1 of 3"' in many and "still wrong 1 · different 1" in many


def test_category_shares_in_words_with_fixed_colours_free_of_red_and_blue():
    from engine.cases.categories import shares
    from engine.present import glossary

    rows = [{"benchmark": "math", "model_label": "s", "outcome": "NC-IA+AG"},
            {"benchmark": "math", "model_label": "s", "outcome": "M-IA"},
            {"benchmark": "ifeval", "model_label": "s", "outcome": None}]
    spec = compare_charts.share_chart(shares(rows), "outcome").to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"][:3] == [glossary.name(c) for c in ("M-IA", "NC-IA+M-AG", "NC-IA+AG")]
    assert glossary.name("unlabelled") in scale["domain"]  # a value outside the codes still gets its own colour
    from engine.present.render import BLUE, RED

    assert not {"#%02x%02x%02x" % RED, "#%02x%02x%02x" % BLUE} & {c.lower() for c in scale["range"]}
    shown = set(pd.DataFrame(next(iter(spec["datasets"].values())))["category"])
    assert shown == {"explained by the heatmap", "not explained yet", glossary.name("unlabelled")}
    # the same category keeps its colour whichever others are present
    alone = compare_charts.share_chart(shares(rows[:1]), "outcome").to_dict()["encoding"]["color"]["scale"]
    i, j = scale["domain"].index("not explained yet"), alone["domain"].index("not explained yet")
    assert scale["range"][i] == alone["range"][j]
