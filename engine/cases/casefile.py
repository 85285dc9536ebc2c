"""A case file (.flcase): one JSON file that reopens a case anywhere with exactly the view it was saved with.

It holds the model reference (zoo name, hub id + revision, or a local folder's *name*, never its path) with a
fingerprint of the model's config and weights, the prompt, target, contrast and objective, the rule, the graph
settings and selected node, the what-if edits (engine.cases.whatif specs), the notes, and the results as
computed (heatmap relevance, the edited prompt's numbers and relevance, the causal check's verdict, the pruned
graph as shown: its kept nodes and edges, engine.graph.shown).

Reading treats the file as hostile: at most MAX_CASE_BYTES, UTF-8 JSON (a zip archive or anything else is
refused), nested at most MAX_CASE_DEPTH levels, every field of the right type and size, no NaN, no lone
surrogates, and a model reference that cannot name a path. Nothing in a case file is ever executed or loaded
by path; a local folder is matched by name against the model already loaded. Writes are atomic
(engine.files.write_atomic). Every refusal is a FailureLensError naming the problem and a way out.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from engine import files
from engine.cases.notes import Note, check_note
from engine.cases.whatif import MAX_EDITS, Edit
from engine.graph.shown import ShownGraph, read_shown
from engine.objectives import Objective
from engine.records import FailureLensError, dumps

FORMAT = "failure-lens-case"
SCHEMA_VERSION = 1
SUFFIX = ".flcase"
MAX_CASE_BYTES = 32 * files.MiB
MAX_CASE_DEPTH = 8
MAX_TEXT = 4 * files.MiB  # characters of the prompt
MAX_TOKENS = 1 << 20
MAX_NOTES = 1000
_HUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_ZOO = re.compile(r"^zoo:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
_HASH = re.compile(r"^[A-Za-z0-9:._-]{0,80}$")


@dataclass(frozen=True)
class ModelRef:
    kind: str  # "zoo" | "hub" | "local"
    name: str  # "zoo:l", "org/name", or a folder's name
    revision: Optional[str]
    dtype: str
    quantize: Optional[str]
    rule: str
    config_hash: str
    weights_hash: str

    @property
    def source(self) -> Optional[str]:
        """What `load_model` may load without asking: zoo names and hub ids (never a path from a file)."""
        return self.name if self.kind in ("zoo", "hub") else None


@dataclass(frozen=True)
class CaseResults:
    """The numbers as computed when the case was saved (shown read-only when the model is absent)."""

    tokens: tuple[str, ...]  # [tokens]
    token_ids: tuple[int, ...]  # [tokens]
    relevance: tuple[float, ...]  # [tokens]
    special: tuple[bool, ...]  # [tokens]
    target: str
    contrast: str
    logit_diff: Optional[float]
    conservation: Optional[float]
    whatif: Optional[dict] = None  # engine.cases.whatif.WhatIf.to_dict() of the edits
    after_relevance: Optional[tuple[float, ...]] = None  # [tokens] heatmap of the edited prompt
    verdict: Optional[str] = None  # engine.cases.checks verdict code
    verdict_sentence: str = ""
    graph: Optional[ShownGraph] = None  # the pruned graph as shown (engine.graph.shown)


@dataclass(frozen=True)
class CaseFile:
    model: ModelRef
    case: str  # zoo case id, or "" for an own prompt
    prompt: str
    target: str
    contrast: str
    mode: str
    strategy: Optional[str]
    k: int
    graph: dict = field(default_factory=dict)  # graph settings: str -> str | number | bool | list of those
    node: str = ""
    edits: tuple[str, ...] = ()  # Edit specs
    notes: tuple[Note, ...] = ()
    results: Optional[CaseResults] = None
    saved: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        return d

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")

    @property
    def objective(self) -> Objective:
        """The saved request (a bad mode, strategy or k is a FailureLensError naming it)."""
        return Objective(self.target, self.contrast or None, self.mode, self.strategy, self.k)


# ---------------------------------------------------------------- from a loaded model
def config_hash(config: Any) -> str:
    """Hash of the model config's content (without where it was loaded from or by which library version)."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    for key in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        d.pop(key, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_ref(handle: Any) -> ModelRef:
    fp = handle.fingerprint
    src = fp.source.strip()
    if src.startswith("zoo:"):
        kind, name = "zoo", src
    elif Path(src).expanduser().exists():
        kind, name = "local", Path(src).expanduser().resolve().name  # the name only: a path would leak and mislead
    else:
        kind, name = "hub", src
    return ModelRef(kind, name, fp.revision, fp.dtype, fp.quantize, fp.rule, config_hash(handle.model.config),
                    fp.weights_hash)


@dataclass(frozen=True)
class Match:
    status: str  # "same" | "differs" | "absent"
    message: str


