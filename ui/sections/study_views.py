"""The Study page's parts: start the zoo study in the background (no YAML), follow it, open a finished study from its
store (cached tables), the headline chart, the claims, each figure with its table, and the downloads."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import zipfile
from pathlib import Path
from typing import Optional

import pandas as pd
import streamlit as st

from engine.present import render
from engine.records import FailureLensError
from engine.runs import study_charts as ch
from engine.runs.store import DB_NAME, Store
from engine.runs.study import (
    PHASE_WORDS,
    PHASES,
    StudyConfig,
    load_study_config,
    run_study,
)
from engine.runs.study_figures import (
    FIGURES,
    StudyTables,
    load_cached,
    save_cached,
    study_runs,
    study_stamp,
    study_tables,
)
from ui import layout, navigation, safe, state
from ui.jobs import Job, duration

ZOO_CONFIG = navigation.ROOT / "studies" / "zoo.yaml"  # the repository root is defined once, in ui.navigation
STORES_ENV = "FAILURE_LENS_STUDIES"  # the folder for the stores of studies started from the page (tests: a tmp dir)
SIZES = {"tiny": "Tiny: 3 failures each of instruction and math; xs vs s and three checkpoints of m (under a minute)",
         "quick": "Quick: 5 failures per family (about 2 minutes on 2 CPU cores)",
         "full": "Full: as studies/zoo.yaml (50 per family, 20 retrieval; about 15 minutes)"}


def zoo_config(size: str) -> StudyConfig:
    """The zoo study of studies/zoo.yaml; "quick" and "tiny" are smaller ones, each in its own store. The stores
    go under $FAILURE_LENS_STUDIES when it is set, else where zoo.yaml's `store:` says."""
    cfg = _zoo_yaml(ZOO_CONFIG.stat().st_mtime_ns if ZOO_CONFIG.exists() else 0)
    if size == "quick":
        cfg = dataclasses.replace(cfg, name="zoo-quick", failures_per_family=5)
    elif size == "tiny":  # a first look, or a demo: short prompts only, every figure still drawn
        cfg = dataclasses.replace(cfg, name="zoo-tiny", families=("instruction", "math"), cases_per_family=20,
                                  failures_per_family=3, sizes=cfg.sizes[:1],
                                  checkpoints=_three(cfg.checkpoints))
    base = Path(os.environ.get(STORES_ENV) or Path(cfg.store).parent).expanduser()
    return cfg if size == "full" and not os.environ.get(STORES_ENV) else dataclasses.replace(
        cfg, store=str(base / f"{cfg.name}-study"))


@st.cache_data(max_entries=2, show_spinner=False)
def _zoo_yaml(mtime_ns: int) -> StudyConfig:
    """studies/zoo.yaml, parsed once per version of the file (the page asks for it on every run)."""
    return load_study_config(ZOO_CONFIG)


