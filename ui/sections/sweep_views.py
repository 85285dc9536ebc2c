"""The Sweeps page's parts: the example config, sweeps in a background thread (progress, time left, stop),
reading a results store, the category columns, one stored case with its labelling form, and the exports."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import pandas as pd
import streamlit as st

from engine import zoo
from engine.cases.categories import Category, Label, Outcome, Pattern, Suggestion
from engine.present import glossary, render
from engine.records import FailureLensError
from engine.runs.config import parse_sweep_config
from engine.runs.store import Store
from engine.runs.sweep import default_run_id, load_case, run_sweep
from ui import layout, safe, state, widgets
from ui.jobs import Job, duration

MAX_CONFIG_BYTES = 64 << 10
UPLOAD = "sw:upload"
NONE = "none"
COLUMNS = ["model_label", "benchmark", "case_id", "status", "logit_diff", "ref_rank", "target", "contrast", "outcome",
           "pattern", "labelled", "seg_total", "seg_instruction", "seg_query", "seg_answer", "error"]


def example_config() -> str:
    sizes = zoo.zoo_sizes()
    models = "\n".join(f"  - {{source: 'zoo:{s}', label: {s}}}" for s in dict.fromkeys([sizes[0], sizes[-1]])) \
        if sizes else "  - {source: 'zoo:xs', label: xs}"
    return ("# A small sweep over the built-in zoo: edit it (or load a YAML file) and press Start.\n"
            "name: zoo-demo\nmodels:\n" + models + "\n"
            "benchmarks:\n  - kind: zoo\n    filters: {limit: 12}\n"
            "compute:\n  heatmap: true\n"
            "store: runs/zoo-demo  # relative paths start at the folder the dashboard runs in\n")


def _use_form() -> None:
    """The form's Write button: its choices become the YAML beside it (an error names the missing choice)."""
    from engine.runs.form import SweepForm, sweep_yaml

    ss = st.session_state
    limit = ss.get("sw:form:limit")
    form = SweepForm(str(ss.get("sw:form:name") or ""), tuple(ss.get("sw:form:models") or ()),
                     str(ss.get("sw:form:bench") or "zoo"), str(ss.get("sw:form:path") or ""),
                     None if limit in (None, 0) else int(limit), tuple(ss.get("sw:form:compute") or ()),
                     str(ss.get("sw:form:store") or ""))
    try:
        state.put(state.SW_CONFIG, sweep_yaml(form, Path.cwd()))
        state.put(state.SW_FORM_ERROR, "")
    except FailureLensError as e:
        state.put(state.SW_FORM_ERROR, str(e))  # shown under the form on this run


def sweep_form() -> None:
    """Models, benchmark, how many cases, what to compute and where to store, as a form that writes the YAML
    (shown beside it, where power users edit everything else)."""
    from engine.cases.benchmarks import BENCHMARK_KINDS
    from engine.runs.form import COMPUTE, SweepForm, store_path

    loaded = state.model_params()
    models = list(dict.fromkeys([f"zoo:{s}" for s in zoo.zoo_sizes()] + loaded))
    words = {"graph": "attribution graph", "checks": "causal checks (decide the category)",
             "faithfulness": "faithfulness (masking)"}
    with st.form("sw:form", border=True):
        st.text_input("Run name", value="zoo-demo", key="sw:form:name", help="Names the run in its store.")
        st.multiselect("Models", models, default=models[:1] + models[-1:] if len(models) > 1 else models,
                       key="sw:form:models", help="Zoo models and the models loaded on the Models page.")
        c1, c2 = st.columns([1, 2])
        kinds = ["zoo"] + [k for k in BENCHMARK_KINDS if k != "zoo"]
        c1.selectbox("Benchmark", kinds, key="sw:form:bench",
                     help="zoo: the built-in benchmark; the others read a file.")
        c2.text_input("Benchmark file (not for zoo)", key="sw:form:path", placeholder="data/math.jsonl")
        st.number_input("Cases per benchmark (0: all)", 0, 100000, 12, key="sw:form:limit")
        st.pills("Also compute (the heatmap always)", list(COMPUTE), selection_mode="multi", default=["checks"],
                 format_func=words.get, key="sw:form:compute")  # md-safe: constant words
        st.text_input("Store folder", key="sw:form:store", placeholder="runs/<run name>",
                      help="Where the results land; a relative folder starts where the dashboard runs.")
        where = store_path(SweepForm(str(st.session_state.get("sw:form:name") or "zoo-demo"), (),
                                     store=str(st.session_state.get("sw:form:store") or "")), Path.cwd())
        st.caption(f"Results land in {safe.plain(where)}")
        st.form_submit_button("Write the config →", on_click=_use_form, type="primary")
    if state.get(state.SW_FORM_ERROR):
        st.error(safe.plain(state.get(state.SW_FORM_ERROR)))


