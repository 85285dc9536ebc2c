"""Results store: one folder holding an SQLite database (WAL) and compressed array files.

Layout: <folder>/failure_lens.sqlite and <folder>/arrays/<run hash>/<uuid>.npz (referenced from results).

Guarantees the sweep runner relies on:
- Each result is one transaction (BEGIN IMMEDIATE ... COMMIT). Its arrays are written to a temporary file,
  fsynced and os.replace'd to their final name before the row commits, so a committed row always points
  to a complete file. A process killed at any moment leaves either the whole result or no row (plus, at
  worst, an unreferenced file that readers never see and `clean_orphans` removes).
- (run_id, model_label, case_id) is unique: `put_result` on an existing key stores nothing and returns
  False, so resuming never duplicates. `has_result` / `done_cases` say what to skip.
- WAL journal: readers (the dashboard) read the last committed state while a sweep writes.
- schema_version table: older stores are migrated by `migrate` (one function, steps in MIGRATIONS);
  a store from a newer Failure Lens is refused.
- Array references are relative and must stay inside the folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from engine.files import disk_message, regular_file
from engine.records import FailureLensError, dumps

SCHEMA_VERSION = 3
DB_NAME = "failure_lens.sqlite"

_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT NOT NULL, config_json TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE cases (
    run_id TEXT NOT NULL REFERENCES runs(run_id), case_id TEXT NOT NULL, benchmark TEXT NOT NULL,
    prompt TEXT NOT NULL, reference TEXT NOT NULL, segments_json TEXT NOT NULL, meta_json TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id));
CREATE TABLE results (
    run_id TEXT NOT NULL REFERENCES runs(run_id), model_label TEXT NOT NULL, case_id TEXT NOT NULL,
    status TEXT NOT NULL, logit_diff REAL, ref_rank INTEGER, target_id INTEGER, target TEXT,
    contrast_id INTEGER, contrast TEXT, position INTEGER, prefix TEXT, segment_rel_json TEXT NOT NULL,
    suggestion_json TEXT, faith_json TEXT, extra_json TEXT NOT NULL, error TEXT, arrays TEXT,
    created REAL NOT NULL, PRIMARY KEY (run_id, model_label, case_id));
CREATE TABLE labels (
    label_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, model_label TEXT NOT NULL,
    case_id TEXT NOT NULL, suggested_json TEXT, outcome TEXT, pattern TEXT, author TEXT NOT NULL,
    note TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX labels_key ON labels (run_id, model_label, case_id);
"""
_V2 = """
ALTER TABLE results ADD COLUMN check_json TEXT;
"""  # causal checks per result (engine.cases.checks + engine.cases.ablation); NULL for older results
_V3 = """
ALTER TABLE results ADD COLUMN check_verdict TEXT;
ALTER TABLE results ADD COLUMN check_flip_k INTEGER;
ALTER TABLE results ADD COLUMN check_random_k INTEGER;
ALTER TABLE results ADD COLUMN check_random_mean REAL;
ALTER TABLE results ADD COLUMN check_random_std REAL;
ALTER TABLE results ADD COLUMN check_full INTEGER;
UPDATE results SET check_verdict = json_extract(check_json, '$.curves.verdict'),
    check_flip_k = json_extract(check_json, '$.curves.flip_k'),
    check_full = 1,
    check_random_k = CASE WHEN json_extract(check_json, '$.curves.base_logit_diff') > 0 THEN
        COALESCE(json_extract(check_json, '$.curves.flip_k'),
                 json_array_length(json_extract(check_json, '$.curves.target')) - 1) END
    WHERE json_extract(check_json, '$.curves') IS NOT NULL;
UPDATE results SET check_random_k = NULL WHERE check_random_k = 0;
UPDATE results SET
    check_random_mean = json_extract(check_json, '$.curves.random_mean[' || check_random_k || ']'),
    check_random_std = json_extract(check_json, '$.curves.random_std[' || check_random_k || ']')
    WHERE check_random_k IS NOT NULL
"""  # the verdict's numbers as columns (SUMMARY_COLUMNS); results stored before get them from their check_json
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2, 2: _V3}  # from version -> SQL to the next version
SUMMARY_COLUMNS = ("check_verdict", "check_flip_k", "check_random_k", "check_random_mean", "check_random_std",
                   "check_full")  # results columns filled from a result's checks (check_columns)


