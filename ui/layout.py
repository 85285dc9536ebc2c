"""Shared page furniture: sidebar, presentation mode, charts and tables with downloads, stoppable long tasks."""
from __future__ import annotations

import re
from typing import Callable, Optional, Sequence, TypeVar

import altair as alt
import pandas as pd
import streamlit as st

from engine.model_spec import ModelSpec
from engine.present import charts, figures, glossary, render
from engine.present.figures import FigureContext
from engine.records import FailureLensError
from ui import safe, state, widgets

T = TypeVar("T")
Figure = tuple[FigureContext, str, Sequence[str]] | str  # (what a case chart shows, view title, notes) or a title
HELP = ("Pick a model and a failure case; red tokens push the model towards its wrong answer (target), blue ones "
        "towards the right one (contrast). Click a token in the top-k table to compare against it.")
# Always on. Red and blue mean target and contrast only: the selected contrast pill is blue, the target pill red
# (the theme's accent is a neutral slate). The prompt box keeps room for its copy button. The page starts just
# below the toolbar (Streamlit's default leaves ~100 px empty above the title, pushing the heatmap below the fold).
BASE_CSS = """<style>
.st-key-w-pick-contrast button[data-selected="true"] { background: rgba(31,119,180,.14) !important;
  border-color: rgb(31,119,180) !important; color: rgb(20,80,125) !important; }
.st-key-w-pick-target button[data-selected="true"] { background: rgba(214,39,40,.12) !important;
  border-color: rgb(214,39,40) !important; color: rgb(160,25,25) !important; }
[data-testid="stCode"] pre { padding-right: 3rem !important; }
[data-testid="stMainBlockContainer"] { padding-top: 3.4rem; }
</style>"""
# Presentation mode: sizes follow the screen (clamp between a 1280x720 and a 1920x1080 projector), the page never
# scrolls sideways, and the first screen of the Heatmap page holds the numbers, the summary and the heatmap.
PRESENTATION_CSS = """<style>
[data-testid="stMainBlockContainer"] { max-width: 100%; padding: 3.4rem 2rem 1rem; }
[data-testid="stMain"] { overflow-x: hidden; }
[data-testid="stMainBlockContainer"] :is(p, li, label, input, textarea, button, code, summary, td, th) {
  font-size: clamp(1rem, .55rem + .6vw, 1.35rem) !important; }
[data-testid="stMainBlockContainer"] h1 { font-size: clamp(1.7rem, 1rem + 1.2vw, 2.6rem) !important; \
padding: 0 0 .3rem; }
[data-testid="stMainBlockContainer"] :is(h2, h3) { font-size: clamp(1.25rem, .8rem + .75vw, 1.9rem) !important;
  padding: .4rem 0 .2rem; }
[data-testid="stMainBlockContainer"] [data-testid="stMetricValue"] :is(p, div) {
  font-size: clamp(1.6rem, 1rem + 1.2vw, 2.6rem) !important; }
[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"] { gap: .6rem; }
.fl-heatmap { font-size: clamp(1.25rem, .6rem + 1.1vw, 2rem) !important; }
.fl-legend { font-size: clamp(.95rem, .55rem + .5vw, 1.2rem) !important; }
</style>"""


def page(title: str, subject: bool = True) -> None:
    """First call of every page: make sure the run went through app.py, then the title. In presentation mode
    (sidebar folded away) the title row also names the active model and the case on screen (subject=False: a
    page about neither, e.g. Sweeps).

    Streamlit runs pages/<name>.py on its own (its legacy multipage mode, no sidebar, no state) when a fresh
    server's first request is a page URL such as /graph. Such a run did not come through app.py: navigate (which
    leaves that mode, through Streamlit's public st.navigation) and rerun, which goes through app.py with the same URL.
    """
    from ui import navigation

    if not navigation.via_app():
        navigation.navigate(position="hidden")
        st.rerun()
    if not (state.get(state.PRESENT) and subject and state.active_param()):
        st.title(title)  # md-safe: a page's own constant title (layout.page is scanned)
        return
    with st.container(horizontal=True, vertical_alignment="bottom", gap="large", key="fl-subject"):
        st.title(title, width="content")  # md-safe: a page's own constant title (layout.page is scanned)
        st.markdown(f"Model **{safe.plain(ModelSpec.parse(state.active_param()).title)}** · "
                    f"{safe.plain(case_name())}", width="content")