def take_upload() -> None:
    """Callback of the file uploader: the file's text replaces the config (size-limited, UTF-8 only)."""
    up = st.session_state.get(UPLOAD)
    if up is None:
        return
    if up.size > MAX_CONFIG_BYTES:
        st.error(f"{safe.plain(up.name)} is {up.size // 1024:d} KiB; "
                 f"a sweep config may be at most {MAX_CONFIG_BYTES >> 10} KiB.")
        return
    try:
        state.put(state.SW_CONFIG, up.getvalue().decode("utf-8"))
    except UnicodeDecodeError:
        st.error(f"{safe.plain(up.name)} is not UTF-8 text; upload the YAML file of a sweep config.")


# ---------------------------------------------------------------- sweeps in the background
@st.cache_resource(show_spinner=False)
def jobs() -> dict[tuple[str, str], Job]:
    """Sweeps started from this server, by (store folder, run id); shared by every session."""
    return {}


def start(text: str, resume: bool) -> None:
    """Parse the config and start its sweep in a thread; errors (naming key and line) go to st.error. The status
    shown below (`watch`) is then this sweep's, or none when it was refused: never an earlier sweep's."""
    earlier = jobs().get(state.get(state.SW_JOB))
    if earlier is None or not earlier.running:  # a running sweep keeps its progress and Stop button in view
        state.put(state.SW_JOB, ())
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        st.error(f"The config is longer than {MAX_CONFIG_BYTES >> 10} KiB; shorten it.")
        return
    try:
        config = parse_sweep_config(text, "sweep config", Path.cwd())
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    busy = [j for j in jobs().values() if j.running]
    if busy:
        st.error(f"Sweep {safe.quoted(busy[0].name)} is still running; stop it or wait until it is done.")
        return
    run_id = default_run_id(config)
    job = Job("sweep", run_id, config,
              lambda resume_, report, stop: run_sweep(config, resume_, report, stop, run_id))
    if not resume and _has_results(config.store, job.name):
        st.error(f"Run {safe.quoted(job.name)} already has results in {safe.plain(config.store)}. "
                 "Turn on Resume to continue it, or "
                 "change `name:` in the config to start a new run.")
        return
    jobs()[(config.store, job.name)] = job
    job.start(resume)
    state.put(state.SW_JOB, (config.store, job.name))
    state.put(state.STORE, config.store)
    state.put(state.RUN, job.name)


def _has_results(folder: str, run_id: str) -> bool:
    try:
        with Store(folder, readonly=True) as s:
            return bool(s.result_rows(run_id))
    except FailureLensError:  # no store there yet
        return False


@st.fragment(run_every=1.0)
def _live(key: tuple[str, str]) -> None:
    job = jobs().get(key)
    if job is None:
        return
    if not job.running:
        st.rerun(scope="app")  # done: redraw the page with the final summary and the new results
    p = job.last
    if p is None:
        st.progress(0.0, text=f"Sweep {job.name}: planning …")
    else:
        what = f"loading {p.model}" if p.phase == "load" else f"{p.model}: case {p.case} of {p.cases}"
        st.progress(p.done / p.total if p.total else 0.0,
                    text=f"Sweep {job.name}: {what} · {p.done} of {p.total} in all · {duration(p.elapsed_s)} "
                         f"elapsed · about {duration(p.eta_s)} left")
    st.button("Stop", icon=":material/stop_circle:", key="sw:stop", on_click=job.cancel.set,
              disabled=job.cancel.is_set(),
              help="Stops after the case being computed; everything stored so far stays. Resume continues it.")


