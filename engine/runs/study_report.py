"""A study for the meeting: one-file offline HTML report, PPTX deck (one slide per figure), CSVs, claims JSON.

All from `StudyTables` (engine.runs.study_figures) and the store (for the stored heatmaps and graphs). Untrusted
text (tokens, case ids, model names) is html.escape'd in the report (engine.runs.report helpers), written as plain
text runs in the deck (engine.present.deck.plain) and formula-guarded in the CSVs (engine.present.text.frame_csv).
"""
from __future__ import annotations

import datetime
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import altair as alt

from engine.present import render
from engine.present.text import visible
from engine.runs import study_charts as ch
from engine.runs.report import _page, esc, glossary_legend, svg_image, table
from engine.runs.store import Store
from engine.runs.study import run_id
from engine.runs.study_figures import FIGURES, StudyTables
from engine.runs.sweep import load_case

ANSWER_COLOUR = {"holds": "#1b7837", "does not hold": "#7f3b08", "mixed": "#8c6d00", "not tested": "#666"}


@dataclass(frozen=True)
class FigureView:
    figure: str
    chart: Optional[alt.TopLevelMixin]
    tables: tuple[str, ...]  # names in StudyTables.tables
    note: str = ""


def _examples(store: Store, t: StudyTables) -> list[tuple[Any, Any]]:
    """(example row, stored case) of Fig 2."""
    out = []
    for _, r in t.tables["fig2_examples"].iterrows():
        case = load_case(store, run_id(t.name, "reference"), t.reference, r["case_id"])
        if case is not None and len(case.relevance):
            out.append((r, case))
    return out


def _fig2_chart(store: Store, t: StudyTables) -> Optional[alt.TopLevelMixin]:
    charts = []
    for r, case in _examples(store, t):
        chart, note = ch.example_chart(case, 0.8)
        title = f"{r['example']}: {r['case_id']} · says {visible(str(r['target']))!r} not " \
                f"{visible(str(r['contrast']))!r} · Δℓ {r['logit_diff']:+.2f}"
        charts.append(chart.properties(title=alt.TitleParams(title, subtitle=[note] if note else [], anchor="start")))
    return alt.vconcat(*charts).resolve_scale(color="shared") if charts else None


def _fig3_chart(store: Store, t: StudyTables) -> Optional[alt.TopLevelMixin]:
    g = t.tables["fig3_graph"]
    if g.empty:
        return None
    case = load_case(store, run_id(t.name, "reference"), t.reference, g.iloc[0]["case_id"])
    return ch.graph_figure(case.graph if case is not None else None, 0.8)


def figure_views(store: Store, t: StudyTables, only: Optional[str] = None) -> dict[str, FigureView]:
    """Each figure's chart and table names; `only` builds just that figure (the page draws one at a time)."""
    tb = t.tables
    make: dict[str, Any] = {
        "Fig 1": lambda: ch.fig1_chart(tb["fig1_outcomes"], tb["fig1_patterns"]),
        "Fig 2": lambda: _fig2_chart(store, t),
        "Fig 3": lambda: _fig3_chart(store, t),
        "Fig 4": lambda: ch.fig4_chart(tb["fig4_scaling"]) if len(tb["fig4_scaling"]) else None,
        "Fig 5": lambda: ch.fig5_chart(tb["fig5_segments"]),
        "Fig 6": lambda: ch.fig6_chart(tb["fig6_checkpoints"], tb["fig6_means"]) if len(tb["fig6_means"]) else None,
        "Fig 7": lambda: ch.fig7_chart(tb["fig7_segments"]) if len(tb["fig7_segments"]) else None,
    }
    names = {"Fig 1": ("fig1_outcomes", "fig1_patterns"), "Fig 2": ("fig2_examples",), "Fig 3": ("fig3_graph",),
             "Fig 4": ("fig4_scaling",), "Fig 5": ("fig5_segments",), "Fig 6": ("fig6_means", "fig6_checkpoints"),
             "Fig 7": ("fig7_segments",)}
    none3 = "" if len(tb["fig3_graph"]) else "No failure is explained by the graph but not by the heatmap."
    return {f: FigureView(f, make[f](), names[f], none3 if f == "Fig 3" else "")
            for f in FIGURES if only is None or f == only}


def _frame_html(df: Any, limit: int = 40) -> str:
    shown = df.head(limit)
    more = f'<p class="muted">{len(df) - limit} more rows in the CSV.</p>' if len(df) > limit else ""
    return table(shown.itertuples(index=False), list(shown.columns),
                 [str(k).startswith(("float", "int")) for k in shown.dtypes]) + more


