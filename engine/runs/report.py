"""A one-file HTML report of a stored sweep run: `run_report(store, run_id) -> str`.

Made to be opened anywhere, offline (a meeting-room laptop): no scripts and no external resources. Charts are
altair charts rendered to SVG by vl-convert and embedded as data-URI images (an SVG shown through <img> can never
run script); heatmaps are escaped HTML spans (engine.present.render). A Content-Security-Policy allows inline styles
and data: images only. Every string from a benchmark, a tokenizer, a config or a person (prompts, tokens,
labels, errors, names) goes through html.escape.

Sections: run header, summary per model and benchmark, causal checks (how often the attribution explains the
failure, when the run computed them), Δℓ distribution, category shares, a few heatmaps (the largest Δℓ first),
the failure table, errors.
"""
from __future__ import annotations

import base64
import datetime
import html
from typing import Any, Iterable, Sequence

import pandas as pd

from engine.records import FailureLensError
from engine.runs.store import Store

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STATUSES = ("ok", "no_failure", "filtered", "error")
# every code and column the report shows, explained in its legend (engine.present.glossary)
LEGEND_CODES = ("Δℓ", "conservation", "ref_rank", *STATUSES, "seg_total", "seg_instruction", "seg_query",
                "seg_answer", "faith. flip rate", "M-IA", "NC-IA+M-AG", "NC-IA+AG", "URT", "OIT", "URT+OIT",
                "suggested_outcome", "suggested_pattern", "human_outcome", "human_pattern", "prefix")
_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:80em;color:#111;padding:0 1em}"
        "table{border-collapse:collapse;font-size:.88em;margin:.5em 0 1.5em}"
        "th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}"
        "th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        ".case{border:1px solid #e3e3e3;border-radius:6px;padding:.6em 1em;margin:.8em 0}"
        ".muted{color:#666;font-size:.9em}code{white-space:pre-wrap;word-break:break-all}")


