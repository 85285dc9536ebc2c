"""A case in one file: a PowerPoint deck (python-pptx) and the same content as a one-file HTML report.

`case_story(...)` gathers what both show (summary, rendered figures, numbers); `deck_pptx(story)` and
`report_html(story)` lay it out. Slides (16:9): title (case, model, one-sentence summary), heatmap, graph (pruned
as given), the causal check (deletion curves and the verdict in words; it decides the category, engine.cases.outcome),
numbers and summary, a "What if?" slide when the prompt was edited (before -> after numbers, the sentence, the
aligned before / after / difference rows: engine.present.whatif), a notes slide when the case carries notes
(engine.cases.notes), and a scaling slide when other models' attributions are given.
Untrusted text (prompts, tokens, model names) only ever becomes plain text runs in the PPTX (python-pptx writes
XML text nodes: no fields, no formulas, no markup) and html.escape'd text in the HTML report.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import altair as alt
import pandas as pd

from engine.cases.categories import Category
from engine.cases.checks import DeletionCurves
from engine.cases.notes import Note
from engine.cases.outcome import VERDICT_WORDS
from engine.graph.types import AttributionGraph, PrunedGraph, PruneSettings
from engine.present import charts, figures, glossary, render
from engine.present.figures import FigureContext
from engine.present.slides import picture, titled_slide, widescreen
from engine.present.summary import GOOD_BAND, CaseSummary, case_summary
from engine.present.text import visible
from engine.present.whatif import WhatIfStory, text_story, whatif_story
from engine.records import Attribution

if TYPE_CHECKING:
    from engine.cases.whatif import WhatIf

MAX_DECK_NOTES = 12  # notes on the notes slide (the report lists every one)


def dashboard_prune() -> PruneSettings:
    """The Graph page's default view: default mass, only what reaches the prediction, no BOS (ui.state's defaults)."""
    return PruneSettings(connected_to=(-1, -1), hide_first_token=True)


def dashboard_prune_words() -> str:
    """`dashboard_prune` in words, for captions and slide notes."""
    return (f"{round(dashboard_prune().top_p * 100)} % of each layer's edge mass, only what reaches the prediction, "
            "first token hidden")


@dataclass(frozen=True)
class Figure:
    png: bytes  # 16:9
    svg: str  # 16:9
    note: str = ""


@dataclass(frozen=True)
class CaseStory:
    """What the deck and the HTML report show."""

    ctx: FigureContext
    summary: CaseSummary
    prompt: str
    heatmap_html: str  # every token, escaped (engine.present.render)
    heatmap: Figure
    graph: Optional[Figure]
    scaling: Optional[Figure]
    numbers: tuple[tuple[str, str], ...]  # (plain name, value)
    check: Optional[Figure] = None  # the deletion curves
    check_lines: tuple[str, ...] = ()  # the verdict in words, then what it means for the category
    whatif: Optional[WhatIfStory] = None  # the edited prompt: before -> after
    whatif_figure: Optional[Figure] = None  # its aligned rows, for the slide
    notes: tuple[Note, ...] = ()  # people's notes on the case (engine.cases.notes)


def _figure(chart: alt.TopLevelMixin, ctx: FigureContext, view: str, notes: Sequence[str] = (),
            colours: bool = True, scale: float = 1.0) -> Figure:
    slide = figures.slide_chart(chart, ctx, view, notes, scale=scale, colours=colours)
    return Figure(figures.png_16x9(slide), figures.svg_16x9(slide), " ".join(notes))


def scaling_chart(rows: Sequence[tuple[str, float, str]]) -> alt.Chart:
    """Δℓ of the same case per model (model, Δℓ, verdict), zoo models in size order, each bar in the model's
    palette colour (engine.present.palette; red and blue mean wrong and right answer only), its verdict beside it."""
    from engine.present import palette
    from engine.zoo import zoo_sizes

    order = {f"zoo:{s}": i for i, s in enumerate(zoo_sizes())}
    df = pd.DataFrame([{"model": m, "Δℓ": d, "verdict": v} for m, d, v in rows])
    df = df.assign(rank=[order.get(m, len(order) + i) for i, m in enumerate(df["model"])]).sort_values("rank")
    colours = palette.colours(list(df["model"]))
    y = alt.Y("model:N", sort=list(df["model"]), title=None)
    bars = alt.Chart(df).mark_bar().encode(
        y=y, x=alt.X("Δℓ:Q", title=glossary.name("Δℓ") + ", > 0: wrong answer"),
        color=alt.Color("model:N", scale=alt.Scale(domain=list(colours), range=list(colours.values())), legend=None),
        tooltip=["model", "verdict", alt.Tooltip("Δℓ:Q", format="+.3f")])
    words = alt.Chart(df).mark_text(align="left", dx=6, fontSize=13).encode(
        y=y, x=alt.value(0), text="verdict:N")
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#111").encode(x="x:Q")
    return alt.hconcat(alt.layer(bars, zero).properties(width=440, height=max(120, 34 * len(df))),
                       words.properties(width=200, height=max(120, 34 * len(df))).encode(
                           y=alt.Y("model:N", sort=list(df["model"]), axis=None)))


def _verdict(att: Attribution, other: Attribution) -> str:
    """The other model's verdict on the case: its own top-1 token against the target and the contrast."""
    from engine.compare.verdicts import verdict
    from engine.records import TokenChoice

    if not other.topk or att.contrast is None:
        return ""
    top = other.topk[0]
    return verdict(TokenChoice(top.token_id, top.token), other.target, other.contrast or att.contrast)


