"""`python -m engine sweep CONFIG [--resume] [--run-id ID] [--ray auto|ADDRESS]` and `sweep-report`.

Exit codes: 0 done; 2 a problem to fix (bad config, existing run without --resume, no Ray, cases lost to dying
workers); 130 stopped by Ctrl-C. A first Ctrl-C finishes and stores the current case, then stops (continue
with --resume); a second stops at once. The store stays consistent either way (each case is one transaction).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:  # the CLI parser is built on every command: keep imports lazy
    from engine.runs.sweep import RunSummary, SweepProgress


def _clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def tally_line(s: RunSummary) -> str:
    """What a run did, in words: "12 computed (ok 11, error 1), 0 already stored, 12 in all, 0:42"."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items())) or "nothing new"
    return f"{s.computed} computed ({counts}), {s.skipped} already stored, {s.total} in all, {_clock(s.elapsed_s)}"


def ended(lost: tuple[str, ...], cancelled: bool) -> int:
    """The exit code of a sweep or study that returned: cases lost to dying workers are an error (resume retries
    them); stopped early is 130 (continue with --resume); else 0."""
    from engine.records import FailureLensError

    if lost:
        raise FailureLensError(f"{len(lost)} cases were not computed because their workers kept dying "
                               f"(first: {lost[0]}); run again with --resume to retry them.")
    if cancelled:
        print("stopped early; continue with --resume.", file=sys.stderr)
        return 130
    return 0


class TerminalProgress:
    """A one-line progress bar with time left on stderr: redrawn in place on a terminal, else a plain line
    at most every `every` seconds (and at each model load and at the end), so logs stay readable."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 24, every: float = 10.0):
        self.stream, self.width, self.every = stream or sys.stderr, width, every
        self.tty = self.stream.isatty()
        self.last, self.shown = 0.0, 0

    def line(self, p: SweepProgress) -> str:
        frac = p.done / p.total if p.total else 1.0
        bar = "#" * round(frac * self.width) + "-" * (self.width - round(frac * self.width))
        where = "loading model" if p.phase == "load" else f"case {p.case}/{p.cases}"
        who = f"  {p.model}: {where}" if p.model else ""
        return (f"[{bar}] {p.done}/{p.total} {frac:4.0%}{who}  elapsed {_clock(p.elapsed_s)}  "
                f"left {_clock(p.eta_s)}")

    def __call__(self, p: SweepProgress) -> None:
        text = self.line(p)
        if self.tty:
            self.stream.write("\r" + text.ljust(self.shown) + ("\n" if p.phase == "done" else ""))
            self.shown = len(text)
        elif p.phase != "case" or time.monotonic() - self.last >= self.every:
            self.stream.write(text + "\n")
            self.last = time.monotonic()
        self.stream.flush()


class _CtrlC:
    """First Ctrl-C: cancel between cases. Second: KeyboardInterrupt as usual."""

    def __init__(self):
        self.event = threading.Event()
        self.old = None

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after the current case (Ctrl-C again to stop now) ...", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def register(sub, commands, model_args, objective_args, load, token) -> None:
    p = sub.add_parser("sweep", help="run a sweep config into its store (resumable; local or on Ray)")
    p.add_argument("config", help="sweep YAML file")
    p.add_argument("--resume", action="store_true", help="continue the run: skip every case already stored")
    p.add_argument("--run-id", help="run id in the store (default: the config's name)")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run on Ray: 'auto' (the cluster of this machine, else a local Ray) or a cluster address")
    p.add_argument("--gpus-per-actor", type=float, help="GPUs per model actor with --ray (default: config, else 1 "
                                                        "when the cluster has GPUs)")
    p.add_argument("--report", metavar="FILE.html", help="write the run's HTML report at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a) -> int:
        from engine.records import FailureLensError
        from engine.runs.config import load_sweep_config
        from engine.runs.sweep import run_sweep

        config = load_sweep_config(a.config)
        if a.report:
            from engine.files import check_target

            check_target(a.report, "report")  # before the sweep, not after hours of it
        if a.gpus_per_actor is not None and not a.ray:
            raise FailureLensError("--gpus-per-actor only applies with --ray; add --ray auto or drop it.")
        bar = None if a.quiet else TerminalProgress()
        with _CtrlC() as stop:
            if a.ray:
                from engine.runs.ray import run_sweep_ray

                summary = run_sweep_ray(config, a.ray, resume=a.resume, run_id=a.run_id, progress=bar,
                                        cancel=stop.event.is_set, gpus_per_actor=a.gpus_per_actor)
            else:
                summary = run_sweep(config, resume=a.resume, progress=bar, cancel=stop.event.is_set, run_id=a.run_id)
        print(f"run {summary.run_id!r} in {summary.store}: {tally_line(summary)}")
        if a.report:
            _write_report(summary.store, summary.run_id, Path(a.report))
        return ended(summary.lost, summary.cancelled)

    commands["sweep"] = run

    r = sub.add_parser("sweep-report", help="one-file HTML report of a stored run")
    r.add_argument("store", help="store folder")
    r.add_argument("--run-id", help="default: the only run in the store")
    r.add_argument("--out", required=True, help="output .html file")

    def report(a) -> int:
        from engine.records import FailureLensError
        from engine.runs.store import Store

        with Store(a.store, readonly=True) as store:
            runs = [x["run_id"] for x in store.runs()]
        if a.run_id is None and len(runs) != 1:
            raise FailureLensError(f"{a.store} holds {len(runs)} runs ({', '.join(runs) or 'none'}); pick one with "
                                   "--run-id.")
        _write_report(a.store, a.run_id or runs[0], Path(a.out))
        return 0

    commands["sweep-report"] = report


def _write_report(folder: str, run_id: str, out: Path) -> None:
    from engine.files import write_atomic
    from engine.runs.report import run_report
    from engine.runs.store import Store

    with Store(folder, readonly=True) as store:
        text = run_report(store, run_id)
    write_atomic(out, text, "report")
    print(f"wrote {out}")