def esc(value: Any) -> str:
    """Text for HTML: None and NaN as an empty cell, floats rounded, everything escaped."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value), quote=True)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] = (), numeric: Sequence[bool] = ()) -> str:
    """An HTML table whose every cell is escaped; numeric columns are right-aligned."""
    rows = [list(r) for r in rows]
    width = max([len(header)] + [len(r) for r in rows])
    num = list(numeric) + [False] * (width - len(numeric))
    head = f"<thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in header)}</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f'<td class="n">{esc(v)}</td>' if n else f"<td>{esc(v)}</td>"
                                    for v, n in zip(r, num)) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def svg_image(chart: Any, alt_text: str) -> str:
    """An altair chart as an inline SVG data-URI image (rendered offline by vl-convert)."""
    from engine.present.charts import to_svg

    data = base64.b64encode(to_svg(chart).encode("utf-8")).decode("ascii")
    return f'<img alt="{esc(alt_text)}" src="data:image/svg+xml;base64,{data}">'


def _logit_diff_chart(ok: pd.DataFrame) -> Any:
    import altair as alt

    from engine.present.compare_charts import COUNT_AXIS, binned_axis

    return alt.Chart(ok[["model_label", "logit_diff"]]).mark_bar(opacity=0.65).encode(
        x=alt.X("logit_diff:Q", bin=alt.Bin(maxbins=30), title="Δℓ = ℓ(target) − ℓ(contrast)", axis=binned_axis()),
        y=alt.Y("count():Q", stack=None, title="failures", axis=COUNT_AXIS),
        color=alt.Color("model_label:N", title="model"),
    ).properties(width=560, height=220)


def _category_chart(df: pd.DataFrame) -> Any:
    import altair as alt

    long = pd.concat([
        pd.DataFrame({"model": df["model_label"], "source": "category", "outcome": df["outcome"]}),
        pd.DataFrame({"model": df["model_label"], "source": "human",
                      "outcome": df["human_outcome"].fillna("unlabelled")}),
    ])
    long["row"] = long["model"] + " · " + long["source"]
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("count():Q", stack="normalize", title="share of failures", axis=alt.Axis(format="%")),
        y=alt.Y("row:N", title=None), color=alt.Color("outcome:N", title="outcome"),
    ).properties(width=560, height=max(60, 28 * long["row"].nunique()))


def _summary(df: pd.DataFrame) -> str:
    rows = []
    for (model, bench), g in df.groupby(["model_label", "benchmark"], dropna=False, sort=True):
        ok = g[g["status"] == "ok"]
        faith = ok["faith_k_relevance"] if "faith_k_relevance" in ok else pd.Series(dtype=float)
        seg = [ok[c].mean() if c in ok and len(ok) else None for c in ("seg_instruction", "seg_query", "seg_answer")]
        rows.append([model, bench, len(g), *[int((g["status"] == s).sum()) for s in STATUSES],
                     ok["logit_diff"].median() if len(ok) else None, ok["ref_rank"].median() if len(ok) else None,
                     *seg, faith.notna().mean() if faith.notna().any() else None])
    return table(rows, ["model", "benchmark", "cases", *STATUSES, "median Δℓ", "median ref. rank",
                        "mean R instruction", "mean R query", "mean R answer", "faith. flip rate"],
                 [False, False] + [True] * 11)


def _checks(ok: pd.DataFrame) -> str:
    """Verdict and causal-outcome shares per model, benchmark and category (engine.cases.checks.verdict_table)."""
    from engine.cases.checks import PARTLY_SHARE, R_GRAPH, RANDOM_MARGIN_STD, verdict_table

    t = verdict_table(ok.assign(category=ok["outcome"]), ("model_label", "benchmark", "category"))
    pct = lambda v: "" if v is None or v != v else f"{v:.0%}"  # noqa: E731
    num = lambda v: "" if v is None or v != v else f"{v:+.2f}"  # noqa: E731  (no area without the full curves)
    shares = ["by input", "by graph", "no clue", "explains", "fragile", "partly", "not_explained"]
    rows = [[r["model_label"], r["benchmark"], r["category"], r["checked"], *[pct(r[c]) for c in shares],
             num(r["mean area"]), num(r["median r (nodes)"])] for _, r in t.iterrows()]
    note = ('<p class="muted">Removing the heatmap’s top tokens (deletion curves) and ablating the top graph nodes, '
            f"per case. <b>explains</b>: the answer flips while removing as many random tokens does not; "
            f"<b>fragile</b>: "
            f"random removals flip it too; <b>partly</b>: no flip, but Δℓ falls by ≥ {PARTLY_SHARE:.0%} and more than "
            f"{RANDOM_MARGIN_STD:g} random spreads below the random mean. Causal outcome: <b>by input</b> (M-IA) = "
            f"explains or partly; <b>by graph</b> (NC-IA+M-AG) = otherwise, when the top nodes' predicted and "
            f"measured changes correlate with r ≥ {R_GRAPH}; <b>no clue</b> (NC-IA+AG) = neither. Category: the "
            "person's label where there is one, else this causal outcome. Mean area: cases with full curves only "
            "(<code>checks: {curves: full}</code>).</p>")
    return note + table(rows, ["model", "benchmark", "category", "checked", "by input", "by graph", "no clue",
                               "explains", "fragile", "partly", "does not explain", "mean area", "median r (nodes)"],
                        [False, False, False] + [True] * 10)


def _heatmaps(store: Store, run_id: str, ok: pd.DataFrame, n: int) -> str:
    from engine.present.render import heatmap_fragment, legend_html, normalise
    from engine.runs.sweep import load_case

    out = []
    for _, r in ok.sort_values("logit_diff", ascending=False).head(n).iterrows():
        case = load_case(store, run_id, r["model_label"], r["case_id"])
        if case is None or not len(case.relevance):
            continue
        shown = [not s for s in case.special_mask]
        values = normalise(case.relevance.tolist(), shown, "max")
        cat = " / ".join(x for x in (r.get("outcome"), r.get("pattern")) if isinstance(x, str) and x != "none")
        cat = f"{cat} ({r['decided_by']})" if cat else ""
        out.append(
            f'<div class="case"><b>{esc(r["model_label"])}</b> · {esc(r["case_id"])} · Δℓ {esc(r["logit_diff"])} · '
            f'reference rank {esc(r["ref_rank"])} · category {esc(cat or "-")}'
            f'<div class="muted">target {esc(repr(r["target"]))} instead of {esc(repr(r["contrast"]))}'
            f'{" after " + esc(repr(r["prefix"])) if r["prefix"] else ""}</div>'
            f'{legend_html(str(r["target"]), str(r["contrast"]), "max")}'
            f'{heatmap_fragment(case.tokens, values, case.relevance.tolist(), shown)}</div>')
    return "".join(out) or "<p>No heatmaps stored.</p>"


def run_report(store: Store, run_id: str, heatmaps: int = 6, max_rows: int = 300) -> str:
    """The report of one run (see the module docstring); `heatmaps` cases get a token heatmap."""
    runs = {r["run_id"]: r for r in store.runs()}
    if run_id not in runs:
        raise FailureLensError(f"no run {run_id!r} in {store.folder}; runs there: {', '.join(runs) or 'none'}.")
    run = runs[run_id]
    cfg = run["config"]
    df = store.results_frame(run_id)
    cases = store.cases(run_id)
    prompts = {c["case_id"]: c["prompt"] for c in cases}
    created = datetime.datetime.fromtimestamp(run["created"]).strftime("%Y-%m-%d %H:%M")
    models = ", ".join(f"{m['label']} ({m['source']})" for m in cfg.get("models", []))
    benches = ", ".join(b.get("name") or b["kind"] for b in cfg.get("benchmarks", []))
    obj = cfg.get("objective", {})
    compute = cfg.get("compute", {})
    parts = [
        f"<h1>Failure Lens run {esc(run_id)}</h1>",
        table([["name", run["name"]], ["created", created], ["models", models], ["benchmarks", benches],
               ["objective", f"{obj.get('mode')} / {obj.get('strategy')} (k = {obj.get('k')}), rule {cfg.get('rule')}"],
               ["computed", ", ".join(k for k in ("heatmap", "graph", "faithfulness", "checks")
                                      if _on(compute.get(k)))],
               ["cases × models", f"{len(df)} stored of {len(cases) * len(cfg.get('models', []))}"]]),
    ]
    if df.empty:
        parts.append("<p>No results stored yet.</p>")
        return _page(run_id, parts)
    from engine.cases.outcome import frame_outcomes

    ok = frame_outcomes(df[df["status"] == "ok"])  # one category per case, as on the pages (engine.cases.outcome)
    parts += ["<h2>Summary</h2>", _summary(df)]
    if "check_verdict" in ok and ok["check_verdict"].notna().any():
        parts += ["<h2>Does the attribution explain the failures?</h2>", _checks(ok)]
    if len(ok):
        parts += ["<h2>Δℓ of the failures</h2>", svg_image(_logit_diff_chart(ok), "histogram of logit differences"),
                  "<h2>Categories</h2>", svg_image(_category_chart(ok), "category shares per model"),
                  f"<h2>Heatmaps (largest Δℓ, {min(heatmaps, len(ok))} of {len(ok)})</h2>",
                  _heatmaps(store, run_id, ok, heatmaps)]
        top = ok.sort_values("logit_diff", ascending=False).head(max_rows)
        parts += [f"<h2>Failures ({len(top)} of {len(ok)}, largest Δℓ first)</h2>", table(
            ([r["model_label"], r["case_id"], r["logit_diff"], r["ref_rank"], repr(r["target"]), repr(r["contrast"]),
              r.get("seg_total"), r["outcome"], r["pattern"], r["decided_by"], r.get("human_outcome"),
              r.get("human_pattern"), r.get("human_author"), r.get("human_note"),
              _excerpt(prompts.get(r["case_id"], "")), r["prefix"] or ""]
             for _, r in top.iterrows()),
            ["model", "case", "Δℓ", "ref. rank", "target", "contrast", "R total", "category", "pattern",
             "decided by", "human", "human pattern", "labelled by", "note", "prompt", "answer before the failure"],
            [False, False, True, True])]
    parts += ["<h2>What the codes mean</h2>", glossary_legend()]
    errors = df[df["status"] == "error"]
    if len(errors):
        parts += [f"<h2>Errors ({len(errors)})</h2>",
                  table(([r["model_label"], r["case_id"], r["error"]] for _, r in errors.head(max_rows).iterrows()),
                        ["model", "case", "error"])]
    return _page(run_id, parts)


def glossary_legend() -> str:
    from engine.present.glossary import legend_html

    return legend_html(LEGEND_CODES)


def _on(value: Any) -> bool:
    return value is True or (isinstance(value, dict) and bool(value.get("enabled")))


def _excerpt(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n] + " …"


def _page(run_id: str, parts: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            f"<title>Failure Lens · {esc(run_id)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