def _three(points: tuple) -> tuple:
    """The first checkpoint, one a quarter into training (Fig 7 asks whether the change comes early) and the last."""
    return tuple({p.label: p for p in (points[0], points[len(points) // 4], points[-1])}.values()) if points else ()


def default_store() -> str:
    """The full zoo study's store when it holds a study, else the quick one's, else the tiny one's."""
    try:
        stores = [zoo_config(size).store for size in ("full", "quick", "tiny")]
    except FailureLensError:
        return ""
    return next((s for s in stores if studies(s)), stores[1])


# ---------------------------------------------------------------- a study in the background
@st.cache_resource(show_spinner=False)
def jobs() -> dict[str, Job]:
    """Studies started from this server, by store folder; shared by every session."""
    return {}


def start(size: str) -> None:
    try:
        cfg = zoo_config(size)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    if any(j.running for j in jobs().values()):
        st.error("A study is still running; stop it or wait until it is done.")
        return
    job = Job("study", cfg.name, cfg, lambda resume, report, stop: run_study(cfg, resume, report, stop))
    jobs()[cfg.store] = job
    job.start(resume=True)
    state.put(state.ST_STORE, cfg.store)
    state.put(state.ST_NAME, cfg.name)


@st.fragment(run_every=1.0)
def _live(folder: str) -> None:
    job = jobs().get(folder)
    if job is None:
        return
    if not job.running:
        st.rerun(scope="app")
    p = job.last
    if p is None:
        st.progress(0.0, text=f"Study {safe.plain(job.config.name)}: choosing the cases …")
    else:
        s = p.sweep
        what = f"loading {s.model}" if s.phase == "load" else f"{s.model}: case {s.case} of {s.cases}"
        st.progress(s.done / s.total if s.total else 0.0,
                    text=f"Phase {p.index} of {len(PHASES)} ({safe.plain(PHASE_WORDS[p.phase])}): {safe.plain(what)} · "
                         f"{s.done} of {s.total} · {duration(s.elapsed_s)} elapsed · about {duration(s.eta_s)} left "
                         f"in this phase, {_whole(p.eta_s)}")
    st.button("Stop", icon=":material/stop_circle:", key="st:stop", on_click=job.cancel.set,
              disabled=job.cancel.is_set(),
              help="Stops after the case being computed; start again to continue where it stopped.")


def _whole(eta_s) -> str:
    return "the whole study: estimated once a case is computed" if eta_s is None else \
        f"about {duration(eta_s)} for the whole study"


def watch(folder: str) -> None:
    job = jobs().get(folder)
    if job is None:
        return
    if job.running:
        _live(folder)
    elif job.error:
        st.error(f"Study {safe.plain(job.config.name)}: {safe.plain(job.error)}")
    elif job.summary is not None and job.summary.cancelled:
        st.info(f"Study {safe.plain(job.config.name)} stopped; start it again to continue.")
    elif job.summary is not None:
        st.success(f"Study {safe.plain(job.config.name)} finished in {safe.plain(duration(job.summary.elapsed_s))}.")


# ---------------------------------------------------------------- opening a stored study
def studies(folder: str) -> list[str]:
    """The studies in a store folder ([] when there is no store there yet, or it cannot be read: see problem)."""
    try:
        with Store(Path(folder).expanduser(), readonly=True) as s:
            return study_runs(s)
    except FailureLensError:
        return []


def problem(folder: str) -> str:
    """Why a store that exists in `folder` cannot be read ("" when it can, or when there is none)."""
    if not (Path(folder).expanduser() / DB_NAME).exists():
        return ""
    try:
        with Store(Path(folder).expanduser(), readonly=True):
            return ""
    except FailureLensError as e:
        return str(e)


@st.cache_data(max_entries=4, show_spinner="Reading the study from its store …")
def _tables(folder: str, name: str, stamp: tuple) -> StudyTables:
    """From the cache beside the study when it matches the store (written by the CLI or by an earlier open),
    else computed and, where the folder is writable, cached there."""
    cache = Path(folder) / f"study-{name}" / "tables"
    t = load_cached(cache, list(stamp))
    if t is None:
        with Store(folder, readonly=True) as s:
            t = study_tables(s, name)
        with contextlib.suppress(OSError, FailureLensError):
            save_cached(t, cache, list(stamp))
    return t


def tables(folder: str, name: str) -> Optional[StudyTables]:
    """The study's tables and claims, cached until it stores something new; errors shown, None returned."""
    try:
        folder = str(Path(folder).expanduser().resolve())
        with Store(folder, readonly=True) as s:
            stamp = tuple(study_stamp(s, name))
        return _tables(folder, name, stamp)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _spec(make: str, df: pd.DataFrame, scale: float) -> dict:
    """The Vega-Lite spec of a study chart (engine.runs.study_charts.<make>) of a small table: re-opening a study
    skips building and validating the altair chart (most of the page's own time before)."""
    return getattr(ch, make)(df, scale).to_dict()


def headline(t: StudyTables) -> None:
    st.subheader("What share of the failures does attribution explain?")
    st.vega_lite_chart(_spec("headline_chart", t.tables["headline"], layout.scale()), width="content")
    st.caption(safe.plain(t.case_set()) + " Other models: the same cases and token pair; fixed = Δℓ ≤ 0 there; "
               "where they still fail the outcome rests on the heuristic (the table's on_heuristic).")
    layout.downloads(f"study_{t.name}_headline", chart=lambda: ch.headline_chart(t.tables["headline"]),
                     table=t.tables["headline"], key="st:headline", figure=f"Study {t.name}: how the failures end")


def claims(t: StudyTables) -> None:
    st.subheader("The reference study's claims, on this run")
    st.caption("Each figure's claim (the paper's finding), this run's answer and the numbers that decide it; the "
               "figures below are titled the same way.")
    layout.table(pd.DataFrame([c.to_dict() for c in t.claims])[["figure", "answer", "in_words", "claim"]],
                 f"study_{t.name}_claims", key="st:claims",
                 column_config={"figure": st.column_config.TextColumn(width="small"),
                                "answer": st.column_config.TextColumn(width="small"),
                                "in_words": st.column_config.TextColumn("this run", width="large")})


def figures(folder: str, t: StudyTables) -> None:
    """Each figure in an expander titled with its claim and answer; its chart and tables are made and sent only
    while it is open (re-opening a finished study draws none of them), the chart cached per state of the store."""
    by = {c.figure: c for c in t.claims}
    for fig in FIGURES:
        c = by[fig]
        with st.expander(f"{safe.plain(fig)}: {safe.plain(c.claim)} — {safe.plain(c.answer)}",
                         key=f"st:fig:{fig}", on_change="rerun") as box:
            if not box.open:
                continue
            st.markdown(f"**{safe.plain(c.answer)}** · {safe.plain(c.words)}")
            st.caption(safe.plain(t.case_set()))
            view = _figure(folder, t, fig)
            if view is not None and view.chart is not None:
                st.vega_lite_chart(view.chart, width="content")
            if view is not None and view.note:
                st.info(safe.plain(view.note))
            for name in (view.tables if view is not None else ()):
                layout.table(t.tables[name], f"study_{t.name}_{name}", key=f"st:{name}", height=220)


def _figure(folder: str, t: StudyTables, fig: str):
    try:
        with Store(folder, readonly=True) as s:
            stamp = tuple(study_stamp(s, t.name))
        return _figure_view(str(Path(folder).expanduser().resolve()), t.name, stamp, fig, t)
    except FailureLensError as e:
        st.error(safe.plain(e))
        return None


@st.cache_data(max_entries=32, show_spinner="Drawing the figure …")
def _figure_view(folder: str, name: str, stamp: tuple, fig: str, _t: StudyTables):
    """One figure's view with its chart as a Vega-Lite spec (cached by study and state of the store: `_t` is the
    tables of that state)."""
    from engine.runs.study_report import figure_views

    with Store(folder, readonly=True) as s:
        view = figure_views(s, _t, only=fig)[fig]
    return dataclasses.replace(view, chart=None if view.chart is None else view.chart.to_dict())


def patterns(t: StudyTables) -> None:
    st.subheader("Patterns across failures")
    c1, c2 = st.columns(2, gap="large")
    with c1:
        st.caption("Tokens that recur among each failure's three strongest red (towards the wrong token) and blue "
                   "(towards the right one) tokens, per family, with the cases to open on the Sweeps page.")
        layout.table(t.tables["patterns_tokens"], f"study_{t.name}_tokens", key="st:tokens", height=260)
    with c2:
        sp = t.tables["patterns_special"]
        if len(sp):
            st.vega_lite_chart(_spec("special_chart", sp, layout.scale()), width="content")
            layout.downloads(f"study_{t.name}_special", chart=lambda: ch.special_chart(sp), table=sp,
                             key="st:special")
        layout.table(t.tables["patterns_positions"], f"study_{t.name}_positions", key="st:positions")


def csv_zip(t: StudyTables) -> bytes:
    frames = {**t.tables, "failures": t.failures, "claims": pd.DataFrame([c.to_dict() for c in t.claims])}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, df in frames.items():
            z.writestr(f"{name}.csv", render.frame_csv(df))
    return buf.getvalue()


def downloads(folder: str, t: StudyTables) -> None:
    from engine.runs import study_report as sr

    def with_store(make):
        def run():
            with Store(folder, readonly=True) as s:
                return make(s, t)
        return run

    layout.downloads(f"study_{t.name}", key="st:out", extra={
        "HTML report": (with_store(sr.report_html), "text/html", "html"),
        "Deck (PPTX)": (with_store(sr.deck_pptx),
                        "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"),
        "CSV (zip)": (lambda: csv_zip(t), "application/zip", "zip"),
        "Claims (JSON)": (lambda: sr.claims_json(t), "application/json", "json")})