def watch() -> None:
    """Progress of the sweep this session started (live while it runs), or how it ended; without one (a link,
    a reloaded page), the progress of a sweep running on the store and run browsed. Browsing another run never
    brings back an earlier sweep's message."""
    key = state.get(state.SW_JOB) or (state.get(state.STORE), state.get(state.RUN))
    job = jobs().get(key)
    if job is None or not (job.running or state.get(state.SW_JOB)):
        return
    if job.running:
        _live(key)
    elif job.error:
        st.error(f"Sweep {safe.plain(job.name)}: {safe.plain(job.error)}")
    elif job.summary is not None:
        s = job.summary
        counts = ", ".join(f"{n} {k}" for k, n in s.statuses.items()) or "nothing new"
        if s.cancelled:
            st.info(f"Sweep {safe.plain(s.run_id)} stopped: {s.computed:d} computed ({safe.plain(counts)}), "
                    f"{s.skipped:d} stored before; "
                    f"{s.skipped + s.computed:d} of {s.total:d} stored. Turn on Resume and start it again to continue.")
        else:
            st.success(f"Sweep {safe.plain(s.run_id)} finished in {safe.plain(duration(s.elapsed_s))}: "
                       f"{s.computed:d} computed ({safe.plain(counts)}); "
                       f"{s.skipped:d} were already stored.")


# ---------------------------------------------------------------- browsing a store
@st.cache_resource(max_entries=4, show_spinner=False)
def _reader(folder: str) -> Store:
    return Store(folder, readonly=True)  # WAL: sees every result committed since, also while a sweep writes


def open_store(folder: str) -> Optional[Store]:
    path = Path(folder).expanduser().resolve()
    try:
        return _reader(str(path))
    except FailureLensError as e:
        if any(j.running and Path(j.config.store).resolve() == path for j in jobs().values()):
            st.info("The sweep is setting up this store; its results appear here as they are stored.")
        else:
            st.error(safe.plain(e))
        return None


def with_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Adds outcome / pattern and `labelled` (what decided them) by engine.cases.outcome: the person's label,
    else the causal checks, else the heuristic ("guessed from the heatmap alone")."""
    from engine.cases.outcome import frame_outcomes

    out = frame_outcomes(df, NONE)
    return out.rename(columns={"decided_by": "labelled"})


def in_words(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: outcome and pattern codes as the glossary's plain names (the run's CSV and Parquet
    exports keep the codes)."""
    return df.assign(**{c: df[c].map(lambda v: glossary.name(v) if isinstance(v, str) else v)
                        for c in ("outcome", "pattern") if c in df.columns})


def without_rule_code(reason: str) -> str:
    """A suggestion's reason in words: "O2: total relevance …" -> "Total relevance …" (engine.cases.categories)."""
    import re

    text = re.sub(r"^[OP]\d+: ", "", reason)
    return text[:1].upper() + text[1:]


def case_key(model: str, case_id: str) -> str:
    return f"{model}::{case_id}"


def stored_heatmap(store: Store, run_id: str, row: pd.Series) -> None:
    """The stored heatmap of one result (the store refuses array paths outside its folder: shown as an error)."""
    try:
        case = load_case(store, run_id, row["model_label"], row["case_id"])
    except FailureLensError as e:
        st.error(safe.plain(e))
        return
    if case is None or not len(case.relevance):
        st.info("This result has no stored heatmap (computed without `heatmap: true`).")
        return
    shown = render.shown_mask(len(case.tokens), case.special_mask, state.get(state.HIDE_FIRST),
                              state.get(state.HIDE_SPECIAL))
    values = render.normalise(case.relevance.tolist(), shown, state.get(state.NORM))
    st.html(render.legend_html(str(row["target"]), str(row["contrast"]), state.get(state.NORM)))
    st.html(render.heatmap_fragment(case.tokens, values, case.relevance.tolist(), shown, font_scale=layout.scale()))
    title = f"{row['model_label']} · {row['case_id']}: {row['target']!r} vs {row['contrast']!r}"
    layout.downloads(f"heatmap_{row['model_label']}_{row['case_id']}", key="sw:heatmap", extra={
        "HTML": (lambda: render.heatmap_html(case.tokens, values, case.relevance.tolist(), shown, title=title,
                                             target=str(row["target"]), contrast=str(row["contrast"]),
                                             norm=state.get(state.NORM), notes=[f"Δℓ = {row['logit_diff']:+.3f}"]),
                 "text/html", "html")})


