"""A notebook of notes on cases: a hypothesis in words, a category from the glossary, a status and who wrote it.

Kept in one local SQLite file in WAL mode, beside the prompt store (engine.runs.prompts):
$FAILURE_LENS_NOTES, else <the prompt store's parent>/notes.sqlite (~/.cache/failure-lens/notes.sqlite).
Several people on one server write at once without losing a note: every call opens its own connection,
writes in one short `BEGIN IMMEDIATE` transaction, and waits (busy timeout) for the others instead of failing.
A note is keyed by the model (its source, e.g. "zoo:l") and the case ("l/eval-math-00014", or "ph:<hash>" of
an own prompt: `case_key`).
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

from engine.cases.categories import Outcome, Pattern
from engine.records import FailureLensError

STATUSES = ("open", "confirmed", "rejected")
CATEGORIES = ("", *(o.value for o in Outcome), *(p.value for p in Pattern))  # glossary codes; "" = none yet
MAX_HYPOTHESIS = 4000
MAX_NAME = 200
BUSY_MS = 60_000
SCHEMA = """CREATE TABLE IF NOT EXISTS notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, case_key TEXT NOT NULL, hypothesis TEXT NOT NULL,
  category TEXT NOT NULL, status TEXT NOT NULL, author TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS notes_case ON notes (model, case_key);"""


@dataclass(frozen=True)
class Note:
    model: str
    case: str
    hypothesis: str
    category: str = ""
    status: str = "open"
    author: str = ""
    created: float = 0.0
    id: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_note(note: Note) -> Note:
    """The note if every field is usable; else a FailureLensError naming the field and what to write."""
    if not isinstance(note.hypothesis, str) or not note.hypothesis.strip():
        raise FailureLensError("The note is empty: write the hypothesis in words.")
    if len(note.hypothesis) > MAX_HYPOTHESIS:
        raise FailureLensError(f"The note is {len(note.hypothesis):,} characters, more than {MAX_HYPOTHESIS:,}; "
                               "shorten it.")
    if note.category not in CATEGORIES:
        raise FailureLensError(f"Unknown category {str(note.category)[:40]!r}; use one of "
                               f"{', '.join(c for c in CATEGORIES if c)} (or none).")
    if note.status not in STATUSES:
        raise FailureLensError(f"Unknown status {str(note.status)[:40]!r}; use one of {', '.join(STATUSES)}.")
    for what, v in (("author", note.author), ("model", note.model), ("case", note.case)):
        if not isinstance(v, str) or len(v) > MAX_NAME:
            raise FailureLensError(f"The {what} must be text of at most {MAX_NAME} characters.")
    if not note.model or not note.case:
        raise FailureLensError("A note belongs to a model and a case; open a case first.")
    return note


def case_key(case: str, prompt: str) -> str:
    """The case a note is filed under: the zoo case id, else the own prompt's content hash."""
    from engine.runs.prompts import prompt_hash

    return case if case else f"ph:{prompt_hash(prompt)}"


def default_path() -> Path:
    from engine.runs.prompts import default_folder

    env = os.environ.get("FAILURE_LENS_NOTES")
    return Path(env) if env else default_folder().parent / "notes.sqlite"


class Notebook:
    """The notes in one SQLite file (see the module docstring); safe to use from many threads and processes."""

    def __init__(self, path: Union[str, Path, None] = None):
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from None

    def _error(self, e: Exception) -> FailureLensError:
        return FailureLensError(f"Cannot use the notebook {self.path}: {e}. Set FAILURE_LENS_NOTES to a file in a "
                                "folder you can write to.")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        return db

    def _write(self, sql: str, args: tuple) -> int:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock upgrading a read lock later
            cur = db.execute(sql, args)
            db.execute("COMMIT")
            return int(cur.lastrowid or cur.rowcount)
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error(e) from None
        finally:
            db.close()

    def add(self, note: Note) -> Note:
        """Store a note (its time set now when not given); returns it with its id."""
        note = check_note(note)
        created = note.created or time.time()
        nid = self._write("INSERT INTO notes (model, case_key, hypothesis, category, status, author, created) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", (note.model, note.case, note.hypothesis.strip(),
                                                           note.category, note.status, note.author.strip(), created))
        return Note(note.model, note.case, note.hypothesis.strip(), note.category, note.status, note.author.strip(),
                    created, nid)

    def set_status(self, note_id: int, status: str) -> None:
        if status not in STATUSES:
            raise FailureLensError(f"Unknown status {str(status)[:40]!r}; use one of {', '.join(STATUSES)}.")
        if not self._write("UPDATE notes SET status = ? WHERE id = ?", (status, int(note_id))):
            raise FailureLensError(f"There is no note {note_id} in {self.path}.")

    def notes(self, model: Optional[str] = None, case: Optional[str] = None, status: Optional[str] = None,
              category: Optional[str] = None) -> list[Note]:
        """Notes matching every filter given, oldest first."""
        where, args = [], []
        for col, v in (("model", model), ("case_key", case), ("status", status), ("category", category)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = ("SELECT model, case_key, hypothesis, category, status, author, created, id FROM notes"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created, id")
        db = self._connect()
        try:
            return [Note(*row) for row in db.execute(sql, args)]
        except sqlite3.Error as e:
            raise self._error(e) from None
        finally:
            db.close()