@dataclass(frozen=True)
class ResultRow:
    """What the runner stores per (run, model, case). status: ok | no_failure | filtered | error."""

    status: str
    logit_diff: Optional[float] = None
    ref_rank: Optional[int] = None
    target_id: Optional[int] = None
    target: Optional[str] = None
    contrast_id: Optional[int] = None
    contrast: Optional[str] = None
    position: Optional[int] = None
    prefix: Optional[str] = None
    segment_rel: dict[str, float] = field(default_factory=dict)
    suggestion: Optional[dict[str, Any]] = None  # categories.Suggestion.to_dict()
    faith: Optional[dict[str, Any]] = None  # faithfulness.FaithResult.to_dict()
    check: Optional[dict[str, Any]] = None  # {"curves": DeletionCurves.to_dict(), "ablation": AblationReport.to_dict()}
    extra: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


_JSON = {"segment_rel": "segment_rel_json", "suggestion": "suggestion_json", "faith": "faith_json",
         "extra": "extra_json",
         "check": "check_json"}
_COLS = [f.name for f in dataclasses.fields(ResultRow)]


def _environmental(e: Exception) -> bool:
    """True for SQLite errors caused by the file or the disk (not by a statement): those get a user message."""
    text = str(e).lower()
    return any(w in text for w in ("full", "malformed", "not a database", "encrypted", "readonly", "read-only",
                                   "disk i/o", "unable to open"))


def _db_error(folder: Path, e: Exception) -> FailureLensError:
    """The user's words for an SQLite error: a damaged file, a full disk, a read-only disk, or other."""
    text = str(e).lower()
    if "malformed" in text or "not a database" in text or "encrypted" in text:
        return FailureLensError(f"the store database in {folder} is damaged ({e}); restore it from a copy, or start "
                                "a new store folder and run the sweep again.")
    if "full" in text:
        return FailureLensError(f"cannot write to the store in {folder}: the disk is full ({e}). Nothing was "
                                "stored for this step; free some space and resume.")
    return FailureLensError(f"cannot use the store in {folder} ({e}); check that the folder is writable and "
                            "not on a read-only disk, or choose another store path.")