def match(ref: ModelRef, handle: Any) -> Match:
    """Is `handle` the model the case was saved with? 'differs' names what changed (say so before recomputing)."""
    if handle is None:
        return Match("absent", f"The model of this case ({ref.name}) is not loaded here: the saved results are shown "
                               "read-only. Load the model to recompute them.")
    mine = model_ref(handle)
    if (mine.kind, mine.name) != (ref.kind, ref.name):
        return Match("absent", f"This case was saved with {ref.name}, not {mine.name}: the saved results are shown "
                               f"read-only. Load {ref.name} to recompute them.")
    what = [w for w, a, b in (("weights", ref.weights_hash, mine.weights_hash),
                              ("config", ref.config_hash, mine.config_hash), ("revision", ref.revision, mine.revision),
                              ("dtype", ref.dtype, mine.dtype), ("quantisation", ref.quantize, mine.quantize),
                              ("rule", ref.rule, mine.rule)) if a != b]
    if what:
        return Match("differs", f"The loaded {ref.name} differs from the one this case was saved with "
                                f"({', '.join(what)}): the numbers are recomputed and may not match the saved ones.")
    return Match("same", "")


# ---------------------------------------------------------------- reading (hostile input)
class _Reader:
    """Typed access to one parsed JSON object; each refusal names the field."""

    def __init__(self, d: Any, where: str):
        if not isinstance(d, dict):
            raise FailureLensError(f"{where} must be a JSON object; this is not a Failure Lens case file.")
        self.d, self.where = d, where

    def _bad(self, key: str, want: str) -> FailureLensError:
        return FailureLensError(f"The case file's {self.where}.{key} must be {want}; the file is damaged or was not "
                                "written by Failure Lens. Save the case again.")

    def str(self, key: str, limit: int = 1000, optional: bool = False, default: Any = "") -> Any:
        v = self.d.get(key, None if optional else default)
        if v is None and optional:
            return None
        if not isinstance(v, str) or len(v) > limit:
            raise self._bad(key, f"text of at most {limit:,} characters")
        files.no_lone_surrogates([(f"The case file's {self.where}.{key}", v)])
        return v

    def num(self, key: str, optional: bool = True) -> Optional[float]:
        v = self.d.get(key)
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(key, "a number")
        return float(v)

    def int(self, key: str, lo: int, hi: int, default: int) -> int:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self._bad(key, f"a whole number in {lo}..{hi}")
        return v

    def list(self, key: str, kind: type, limit: int, optional: bool = False) -> Optional[tuple]:
        v = self.d.get(key, None if optional else [])
        if v is None and optional:
            return None
        ok = (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)) if kind is float else \
             (lambda x: isinstance(x, kind) and (kind is bool or not isinstance(x, bool)))
        if not isinstance(v, list) or len(v) > limit or not all(ok(x) for x in v):
            raise self._bad(key, f"a list of at most {limit:,} {kind.__name__} values")
        if kind is str:
            files.no_lone_surrogates([(f"The case file's {self.where}.{key}", x) for x in v])
        return tuple(float(x) for x in v) if kind is float else tuple(v)

    def obj(self, key: str, optional: bool = False) -> Optional["_Reader"]:
        v = self.d.get(key)
        if v is None and optional:
            return None
        return _Reader(v, f"{self.where}.{key}")


def _model(r: _Reader) -> ModelRef:
    kind = r.str("kind", 10)
    name = r.str("name", 200)
    pattern = {"zoo": _ZOO, "hub": _HUB, "local": _FOLDER}.get(kind)
    if pattern is None:
        raise FailureLensError(f"The case file names a model of kind {kind!r}; it must be zoo, hub or local.")
    if not pattern.match(name) or ".." in name:
        raise FailureLensError(f"The case file's model {name[:80]!r} is not a valid {kind} model name (a case file "
                               "may not name a path). Save the case again from Failure Lens.")
    hashes = [r.str(k, 80) for k in ("config_hash", "weights_hash")]
    if not all(_HASH.match(h) for h in hashes):
        raise FailureLensError("The case file's model fingerprint is not a hash; save the case again.")
    return ModelRef(kind, name, r.str("revision", 200, optional=True), r.str("dtype", 40),
                    r.str("quantize", 20, optional=True), r.str("rule", 20), *hashes)


def _results(r: _Reader) -> CaseResults:
    tokens = r.list("tokens", str, MAX_TOKENS)
    n = len(tokens)
    cols = {"token_ids": r.list("token_ids", int, MAX_TOKENS), "relevance": r.list("relevance", float, MAX_TOKENS),
            "special": r.list("special", bool, MAX_TOKENS)}
    after = r.list("after_relevance", float, MAX_TOKENS, optional=True)
    for key, v in [*cols.items(), ("after_relevance", after)]:
        if v is not None and len(v) != n:
            raise FailureLensError(f"The case file has {n} tokens but {len(v)} {key} values; save the case again.")
    whatif = r.d.get("whatif")
    if whatif is not None and not isinstance(whatif, dict):
        raise FailureLensError("The case file's results.whatif must be an object; save the case again.")
    if whatif is not None:
        w = _Reader(whatif, "results.whatif")
        w.str("sentence", 2000)
        for side in ("before", "after"):
            s = w.obj(side)
            s.str("top1", 1000)
            [s.num(k, optional=False) for k in ("p_target", "p_contrast", "logit_diff")]
    graph = r.d.get("graph")
    return CaseResults(tokens, cols["token_ids"], cols["relevance"], cols["special"], r.str("target", 1000),
                       r.str("contrast", 1000), r.num("logit_diff"), r.num("conservation"), whatif, after,
                       r.str("verdict", 40, optional=True), r.str("verdict_sentence", 4000),
                       read_shown(graph, MAX_TOKENS) if graph is not None else None)