def case_story(att: Attribution, labels: Optional[Sequence[str]], *, model: str, case: str, prompt: str,
               graph: Optional[AttributionGraph] = None, pruned: Optional[PrunedGraph] = None,
               graph_note: str = "", others: Sequence[tuple[str, Attribution]] = (),
               shown: Optional[Sequence[bool]] = None, check: Optional[DeletionCurves] = None,
               r_zero: Optional[float] = None, recorded: bool = False,
               human: Optional[Category] = None, whatif: Optional[tuple["WhatIf", Attribution]] = None,
               notes: Sequence[Note] = ()) -> CaseStory:
    """Summary, figures and numbers of one case. labels: [tokens] segments (None: own prompt); graph / pruned: the
    graph as shown (pruned with `dashboard_prune` when only the graph is given); others: (model label,
    attribution of the same prompt, target and contrast) for the scaling slide; shown: [tokens] tokens drawn;
    check / r_zero: the causal checks (they decide the category, as on the page); recorded: the pair is the case's
    recorded wrong and right answer (engine.present.summary); human: a person's label; whatif: the edits'
    before -> after (engine.cases.whatif.what_if_attribution: the WhatIf and the edited prompt's heatmap); notes:
    the case's notes."""
    s = case_summary(att, labels, model=model, case=case, recorded=recorded,
                     verdict=check.verdict if check is not None else None, r_zero=r_zero, human=human)
    con = att.contrast.text if att.contrast else None
    ctx = FigureContext(model, case, att.target.text, con, s.headline)
    shown = list(shown) if shown is not None else [True] * len(att.tokens)
    values = render.normalise(att.relevance, shown, "max")
    crop, note = figures.crop_window(att.relevance, shown, figures.MAX_TOKENS)
    per_row = min(16, max(6, math.ceil(sum(crop) / 2)))  # short prompts: two rows of large cells
    heat = _figure(charts.token_chart(att.tokens, values, att.relevance, crop, per_row=per_row, scale=1.4), ctx,
                   "Token relevance", [note] if note else [], scale=1.4)
    g = None
    if graph is not None:
        from engine.graph.prune import prune

        pruned = pruned if pruned is not None else prune(graph, dashboard_prune())
        g = _figure(charts.graph_chart(graph, pruned, scale=1.3), ctx, "Attribution graph through the layers",
                    [graph_note] if graph_note else [], scale=1.3)
    scaling = None
    if others and att.logit_diff is not None:
        rows = [(model, att.logit_diff, _verdict(att, att))] + \
            [(m, o.logit_diff, _verdict(att, o)) for m, o in others if o.logit_diff is not None]
        scaling = _figure(scaling_chart(rows), ctx, "The same case on every loaded model (verdict: its own next "
                          "token)", colours=False)
    check_fig, check_lines = None, ()
    if check is not None:
        from engine.present.check_charts import deletion_chart

        check_lines = (f"{VERDICT_WORDS.get(check.verdict, check.verdict).capitalize()}. {check.sentence}",
                       s.category.sentence if s.category is not None else "")
        check_fig = _figure(deletion_chart(check, scale=1.3), ctx, "Remove the red tokens: does the answer flip?",
                            colours=False, scale=1.3)  # the verdict is the slide's text, below the curves
    wi = wi_fig = None
    if whatif is not None:
        from engine.present.aligned import strip_chart

        w, after = whatif
        if w.edits and w.edits[0].startswith("tx:"):  # a text edit: the edited prompt has its own tokens
            wi = text_story(w, prompt, (att.tokens, att.offsets, att.special_mask, att.relevance),
                            (after.tokens, after.offsets, after.special_mask, after.relevance))
        else:
            wi = whatif_story(w, att.tokens, att.special_mask, att.relevance, after.relevance)
        wi_fig = _figure(strip_chart(wi.slide_strip, scale=1.2), ctx, "What if? Before, after and the difference",
                         wi.slide_strip.notes, scale=1.2)
    return CaseStory(ctx, s, prompt, render.heatmap_fragment(att.tokens, values, att.relevance, shown), heat, g,
                     scaling, _numbers(s, check), check_fig, tuple(x for x in check_lines if x), wi, wi_fig,
                     tuple(notes))


