"""`python -m engine study CONFIG [--resume] [--ray auto|ADDR] [--report F.html] [--deck F.pptx] [--csv DIR]
[--json F.json]`: run or resume a study (engine.runs.study), then write its outputs from the store.

Exit codes as for `sweep`: 0 done; 2 a problem to fix; 130 stopped by Ctrl-C (continue with --resume).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from engine.runs.cli import TerminalProgress, _clock, _CtrlC, ended, tally_line


class StudyBar(TerminalProgress):
    """The sweep progress bar with the study's phase in front and the whole study's time left (engine.runs.study_eta):
    "phase 2/3 reference [####----] ... left 0:40  study left 6:10"."""

    phase, study_left = "", None

    def line(self, p) -> str:
        return f"{self.phase} {super().line(p)}  study left {_clock(self.study_left)}"

    def __call__(self, sp) -> None:  # a StudyProgress
        from engine.runs.study import PHASES

        self.phase, self.study_left = f"phase {sp.index}/{len(PHASES)} {sp.phase}", sp.eta_s
        super().__call__(sp.sweep)


def write_outputs(folder: str, name: str, report=None, deck=None, csv=None, claims=None) -> None:
    """Regenerate the figures from the store and write the requested files (each atomically)."""
    from engine.files import write_atomic
    from engine.records import FailureLensError
    from engine.runs import study_report as sr
    from engine.runs.store import Store
    from engine.runs.study_figures import save_cached, study_stamp, study_tables

    with Store(folder, readonly=True) as store:
        t = study_tables(store, name)
        with contextlib.suppress(OSError, FailureLensError):  # the page re-opens the study from this cache
            save_cached(t, Path(folder) / f"study-{name}" / "tables", study_stamp(store, name))
        views = sr.figure_views(store, t) if report or deck else None
        if report:
            print(f"wrote {write_atomic(Path(report), sr.report_html(store, t, views), 'report')}")
        if deck:
            print(f"wrote {write_atomic(Path(deck), sr.deck_pptx(store, t, views), 'deck')}")
    if csv:
        print(f"wrote {len(sr.write_csvs(t, csv))} CSV files to {csv}")
    if claims:
        print(f"wrote {write_atomic(Path(claims), sr.claims_json(t), 'claims')}")
    for c in t.claims:
        print(f"{c.figure}: {c.answer:13s} {c.words}")


def register(sub, commands, model_args, objective_args, load, token) -> None:
    p = sub.add_parser("study", help="run a study (reference failures x sizes x checkpoints) and write its figures")
    p.add_argument("config", help="study YAML file (studies/zoo.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the study: skip everything already stored")
    p.add_argument("--ray", metavar="auto|ADDRESS", help="run each phase on Ray (as `sweep --ray`)")
    p.add_argument("--report", metavar="FILE.html", help="one-file offline HTML report")
    p.add_argument("--deck", metavar="FILE.pptx", help="PowerPoint deck, one slide per figure")
    p.add_argument("--csv", metavar="FOLDER", help="every table behind the figures as CSV files")
    p.add_argument("--json", metavar="FILE.json", help="the claims: [{figure, claim, answer, number}]")
    p.add_argument("--figures-only", action="store_true", help="do not run: write the outputs of the stored study")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a) -> int:
        from engine.files import check_target
        from engine.runs.study import load_study_config, run_study

        cfg = load_study_config(a.config)
        for path, what in ((a.report, "report"), (a.deck, "deck"), (a.json, "claims")):
            if path:
                check_target(path, what)  # before the study, not after it
        if not a.figures_only:
            with _CtrlC() as stop:
                s = run_study(cfg, a.resume, None if a.quiet else StudyBar(), stop.event.is_set, a.ray)
            for ph in s.phases:
                print(f"{ph.run_id}: {tally_line(ph)}")
            print(f"study {s.name!r} in {s.store}: {_clock(s.elapsed_s)}")
            code = ended(s.lost, s.cancelled)
            if code:
                return code
        write_outputs(cfg.store, cfg.name, a.report, a.deck, a.csv, a.json)
        return 0

    commands["study"] = run