class Store:
    """Open (creating if needed) the store in `folder`. readonly=True never writes (dashboard readers)."""

    def __init__(self, folder: str | Path, readonly: bool = False):
        self.folder = Path(folder)
        self.readonly = readonly
        self._lock = threading.RLock()
        db = self.folder / DB_NAME
        if self.folder.exists() and not self.folder.is_dir():
            raise FailureLensError(f"store path {self.folder} is a file; give a folder for the store.")
        if readonly:
            if not db.exists():
                raise FailureLensError(f"no store in {self.folder}; run a sweep into it first or pick another folder.")
            uri = db.resolve().as_uri() + "?mode=ro"
        else:
            _check_writable(self.folder)
            uri = db.resolve().as_uri()
        try:
            version = self._connect(uri, readonly)
        except sqlite3.OperationalError:
            if not readonly or "immutable" in uri:
                raise _db_error(self.folder, sys.exc_info()[1]) from None
            try:  # read-only media (a mount, a copy without write permission): no WAL index can be made there,
                # and nothing can write there either, so reading the file as immutable is exact
                version = self._connect(uri + "&immutable=1", readonly)
            except sqlite3.Error as e:
                raise _db_error(self.folder, e) from None
        except sqlite3.Error as e:
            raise _db_error(self.folder, e) from None
        self.schema_version = version

    def _connect(self, uri: str, readonly: bool) -> int:
        self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.row_factory = sqlite3.Row
        if not readonly:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        return migrate(self._conn, readonly=readonly)

    # ---- plumbing ----
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.DatabaseError as e:
                if not _environmental(e):
                    raise
                raise _db_error(self.folder, e) from None

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        """Run statements in one transaction; IntegrityError propagates after rollback."""
        if self.readonly:
            raise FailureLensError("this store was opened read-only; open it without readonly to write.")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    self._conn.execute(sql, args)
                self._conn.execute("COMMIT")
            except BaseException as e:
                _rollback(self._conn)
                if isinstance(e, sqlite3.DatabaseError) and _environmental(e):
                    raise _db_error(self.folder, e) from None
                raise

    # ---- runs and cases ----
    def create_run(self, run_id: str, config: dict[str, Any], name: str = "") -> bool:
        """Register a run; True if new. Re-creating with the same config is a no-op (resume)."""
        cfg = json.dumps(config, sort_keys=True, default=str)
        rows = self._query("SELECT config_json FROM runs WHERE run_id = ?", [run_id])
        if rows:
            if rows[0]["config_json"] != cfg:
                raise FailureLensError(f"run {run_id!r} already exists in {self.folder} with another config; "
                                       "resume it with the same config or start a new run id.")
            return False
        self._write([("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?)", (run_id, name, cfg, time.time()))])
        return True

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) | {"config": json.loads(r["config_json"])}
                for r in self._query("SELECT * FROM runs ORDER BY created")]

    def put_cases(self, run_id: str, cases: Iterable[Any]) -> None:
        """Store benchmark cases (engine.cases.benchmarks.Case) once; existing ones are kept as they are."""
        self._write([("INSERT OR IGNORE INTO cases VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (run_id, c.uid, c.benchmark, c.prompt, c.reference, json.dumps(c.segments),
                       dumps(c.meta, default=str))) for c in cases])

    def cases(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM cases WHERE run_id = ? ORDER BY rowid", [run_id])]

    # ---- results ----
    def has_result(self, run_id: str, model_label: str, case_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM results WHERE run_id = ? AND model_label = ? AND case_id = ?",
                                [run_id, model_label, case_id]))

    def done_cases(self, run_id: str, model_label: str) -> set[str]:
        return {r[0] for r in self._query("SELECT case_id FROM results WHERE run_id = ? AND model_label = ?",
                                          [run_id, model_label])}

    def put_result(self, run_id: str, model_label: str, case_id: str, row: ResultRow,
                   arrays: Optional[dict[str, np.ndarray]] = None) -> bool:
        """Store one result atomically with its arrays; False (and nothing written) if the key exists."""
        ref = self._write_arrays(run_id, arrays) if arrays else None
        values = [dumps(getattr(row, c), default=str) if c in _JSON else getattr(row, c) for c in _COLS]
        summary = check_columns(row.check)
        values += [summary[c] for c in SUMMARY_COLUMNS]
        cols = ", ".join([*(_JSON.get(c, c) for c in _COLS), *SUMMARY_COLUMNS])
        sql = (f"INSERT INTO results (run_id, model_label, case_id, {cols}, arrays, created) "
               f"VALUES ({', '.join('?' * (len(_COLS) + len(SUMMARY_COLUMNS) + 5))})")
        try:
            self._write([(sql, (run_id, model_label, case_id, *values, ref, time.time()))])
        except sqlite3.IntegrityError:
            if ref:
                (self.folder / ref).unlink(missing_ok=True)
            return False
        return True

    def get_result(self, run_id: str, model_label: str, case_id: str) -> Optional[ResultRow]:
        rows = self._query("SELECT * FROM results WHERE run_id = ? AND model_label = ? AND case_id = ?",
                           [run_id, model_label, case_id])
        if not rows:
            return None
        r = rows[0]
        return ResultRow(**{c: (json.loads(r[_JSON[c]]) if r[_JSON[c]] else None) if c in _JSON else r[c]
                            for c in _COLS})

    def result_rows(self, run_id: Optional[str] = None) -> list[dict[str, Any]]:
        where, args = ("WHERE r.run_id = ?", [run_id]) if run_id else ("", [])
        return [dict(r) for r in self._query(
            f"SELECT r.*, c.benchmark FROM results r LEFT JOIN cases c "
            f"ON c.run_id = r.run_id AND c.case_id = r.case_id "
            f"{where} ORDER BY r.run_id, r.model_label, r.case_id", args)]

    # ---- arrays ----
    def _write_arrays(self, run_id: str, arrays: dict[str, np.ndarray]) -> str:
        ref = f"arrays/{hashlib.sha1(run_id.encode()).hexdigest()[:16]}/{uuid.uuid4().hex}.npz"
        final = self.folder / ref
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise FailureLensError(f"cannot write to the store in {self.folder}: {disk_message(e)}. Nothing was "
                                   "stored for this case; free some space and resume.") from None
        return ref

    def resolve(self, ref: str) -> Path:
        """Absolute path of an array reference; refuses references that leave the store folder."""
        root = self.folder.resolve()
        path = (root / ref).resolve()
        if root not in path.parents:
            raise FailureLensError(f"array reference {ref!r} points outside the store folder {root}; "
                                   "the database was edited or damaged. Re-run the affected cases.")
        return path

    def load_arrays(self, run_id: str, model_label: str, case_id: str) -> dict[str, np.ndarray]:
        rows = self._query("SELECT arrays FROM results WHERE run_id = ? AND model_label = ? AND case_id = ?",
                           [run_id, model_label, case_id])
        if not rows or not rows[0]["arrays"]:
            return {}
        path = self.resolve(rows[0]["arrays"])
        if not path.exists():
            raise FailureLensError(f"array file {path} of case {case_id} is missing; re-run that case.")
        regular_file(path, f"array file of case {case_id}")  # never block on a FIFO planted in the folder
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def clean_orphans(self, min_age_s: float = 3600.0) -> int:
        """Delete array files no result references, older than min_age_s (a younger one may belong to a
        result being committed right now). Returns how many were removed."""
        refs = {r[0] for r in self._query("SELECT arrays FROM results WHERE arrays IS NOT NULL")}
        removed, now = 0, time.time()
        for path in (self.folder / "arrays").rglob("*"):
            rel = path.relative_to(self.folder).as_posix()
            if path.is_file() and rel not in refs and now - path.stat().st_mtime >= min_age_s:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # ---- labels ----
    def add_label(self, run_id: str, label: Any) -> None:
        """Append a categories.Label; the history is kept, the latest per (model, case) wins."""
        human = label.human.to_dict() if label.human else {"outcome": None, "pattern": None}
        suggested = json.dumps(label.suggested.to_dict()) if label.suggested else None
        self._write([("INSERT INTO labels (run_id, model_label, case_id, suggested_json, outcome, pattern, author, "
                      "note, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (run_id, label.model_label, label.case_id, suggested, human["outcome"], human["pattern"],
                       label.author, label.note, label.time))])

    def labels(self, run_id: str, latest: bool = True) -> list[dict[str, Any]]:
        newest = ("AND label_id IN (SELECT MAX(label_id) FROM labels WHERE run_id = ? GROUP BY model_label, case_id)"
                  if latest else "")
        args = [run_id, run_id] if latest else [run_id]
        return [dict(r) for r in self._query(f"SELECT * FROM labels WHERE run_id = ? {newest} ORDER BY label_id", args)]

    # ---- exports ----
    def results_frame(self, run_id: Optional[str] = None) -> Any:
        """One row per result: flat columns, segment relevance as seg_*, suggested and latest human labels."""
        import pandas as pd

        rows = []
        for r in self.result_rows(run_id):
            seg = json.loads(r.pop("segment_rel_json") or "{}")
            sug = json.loads(r.pop("suggestion_json") or "null") or {}
            faith = json.loads(r.pop("faith_json") or "null") or {}
            r.update(check_columns(json.loads(r.pop("check_json") or "null")))
            r.pop("extra_json")
            r.update({f"seg_{k}": v for k, v in seg.items()})
            cat = sug.get("category") or {}
            r.update(suggested_outcome=cat.get("outcome"), suggested_pattern=cat.get("pattern"),
                     faith_k_relevance=faith.get("k_relevance"), faith_k_random_mean=faith.get("k_random_mean"))
            rows.append(r)
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        labels = pd.DataFrame([label for rid in df["run_id"].unique() for label in self.labels(rid)],
                              columns=["run_id", "model_label", "case_id", "outcome", "pattern", "author", "note"])
        labels = labels.rename(columns={"outcome": "human_outcome", "pattern": "human_pattern",
                                        "author": "human_author", "note": "human_note"})
        return df.merge(labels[["run_id", "model_label", "case_id", "human_outcome", "human_pattern", "human_author",
                                "human_note"]], on=["run_id", "model_label", "case_id"], how="left")

    def export(self, path: str | Path, run_id: Optional[str] = None) -> Path:
        """Write results as .csv (formula-guarded, see engine.present.text) or .parquet, by the file suffix;
        all or nothing (engine.files.write_atomic)."""
        import io

        from engine.files import write_atomic
        from engine.present.text import frame_csv

        path = Path(path)
        if path.suffix not in (".csv", ".parquet"):
            raise FailureLensError(f"cannot export to {path.name}: use a .csv or .parquet file name.")
        df = self.results_frame(run_id)
        if path.suffix == ".csv":
            return write_atomic(path, frame_csv(df), "export")
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return write_atomic(path, buf.getvalue(), "export")