def case_name() -> str:
    """The case on screen in words: "case l/eval-math-00014", or "own prompt"."""
    case = state.get(state.CASE)
    return f"case {case}" if case else "own prompt"


def scale() -> float:
    """Figure scale: larger in presentation mode."""
    return 1.3 if state.get(state.PRESENT) else 1.0


def sidebar() -> None:
    """Current model(s), the active model, presentation mode, a line of help."""
    with st.sidebar:
        models = state.model_params()
        if models:
            labels = [ModelSpec.parse(p).title for p in models]
            if len(models) > 1:
                widgets.radio("Active model", state.ACTIVE, list(range(len(models))),
                              format_func=lambda i: safe.plain(labels[i]),
                              help="The model the Heatmap and Graph pages show.")
            else:
                st.caption(f"Model: **{safe.plain(labels[0])}**")
        else:
            st.caption("No model loaded yet.")
        widgets.toggle("Presentation mode", state.PRESENT, help="Larger fonts and figures, full width.")
        st.caption(HELP)
        st.caption("The address bar always holds the current view: copy it to share this exact picture.")
    st.html(BASE_CSS + (PRESENTATION_CSS if state.get(state.PRESENT) else ""))
    for issue in state.get(state.URL_ISSUES):
        st.warning(safe.plain(issue))


def controls(label: str):
    """Where a page's inputs go: in view, or folded into an expander in presentation mode (the room sees results)."""
    return st.expander(label, expanded=False) if state.get(state.PRESENT) else st.container()  # md-safe: caller's


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:80] or "failure_lens"


def downloads(name: str, *, chart: Optional[alt.TopLevelMixin | Callable[[], alt.TopLevelMixin]] = None,
              table: Optional[pd.DataFrame] = None,
              extra: Optional[dict[str, tuple[Callable[[], object], str, str]]] = None, key: str = "",
              figure: Optional[Figure] = None) -> None:
    """A row of download buttons; files are made only when clicked (PNG/SVG rendering is slow).

    chart: an altair chart, or a function that makes it (a chart drawn only for export, or one the page
    draws from a cached spec, is then built on a click).

    extra: label -> (make file contents, mime type, file extension).
    figure: (what the figure shows, view title, notes): exported charts get a title, a legend in words and a 16:9
    canvas, and file names carry model, case and view (engine.present.figures); a plain string: a title and the
    16:9 canvas for charts of several models or cases (Scaling, Evolution, Sweeps).
    """
    items: dict[str, tuple[Callable[[], object], str, str]] = {}
    lazy = callable(chart) and not isinstance(chart, alt.TopLevelMixin)
    made = chart if chart is None or lazy else (lambda: chart)
    slide: Optional[Callable[[], alt.TopLevelMixin]] = None  # the chart as exported (built only when clicked)
    if made is not None and isinstance(figure, str):  # a chart of several models or cases: a title, no one case
        slide = lambda: figures.titled(made(), figure, [f"Failure Lens · {name}"])  # noqa: E731
    elif made is not None and figure is not None:
        slide = lambda: figures.slide_chart(made(), *figure)  # noqa: E731
    if slide is not None:
        items["PNG"] = (lambda: figures.png_16x9(slide()), "image/png", "png")
        items["SVG"] = (lambda: figures.svg_16x9(slide()), "image/svg+xml", "svg")
    elif made is not None:
        items["PNG"] = (lambda: charts.to_png(made()), "image/png", "png")
        items["SVG"] = (lambda: charts.to_svg(made()), "image/svg+xml", "svg")
    if table is not None:
        items["CSV"] = (lambda: render.frame_csv(table), "text/csv", "csv")
    items.update(extra or {})
    with st.container(horizontal=True, gap="small"):
        for fmt, (make, mime, ext) in items.items():
            case_figure = figure is not None and not isinstance(figure, str)
            file_name = figure[0].file_name(name, ext) if case_figure else f"{slug(name)}.{ext}"
            st.download_button(f"⬇ {safe.plain(fmt)}", make, file_name=file_name, mime=mime, on_click="ignore",
                               key=f"dl:{key or name}:{fmt}")


