"""Long-prompt presentation: group heatmap (escaped, exact sums), minimap and the charts that bin above a limit."""
import json

import numpy as np

from engine.present import charts
from engine.present.group_views import group_heatmap_fragment, group_view, minimap_chart, minimap_frame, ranked_rows
from engine.token_groups import group_tokens


def test_group_view_sums_shown_tokens_and_escapes_text():
    g = group_tokens("windows", ["<b>x</b> ", "a ", "b ", "c ", "d"], window=2)
    view = group_view(g, [1.0, 2.0, -4.0, 0.5, 8.0], [False, True, True, True, True])
    assert view.relevance == [2.0, -3.5, 8.0] and view.shown == [True, True, True]
    assert view.values == [0.25, -0.4375, 1.0]
    frag = group_heatmap_fragment(view, 0, 3, selected=1)
    assert "<b>" not in frag and "&lt;b&gt;" in frag and frag.count("outline:2px") == 1
    rows = ranked_rows(view, [2, 1])
    assert rows[0] == {"group": 2, "tokens": "4–4", "R": 8.0, "text": "d"} and rows[1]["tokens"] == "2–3"


def test_minimap_has_at_most_the_bin_count_and_keeps_the_sum():
    rng = np.random.default_rng(1)
    r = rng.normal(size=10_000)
    shown = [True] * 10_000
    df = minimap_frame(r, shown, bins=200)
    assert len(df) <= 200 and df["start"].iloc[0] == 0 and df["end"].iloc[-1] == 10_000
    np.testing.assert_allclose(df["R"].sum(), r.sum(), rtol=1e-9)
    spec = json.dumps(minimap_chart(r, shown, (100, 700)).to_dict())
    assert len(spec) < 60_000


def test_layer_and_token_charts_bin_long_prompts():
    n = 10_000
    toks = [f"w{i}" for i in range(n)]
    lr = np.random.default_rng(2).normal(size=(7, n))
    shown = [i != 0 for i in range(n)]
    d = charts.layer_chart(toks, lr, shown).to_dict()
    rows = next(iter(d["datasets"].values()))
    assert len(rows) == 7 * charts.LAYER_COLUMNS
    assert len(d["encoding"]["x"]["sort"]) == charts.LAYER_COLUMNS
    emb = sum(row["R"] for row in rows if row["stage"] == "embedding")
    np.testing.assert_allclose(emb, lr[0, 1:].sum(), rtol=1e-9)  # hidden token 0 counts 0
    short = charts.layer_chart(toks[:30], lr[:, :30], [True] * 30).to_dict()
    assert len(short["encoding"]["x"]["sort"]) == 30 and short["encoding"]["x"]["sort"][0] == "0 w0"
    cells = next(iter(charts.token_chart(toks, list(lr[0]), list(lr[0]), [True] * n).to_dict()["datasets"].values()))
    assert len(cells) <= charts.TOKEN_CELLS


def test_a_special_sink_group_is_clipped_not_the_scale():
    g = group_tokens("tokens", ["<s>", "a", "b", "<a>"])
    view = group_view(g, [0.5, 1.0, -2.0, 40.0], [True] * 4, special=[True, False, False, True])
    assert view.values == [0.25, 0.5, -1.0, 1.0]  # the scale is max |R| of ordinary groups (2.0); 40 clips to 1
    df = minimap_frame([0.5, 1.0, -2.0, 40.0], [True] * 4, bins=4, special=[True, False, False, True])
    assert df["value"].tolist() == [0.25, 0.5, -1.0, 1.0] and df["R"].tolist() == [0.5, 1.0, -2.0, 40.0]