def note_rows(notes: Sequence[Note]) -> list[tuple[str, str, str, str, str]]:
    """(when, who, status, category, hypothesis) of each note, in plain words."""
    return [(datetime.datetime.fromtimestamp(n.created).strftime("%Y-%m-%d %H:%M") if n.created else "—",
             n.author or "—", n.status, glossary.label(n.category) if n.category else "—", n.hypothesis)
            for n in notes]


def _numbers(s: CaseSummary, check: Optional[DeletionCurves] = None) -> tuple[tuple[str, str], ...]:
    rows = [("Model", s.model), ("Case", s.case or "own prompt"), ("Wrong answer (target)", _token(s.target))]
    if s.contrast is not None:
        rows += [("Right answer (contrast)", _token(s.contrast)), ("Logit gap (Δℓ)", f"{s.logit_diff:+.3f}"),
                 ("Share between the two", f"{100 * s.pair_target:.1f} % vs {100 * (1 - s.pair_target):.1f} %")]
    if s.prob_target is not None:
        rows.append(("Model's probability of the wrong answer", f"{100 * s.prob_target:.1f} %"))
    if s.prob_contrast is not None:
        rows.append(("Model's probability of the right answer", f"{100 * s.prob_contrast:.1f} %"))
    rows.append(("Conservation", f"{s.conservation:.2f} ({s.band}; good is {1 - GOOD_BAND:.1f}–{1 + GOOD_BAND:.1f})"))
    if check is not None:
        rows.append(("Causal check", f"{VERDICT_WORDS.get(check.verdict, check.verdict)} (area {check.area:+.2f})"))
    c = s.category
    if c is not None and (c.code or c.source != "heuristic"):
        rows.append(("Category", glossary.label(c.code) if c.code else "none"))
        rows.append(("Category decided by", {"person": "a person's label", "check": "the causal check",
                                             "heuristic": "guessed from the heatmap alone"}[c.source]))
        rows.append(("Pattern", glossary.label(s.pattern) if s.pattern else "none"))
    return tuple(rows)


def _token(text: str) -> str:
    return f"'{visible(text)}'"