def _index(options: list[str], value: str) -> int:
    return options.index(value) if value in options else 0


def label_key(folder: str, run_id: str, model: str, case_id: str) -> str:
    """The labelling form's key: store, run and case, so that a form filled in for one run can never be saved
    into another (its widgets, values and callback all belong to that one run and case)."""
    return f"{folder}::{run_id}::{case_key(model, case_id)}"


def label_form(folder: str, run_id: str, row: pd.Series, suggestion: Optional[dict]) -> None:
    """Confirm the category shown or set another; stored with its time (Store.add_label keeps the history)."""
    sug = Suggestion.from_dict(suggestion) if suggestion else None
    outcomes, patterns = [NONE] + [o.value for o in Outcome], [NONE] + [p.value for p in Pattern]
    key = label_key(folder, run_id, row["model_label"], row["case_id"])

    def save(outcome: str, pattern: str, author: str = "", note: str = "") -> None:
        human = Category(Outcome(outcome) if outcome != NONE else None, Pattern(pattern) if pattern != NONE else None)
        try:
            with Store(folder) as s:
                s.add_label(run_id, Label.now(row["case_id"], row["model_label"], sug, human, author, note))
        except FailureLensError as e:
            st.error(safe.plain(e))
            return
        st.toast(f"Label saved in run {safe.quoted(run_id)}: {safe.plain(glossary.label(outcome))} / "
                 f"{safe.plain(glossary.label(pattern))}")

    if row.get("labelled") != "person":
        shown = f"{glossary.name(row['outcome'])} / {glossary.name(row['pattern'])}"
        st.button(f"✓ Confirm: {safe.plain(shown)}",
                  key=f"sw:confirm:{key}", help=f"The category shown ({safe.plain(row.get('labelled', ''))}), "
                                                "confirmed by you.",
                  on_click=save, args=(row["outcome"], row["pattern"]))
    with st.form(f"sw:label:{key}", border=True):
        c1, c2 = st.columns(2)
        c1.selectbox("Outcome", outcomes, index=_index(outcomes, row["outcome"]), key=f"sw:outcome:{key}",
                     format_func=glossary.label, help=glossary.define("outcome"))
        c2.selectbox("Pattern", patterns, index=_index(patterns, row["pattern"]), key=f"sw:pattern:{key}",
                     format_func=glossary.label, help=glossary.define("pattern"))
        c1.text_input("Your name (optional)", key=f"sw:author:{key}")
        c2.text_input("Note (optional)", key=f"sw:note:{key}")
        st.form_submit_button("Save label", on_click=lambda: save(
            *(st.session_state[f"sw:{k}:{key}"] for k in ("outcome", "pattern", "author", "note"))))


def exports(store: Store, run_id: str, df: pd.DataFrame) -> None:
    """The whole run as CSV, Parquet and the one-file HTML report (made when clicked)."""
    from engine.runs.report import run_report

    def parquet() -> bytes:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()

    layout.downloads(f"run_{run_id}", key="sw:run", extra={
        "CSV": (lambda: render.frame_csv(df), "text/csv", "csv"),
        "Parquet": (parquet, "application/vnd.apache.parquet", "parquet"),
        "HTML report": (lambda: run_report(store, run_id), "text/html", "html")})


def filters(df: pd.DataFrame) -> pd.DataFrame:
    """Model, benchmark and category filters (empty: all); returns the rows kept."""
    c1, c2, c3 = st.columns(3)
    for col, (label, key, column) in zip((c1, c2, c3), (("Models", state.SW_MODELS, "model_label"),
                                                         ("Benchmarks", state.SW_BENCH, "benchmark"),
                                                         ("Outcome", state.SW_CAT, "outcome"))):
        with col:
            widgets.multiselect(label, key,  # md-safe: label from the tuple above
                                sorted(df[column].dropna().astype(str).unique()), placeholder="all",
                                format_func=glossary.label if column == "outcome" else str)
    keep = pd.Series(True, index=df.index)
    for key, column in ((state.SW_MODELS, "model_label"), (state.SW_BENCH, "benchmark"), (state.SW_CAT, "outcome")):
        if state.get(key):
            keep &= df[column].astype(str).isin(state.get(key))
    return df[keep]