def check_columns(check: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The flat columns of a result's causal checks (None where it has none). A check stored before the fast
    verdict existed holds every curve: its random mean and spread at the verdict's k are read from them."""
    curves = (check or {}).get("curves") or {}
    ablation = (check or {}).get("ablation") or {}
    k, mean, std = curves.get("random_k"), curves.get("random_mean_k"), curves.get("random_std_k")
    if "random_k" not in curves and curves.get("random_mean") and (curves.get("base_logit_diff") or 0) > 0:
        k = curves["flip_k"] if curves.get("flip_k") is not None else len(curves["target"]) - 1
        k, mean, std = (k, curves["random_mean"][k], curves["random_std"][k]) if k else (None, None, None)
    return {"check_verdict": curves.get("verdict"), "check_area": curves.get("area"),
            "check_flip_k": curves.get("flip_k"),
            "check_random_k": k, "check_random_mean": mean, "check_random_std": std,
            "check_full": (curves.get("curves", "full") == "full") if curves else None,
            "check_r_zero": ablation.get("r_zero"), "check_r_mean": ablation.get("r_mean")}


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise FailureLensError(f"store folder {folder} is not writable ({e.strerror or e}); "
                               "choose a writable store path or fix the folder's permissions.") from None


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; SQLite may already have rolled back after an I/O error (a full disk),
    and a failing ROLLBACK must not replace the error that says what happened."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _version(conn: sqlite3.Connection) -> int:
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not has_table:
        return 0
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or isinstance(rows[0][0], bool) or not isinstance(rows[0][0], int):
        found = "no row" if not rows else ", ".join(repr(r[0]) for r in rows[:3])
        raise FailureLensError(f"the store's schema_version holds {found} instead of one whole number, so its "
                               "layout is unknown; the database was edited or damaged. Restore it from a copy or "
                               "start a new store folder.")
    return rows[0][0]


def _check_version(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise FailureLensError(f"this store was written by a newer Failure Lens (schema {version}; this one reads up "
                               f"to {SCHEMA_VERSION}); upgrade Failure Lens or choose another store folder.")


def _layout(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Table name -> its column names, for every table of ours (SQLite's own tables left out)."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    return {n: tuple(r[1] for r in conn.execute(f"PRAGMA table_info(\"{n.replace(chr(34), chr(34) * 2)}\")"))
            for n in names}


def _expected_layout(version: int) -> dict[str, tuple[str, ...]]:
    """The tables and columns a store of `version` has, built by replaying the migrations in memory."""
    mem = sqlite3.connect(":memory:")
    try:
        for v in range(version):
            mem.executescript(MIGRATIONS[v])
        return _layout(mem)
    finally:
        mem.close()


def _other_layout(found: dict, expected: dict, version: int) -> FailureLensError:
    unknown = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    changed = sorted(t for t in set(found) & set(expected) if found[t] != expected[t])
    parts = ([f"tables this version does not know: {', '.join(unknown)}"] if unknown else []) + \
            ([f"missing tables: {', '.join(missing)}"] if missing else []) + \
            [f"table {t} has columns ({', '.join(found[t])}) instead of ({', '.join(expected[t])})" for t in changed]
    return FailureLensError(
        f"this store was written by another version of Failure Lens: "
        f"{f'it says schema {version}, but' if version else 'it has no schema number, and'} its layout differs from "
        f"the one this version writes for schema {version} ({'; '.join(parts)}). The store does "
        "not record which version wrote it. Nothing was changed: open it with the Failure Lens that wrote it, or "
        "choose another store folder for this sweep.")


def _check_layout(conn: sqlite3.Connection, version: int) -> None:
    found, expected = _layout(conn), EXPECTED_LAYOUT[version]
    if found != expected:
        raise _other_layout(found, expected, version)


def migrate(conn: sqlite3.Connection, readonly: bool = False) -> int:
    """Bring the database to SCHEMA_VERSION (the one place where old stores are upgraded); returns it.

    A store whose tables or columns differ from what its schema number promises (another Failure Lens wrote it)
    is refused by name before anything is written."""
    version = _version(conn)
    _check_version(version)
    _check_layout(conn, version)
    if version == SCHEMA_VERSION:
        return version
    if readonly:
        raise FailureLensError(f"this store has schema {version} and needs migrating to {SCHEMA_VERSION}; "
                               "open it once for writing (e.g. resume its sweep) first.")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)  # another process may have migrated while we waited for the lock
        _check_version(version)
        for v in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[v].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return SCHEMA_VERSION


# Tables and columns of each schema version, replayed once at import (an in-memory database, nothing on disk).
EXPECTED_LAYOUT: dict[int, dict[str, tuple[str, ...]]] = {v: _expected_layout(v) for v in range(SCHEMA_VERSION + 1)}