_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def plain(text: str) -> str:
    """Text a PPTX text run can hold: characters XML 1.0 forbids are shown as escapes."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def headline_title(ctx: FigureContext) -> str:
    """"Why zoo:l says '2' instead of '3'" (the deck's and the report's title)."""
    t = f"'{visible(ctx.target)}'"
    if ctx.contrast is None:
        return f"Why {ctx.model} says {t}"
    return f"Why {ctx.model} says {t} instead of '{visible(ctx.contrast)}'"


def _roles(ctx: FigureContext) -> str:
    """"'2' (wrong) or '3' (right)"."""
    t = f"'{visible(ctx.target)}' (wrong)"
    return f"{t} or '{visible(ctx.contrast)}' (right)" if ctx.contrast is not None else t


# ---------------------------------------------------------------- PowerPoint
def deck_pptx(story: CaseStory) -> bytes:
    """The case deck as .pptx bytes (16:9); every slide title names the wrong and the right answer."""
    from pptx.util import Inches, Pt

    prs = widescreen()
    s, ctx = story.summary, story.ctx
    versus = ctx.versus

    def slide(title: str, notes: str = ""):
        return titled_slide(prs, title, notes=notes)

    def text_box(sl, lines: Sequence[str], left, top, width, height, size=16, bold_first=False):
        box = sl.shapes.add_textbox(left, top, width, height).text_frame
        box.word_wrap = True
        for i, line in enumerate(lines):
            p = box.paragraphs[0] if i == 0 else box.add_paragraph()
            run = p.add_run()
            run.text = plain(line)
            run.font.size = Pt(size)
            run.font.bold = bold_first and i == 0
            p.space_after = Pt(8)
        return box

    def figure(sl, fig: Figure, top=Inches(1.3), max_h=Inches(5.9)):
        picture(prs, sl, fig.png, top, max_h)

    def grid(sl, rows: Sequence[Sequence[str]], left, top, widths: Sequence[float], size: int, header=False):
        table = sl.shapes.add_table(len(rows), len(widths), left, top, Inches(sum(widths)),
                                    Inches(0.4) * len(rows)).table
        for j, w in enumerate(widths):
            table.columns[j].width = Inches(w)
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                cell = table.cell(i, j)
                cell.text = plain(text)
                for p in cell.text_frame.paragraphs:
                    for r in p.runs:
                        r.font.size = Pt(size)
                        r.font.bold = header and i == 0
        return table

    notes = "\n".join(s.sentences)
    title = prs.slides.add_slide(prs.slide_layouts[0])
    head, sub = title.shapes.title, title.placeholders[1]
    head.left, head.top, head.width, head.height = Inches(0.8), Inches(1.6), Inches(11.7), Inches(1.9)
    sub.left, sub.top, sub.width, sub.height = Inches(0.8), Inches(3.7), Inches(11.7), Inches(2.8)
    head.text = plain(headline_title(ctx))
    sub.text_frame.word_wrap = True
    for i, line in enumerate((f"{ctx.model} · {ctx.case or 'own prompt'}", s.headline,
                              f"Failure Lens · {datetime.date.today().isoformat()}")):
        p = sub.text_frame.paragraphs[0] if i == 0 else sub.text_frame.add_paragraph()
        run = p.add_run()
        run.text = plain(line)
        run.font.size = Pt(24 if i == 1 else 18)
    title.notes_slide.notes_text_frame.text = plain(notes)
    figure(slide(f"Which tokens push toward {_roles(ctx)}", notes), story.heatmap)
    if story.graph is not None:
        figure(slide(f"How {versus} is decided through the layers", notes), story.graph)
    if story.check is not None:
        sl = slide(f"The check: does removing the red tokens flip {versus}?", notes)
        figure(sl, story.check, top=Inches(1.25), max_h=Inches(4.6))
        text_box(sl, list(story.check_lines), Inches(0.6), Inches(5.95), Inches(12.1), Inches(1.4), size=15,
                 bold_first=True)
    if story.whatif is not None:
        wi = story.whatif
        sl = slide(f"What if the prompt is edited? {versus}", notes)
        grid(sl, [("", "Before", "After", "Change"), *wi.rows], Inches(0.5), Inches(1.3), (2.9, 1.3, 1.3, 1.3), 14,
             header=True)
        text_box(sl, [wi.sentence, "Edits: " + ", ".join(wi.edits)], Inches(7.6), Inches(1.3), Inches(5.3),
                 Inches(2.0), size=15, bold_first=True)
        if story.whatif_figure is not None:
            figure(sl, story.whatif_figure, top=Inches(3.45), max_h=Inches(3.95))
    nums = slide(f"In numbers: {versus}", notes)
    grid(nums, story.numbers, Inches(0.5), Inches(1.4), (2.9, 2.7), 13)
    text_box(nums, list(s.sentences), Inches(6.4), Inches(1.4), Inches(6.5), Inches(5.8), size=15, bold_first=True)
    if story.notes:
        sl = slide(f"Notes on this case: {versus}", notes)
        rows = [r[:4] + (r[4][:500] + ("…" if len(r[4]) > 500 else ""),) for r in note_rows(story.notes)]
        more = len(rows) - MAX_DECK_NOTES
        grid(sl, [("When", "Who", "Status", "Category", "Hypothesis"), *rows[:MAX_DECK_NOTES]], Inches(0.5),
             Inches(1.3), (1.7, 1.5, 1.1, 2.4, 5.6), 12, header=True)
        if more > 0:
            text_box(sl, [f"… and {more} more note(s): see the case report."], Inches(0.5), Inches(6.8),
                     Inches(12), Inches(0.5), size=12)
    if story.scaling is not None:
        figure(slide(f"Across models: {versus}", notes), story.scaling)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- one-file HTML
BOLD = ' style="font-weight:600"'
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _svg_img(fig: Figure, alt_text: str) -> str:
    data = base64.b64encode(fig.svg.encode("utf-8")).decode("ascii")
    return f'<img style="max-width:100%" alt="{html.escape(alt_text)}" src="data:image/svg+xml;base64,{data}">'


def report_html(story: CaseStory) -> str:
    """The deck's content as one HTML file: no scripts, no external resources, all text escaped."""
    from engine.present.aligned import strip_fragment
    from engine.present.summary import to_html

    s, ctx = story.summary, story.ctx
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in story.numbers)
    parts = [f"<h1>{e(headline_title(ctx))}</h1>",
             f"<p class=\"muted\">{e(ctx.case or 'own prompt')}</p>", to_html(s),
             f"<h2>{e(f'Which tokens push toward {_roles(ctx)}')}</h2>",
             render.legend_html(s.target, s.contrast, "max"), story.heatmap_html,
             f"<p class=\"muted\">Prompt: <code>{e(story.prompt)}</code></p>"]
    if story.graph is not None:
        parts += [f"<h2>{e(f'How {ctx.versus} is decided through the layers')}</h2>",
                  _svg_img(story.graph, "attribution graph"),
                  f"<p class=\"muted\">{e(story.graph.note)}</p>" if story.graph.note else ""]
    if story.check is not None:
        parts += [f"<h2>{e(f'The check: does removing the red tokens flip {ctx.versus}?')}</h2>",
                  "".join(f"<p{BOLD if i == 0 else ''}>{e(line)}</p>" for i, line in enumerate(story.check_lines)),
                  _svg_img(story.check, "deletion curves")]
    if story.whatif is not None:
        wi = story.whatif
        head = "".join(f"<th>{e(x)}</th>" for x in ("", "Before", "After", "Change"))
        body = "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in wi.rows)
        parts += [f"<h2>{e(f'What if the prompt is edited? {ctx.versus}')}</h2>", f"<p{BOLD}>{e(wi.sentence)}</p>",
                  f"<p class=\"muted\">Edits: {e(', '.join(wi.edits))}</p>", f"<table>{head}{body}</table>",
                  "".join(f"<p class=\"muted\">{e(n)}</p>" for n in wi.strip.notes),
                  render.legend_html(s.target, s.contrast, "max"), strip_fragment(wi.strip)]
    parts += [f"<h2>{e(f'In numbers: {ctx.versus}')}</h2>", f"<table>{rows}</table>"]
    if story.notes:
        head = "".join(f"<th>{e(x)}</th>" for x in ("When", "Who", "Status", "Category", "Hypothesis"))
        body = "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in note_rows(story.notes))
        parts += [f"<h2>{e(f'Notes on this case: {ctx.versus}')}</h2>", f"<table>{head}{body}</table>"]
    if story.scaling is not None:
        parts += [f"<h2>{e(f'Across models: {ctx.versus}')}</h2>", _svg_img(story.scaling, "logit gap per model")]
    codes = ["Δℓ", "logit", "conservation", "relevance", "instruction", "query", "answer", "special"]
    codes += [c for c in (s.outcome, s.pattern) if c] + (["verdict"] if story.check is not None else [])
    parts += ["<h2>What the words mean</h2>", glossary.legend_html(codes)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            f"<title>{e(ctx.title)}</title><style>body{{font-family:system-ui,sans-serif;margin:2em auto;"
            "max-width:70em;padding:0 1em;color:#111}.muted{color:#666}table{border-collapse:collapse}"
            "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}code{white-space:pre-wrap}</style>"
            "</head><body>" + "\n".join(parts) + "</body></html>\n")