def _graph(v: Any) -> dict:
    if not isinstance(v, dict) or len(v) > 50:
        raise FailureLensError("The case file's graph settings must be an object of at most 50 settings.")
    plain = (str, int, float, bool)
    for k, x in v.items():
        if len(k) > 40 or not (isinstance(x, plain) or (isinstance(x, list) and len(x) <= 1000
                                                         and all(isinstance(y, plain) for y in x))):
            raise FailureLensError(f"The case file's graph setting {k[:40]!r} is not a plain value; save it again.")
        if isinstance(x, str) and len(x) > 1000:
            raise FailureLensError(f"The case file's graph setting {k[:40]!r} is too long; save the case again.")
    return dict(v)


def _no_constants(name: str) -> Any:
    raise FailureLensError(f"The case file holds {name}, which is not a number JSON allows; save the case again.")


def read_case(data: bytes, where: str = "case file") -> CaseFile:
    """A CaseFile from the bytes of a .flcase file (see the module docstring for what is refused)."""
    if len(data) > MAX_CASE_BYTES:
        raise FailureLensError(f"The {where} is {len(data) / files.MiB:,.0f} MiB, more than the limit of "
                               f"{MAX_CASE_BYTES // files.MiB} MiB; is it really a case file?")
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06") or data[:2] == b"\x1f\x8b":
        raise FailureLensError(f"The {where} is a compressed archive, not a case file; open the .flcase file that "
                               "Failure Lens saved (plain JSON).")
    try:
        value = json.loads(data.decode("utf-8-sig"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise FailureLensError(f"The {where} is not UTF-8 text; is it a binary file? Open a .flcase file.") from None
    except json.JSONDecodeError as e:
        raise FailureLensError(f"The {where} is not valid JSON ({e.msg}, line {e.lineno}); open a .flcase file "
                               "that Failure Lens saved.") from None
    except RecursionError:
        raise files.depth_error(f"The {where}", MAX_CASE_DEPTH) from None
    files.check_depth(value, f"The {where}", MAX_CASE_DEPTH)
    r = _Reader(value, "case")
    if value.get("format") != FORMAT:
        raise FailureLensError(f"The {where} is not a Failure Lens case file (no \"format\": \"{FORMAT}\"); open a "
                               ".flcase file saved with 'Save case'.")
    version = r.int("schema_version", 1, 10**6, SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
        raise FailureLensError(f"The {where} was written by a newer Failure Lens (case format {version}, this one "
                               f"reads up to {SCHEMA_VERSION}); update Failure Lens to open it.")
    edits = r.list("edits", str, MAX_EDITS)
    for e in edits:
        Edit.parse(e)
    notes_in = r.d.get("notes", [])
    if not isinstance(notes_in, list) or len(notes_in) > MAX_NOTES:
        raise FailureLensError(f"The case file's notes must be a list of at most {MAX_NOTES} notes.")
    notes = []
    for i, n in enumerate(notes_in):
        nr = _Reader(n, f"notes[{i}]")
        notes.append(check_note(Note(nr.str("model", 200), nr.str("case", 200), nr.str("hypothesis", 4000),
                                     nr.str("category", 40), nr.str("status", 20), nr.str("author", 200),
                                     nr.num("created") or 0.0, None)))
    res = r.obj("results", optional=True)
    return CaseFile(_model(r.obj("model")), r.str("case", 200), r.str("prompt", MAX_TEXT), r.str("target", 1000),
                    r.str("contrast", 1000), r.str("mode", 40), r.str("strategy", 40, optional=True),
                    r.int("k", 1, 1000, 10), _graph(r.d.get("graph", {})), r.str("node", 200), edits, tuple(notes),
                    _results(res) if res is not None else None, r.num("saved") or 0.0, version)


def load_case(path: Union[str, Path]) -> CaseFile:
    return read_case(files.read_bytes(path, MAX_CASE_BYTES, "case file"), f"case file {Path(path).name}")


def write_case(path: Union[str, Path], case: CaseFile) -> Path:
    return files.write_atomic(path, case.to_bytes(), "case file")


def results_of(att: Any, whatif: Any = None, after: Any = None, curves: Any = None,
               graph: Optional[ShownGraph] = None) -> CaseResults:
    """CaseResults from an engine Attribution (and the what-if, the edited heatmap, the deletion check, the pruned
    graph as shown: engine.graph.shown.shown_graph)."""
    return CaseResults(tuple(att.tokens), tuple(att.token_ids), tuple(att.relevance), tuple(att.special_mask),
                       att.target.text, att.contrast.text if att.contrast else "", att.logit_diff, att.conservation,
                       whatif.to_dict() if whatif is not None else None,
                       tuple(after.relevance) if after is not None else None,
                       curves.verdict if curves is not None else None, curves.sentence if curves is not None else "",
                       graph)