def report_html(store: Store, t: StudyTables, views: Optional[dict[str, FigureView]] = None) -> str:
    views = views or figure_views(store, t)
    claims = {c.figure: c for c in t.claims}
    parts = [f"<h1>Failure Lens study {esc(t.name)}</h1>",
             table([["reference model", t.reference], ["sizes", ", ".join(t.sizes) or "-"],
                    ["checkpoints", ", ".join(t.checkpoints) or "-"], ["studied failures", len(t.failures)],
                    ["families", ", ".join(sorted(t.failures["family"].astype(str).unique()))],
                    ["made", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")]]),
             f'<p class="muted">{esc(t.case_set())}</p>',
             "<h2>What share of the failures does attribution explain?</h2>",
             svg_image(ch.headline_chart(t.tables["headline"]), "outcomes per size and checkpoint"),
             '<p class="muted">Reference model: outcomes from its causal checks (a person\'s label wins). '
             "Other models: "
             "the same cases and token pair; fixed = Δℓ ≤ 0 there; where they still fail, the outcome rests on the "
             "heuristic unless the study ran checks on them (column on_heuristic).</p>",
             "<h2>The claims</h2>",
             table([[c.figure, c.claim, c.answer, c.words] for c in t.claims],
                   ["figure", "claim", "answer", "this run"])]
    for fig in FIGURES:
        c, v = claims[fig], views[fig]
        parts += [f"<h2>{esc(fig)}: {esc(c.claim)}</h2>",
                  f'<p><b style="color:{ANSWER_COLOUR.get(c.answer, "#111")}">{esc(c.answer)}</b> · {esc(c.words)}</p>',
                  f'<p class="muted">{esc(t.case_set())}</p>']
        if fig == "Fig 2":
            parts += [_example_html(r, case) for r, case in _examples(store, t)] or ["<p>No example found.</p>"]
        elif v.chart is not None:
            parts.append(svg_image(v.chart, f"{fig} chart"))
        if v.note:
            parts.append(f"<p>{esc(v.note)}</p>")
        parts += [_frame_html(t.tables[n]) for n in v.tables]
    parts += ["<h2>Patterns across failures</h2>", "<h3>Recurring strongest tokens (top 3 per failure and side)</h3>",
              _frame_html(t.tables.get("patterns_tokens", _empty()), 80),
              "<h3>Relevance on special tokens (BOS, template) per model</h3>"]
    sp = t.tables.get("patterns_special")
    if sp is not None and len(sp):
        parts += [svg_image(ch.special_chart(sp), "special-token share per model"), _frame_html(sp)]
    parts += ["<h3>Where in the prompt the relevance sits (|R|-weighted position quantiles, 1 = the failure "
              "point)</h3>",
              _frame_html(t.tables.get("patterns_positions", _empty())),
              "<h2>What the codes mean</h2>", glossary_legend()]
    return _page(f"study {t.name}", parts)


def _empty() -> Any:
    import pandas as pd

    return pd.DataFrame()


def _example_html(r: Any, case: Any) -> str:
    shown = [not s for s in case.special_mask]
    rel = case.relevance.tolist()
    return (f'<div class="case"><b>{esc(r["example"])}</b> · {esc(r["case_id"])} · Δℓ {esc(r["logit_diff"])} · '
            f'{esc(r["why"])} · outcome rests on {esc(r["basis"])}'
            f'{render.legend_html(str(r["target"]), str(r["contrast"]), "max")}'
            f'{render.heatmap_fragment(case.tokens, render.normalise(rel, shown, "max"), rel, shown)}</div>')


def deck_pptx(store: Store, t: StudyTables, views: Optional[dict[str, FigureView]] = None) -> bytes:
    """16:9 deck: a title slide, the headline slide, then one slide per figure titled with its claim and answer."""
    from pptx.util import Inches, Pt

    from engine.present.deck import plain
    from engine.present.figures import png_16x9
    from engine.present.slides import picture, titled_slide, widescreen

    views = views or figure_views(store, t)
    prs = widescreen()

    def slide(title: str, lines: list[str], chart: Optional[alt.TopLevelMixin]) -> None:
        sl = titled_slide(prs, title, size=24, box=(0.4, 0.2, 12.5, 1.1))
        top = Inches(1.35)
        if chart is not None:
            h = Inches(4.6)
            picture(prs, sl, png_16x9(chart), top, h)
            top += h + Inches(0.1)
        box = sl.shapes.add_textbox(Inches(0.5), top, Inches(12.3), prs.slide_height - top - Inches(0.2)).text_frame
        box.word_wrap = True
        for i, line in enumerate(lines):
            p = box.paragraphs[0] if i == 0 else box.add_paragraph()
            run = p.add_run()
            run.text = plain(line)
            run.font.size = Pt(14 if i == 0 else 12)
        sl.notes_slide.notes_text_frame.text = plain("\n".join(lines))

    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = plain(f"Failure Lens study {t.name}")
    first.placeholders[1].text = plain(f"Failures of {t.reference} across {len(t.sizes)} sizes and "
                                       f"{len(t.checkpoints)} checkpoints · {datetime.date.today().isoformat()}")
    slide("What share of the failures does attribution explain, per size and checkpoint?", [t.case_set()],
          ch.headline_chart(t.tables["headline"]))
    for c in t.claims:
        v = views[c.figure]
        slide(f"{c.figure}: {c.claim} — {c.answer}", [c.words, t.case_set()] + ([v.note] if v.note else []), v.chart)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def write_csvs(t: StudyTables, folder: str | Path) -> list[Path]:
    """Every table behind the figures as <folder>/<table>.csv, plus failures.csv and claims.csv."""
    import pandas as pd

    from engine.files import write_atomic
    from engine.present.text import frame_csv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = {**t.tables, "failures": t.failures, "claims": pd.DataFrame([c.to_dict() for c in t.claims])}
    return [write_atomic(folder / f"{n}.csv", frame_csv(df), "CSV export") for n, df in frames.items()]


def claims_json(t: StudyTables) -> str:
    return json.dumps([c.to_dict() for c in t.claims], ensure_ascii=False, indent=1)
