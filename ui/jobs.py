"""Long engine calls (sweeps, studies) running in a thread of the server: the pages start one and only read it."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from engine.records import FailureLensError

log = logging.getLogger(__name__)
# call(resume, report(progress), should_stop() -> bool) -> summary: run_sweep / run_study with their config bound
Call = Callable[[bool, Callable[[Any], None], Callable[[], bool]], Any]


def duration(seconds: Optional[float]) -> str:
    """A job's elapsed time or time left in words ("3 min 05 s"; "…" while unknown)."""
    if seconds is None:
        return "…"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


@dataclass
class Job:
    what: str  # "sweep" / "study": for the messages and the log
    name: str  # the run id or study name
    config: Any
    call: Call
    cancel: threading.Event = field(default_factory=threading.Event)
    last: Any = None  # the latest progress record
    summary: Any = None
    error: Optional[str] = None
    thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, resume: bool) -> None:
        self.thread = threading.Thread(target=self._work, args=(resume,), name=f"{self.what}-{self.name}",
                                       daemon=True)
        self.thread.start()

    def _work(self, resume: bool) -> None:
        try:
            self.summary = self.call(resume, self._report, self.cancel.is_set)
        except FailureLensError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown on the page; the server goes on
            log.exception("%s %s failed", self.what, self.name)
            self.error = f"the {self.what} stopped on an unexpected error ({type(e).__name__}: {e})."

    def _report(self, progress: Any) -> None:
        self.last = progress