def chart(c: alt.TopLevelMixin, name: str, table: Optional[pd.DataFrame] = None, key: str = "",
          stretch: bool = False, figure: Optional[Figure] = None) -> None:
    """An altair chart (as wide as its column, or its own width) with PNG / SVG / CSV downloads.

    Presentation mode fits every chart to its column (never wider than the screen) and scales its fonts; the
    downloads keep the chart as the engine made it."""
    present = bool(state.get(state.PRESENT))
    st.altair_chart(_projector_fonts(c) if present else c, width="stretch" if stretch or present else "content")
    downloads(name, chart=c, table=table, key=key, figure=figure)


def _projector_fonts(c: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Axis, legend and title fonts for a room: ~1.4x the screen defaults, labels never cut short."""
    s = 1.4
    return (c.configure_axis(labelFontSize=round(11 * s), titleFontSize=round(12 * s), labelLimit=0)
            .configure_legend(labelFontSize=round(11 * s), titleFontSize=round(12 * s), labelLimit=0)
            .configure_title(fontSize=round(14 * s)))


MISSING = "—"  # a missing value in a table on screen (the CSV keeps it empty)


def table(df: pd.DataFrame, name: str, key: str = "", **kw) -> None:
    """A table whose column titles are the glossary's plain names (the code and its definition on hover). In
    presentation mode a short table is plain HTML, whose text scales with the room (the interactive grid draws on
    a canvas at a fixed small size); its cells are Markdown there, so text cells are made plain. Missing values
    show as MISSING, with a line below that says what it means (never "None" or "NaN")."""
    plain = {c: glossary.title(c) for c in df.columns if isinstance(c, str) and glossary.term(c) is not None}
    if state.get(state.PRESENT) and not kw and len(df) <= 12 and len(df.columns) <= 8:
        st.table(_cells(df).rename(columns=plain), hide_index=True)
    else:
        config = {c: st.column_config.Column(t, help=f"{c}: {glossary.define(c)}") for c, t in plain.items()}
        config.update(kw.pop("column_config", None) or {})
        st.dataframe(df, hide_index=True, column_config=config, placeholder=MISSING, **kw)
    if df.isna().to_numpy().any():
        st.caption(f"{MISSING} no value: not computed or not applicable for that row (empty in the CSV).")
    downloads(name, table=df, key=key)


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """`df` for st.table: text made plain Markdown; a column with missing values as text, MISSING for them (a
    column holds one type)."""
    out = df.map(lambda v: safe.plain(v) if isinstance(v, str) else v)
    for c in df.columns[df.isna().any().to_numpy()]:
        out[c] = [MISSING if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in out[c]]
    return out


def run_task(task: str, label: str, work: Callable[[Callable[[str, int, int], None]], T]) -> Optional[T]:
    """Run long `work(progress)` inside st.status with a Stop button.

    Stop reruns the script; Streamlit interrupts the running one at its next progress update, so the work ends
    there and the next run shows a "stopped" note with a button to start again.
    """
    if state.get(state.STOPPED) == task:
        st.info(f"Stopped: {label}.")  # md-safe: the caller's label (run_task is scanned)
        if st.button("Start again", key=f"again:{task}"):
            state.put(state.STOPPED, "")
            st.rerun()
        return None
    box = st.empty()
    with box.container():
        st.button("Stop", icon=":material/stop_circle:", key=f"stop:{task}", on_click=state.put,
                  args=(state.STOPPED, task))
        with st.status(label, expanded=True):  # md-safe: the caller's label (run_task is scanned)
            bar = st.progress(0.0, text="starting")

            def progress(phase: str, done: int, total: int) -> None:
                bar.progress(min(done / total, 1.0) if total else 0.0, text=f"{phase} ({done}/{total})")

            try:
                out = work(progress)
            except FailureLensError as e:
                out, error = None, str(e)
            else:
                error = None
    box.empty()
    if error:
        st.error(safe.plain(error))
    return out
