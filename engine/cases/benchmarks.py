"""Benchmark loaders: local files in their official formats -> `list[Case]`. Nothing is downloaded.

Every loader returns cases whose `segments` are character spans over `case.prompt` with the keys
"special", "instruction", "query", "answer" (answer is empty here: it is the reference prefix before the
failure, added once the failure is known, see `engine.cases.segments.add_span`).

Formats (a file that does not match names the missing field and a way out):
- ifeval:    JSONL {key, prompt, instruction_id_list, kwargs}. Reference: an inline "response"/"reference"
             field, or `references=` an IFEval response file (JSONL {prompt, response}) matched by prompt.
             Instruction spans: see `engine.cases.ifeval_phrases`.
- math:      MATH problem files {problem, solution[, answer, level, type]}: a .jsonl, a .json (one problem
             or a list), or a folder of .json files. Reference = the worked solution; the answer is the
             "answer" field or the last \\boxed{...} of the solution. The problem is the Query.
- humaneval / evalplus: JSONL (optionally .gz) {task_id, prompt, canonical_solution, test[, entry_point]}.
             Reference = canonical_solution. Docstrings in the prompt (the natural-language spec) are the
             Instruction; the code around them is the Query.
- gaia:      JSONL {task_id, Question, Final answer[, context, file_name]} (lower-case / underscore spellings
             too). The long context is the "context" field or the attached text file next to the JSONL;
             prompt = context + blank line + question, all Query. Reference = the final answer.
- table:     any .jsonl / .csv with user-chosen columns: {"prompt": ..., "reference": ...[, "id": ...,
             "instruction": ...]}. The instruction column holds phrases (a string or a JSON list) that occur
             in the prompt; their first exact occurrence becomes the Instruction segment.
- zoo:       engine/zoo/data/eval.jsonl {id, family, prompt, reference, segments{special, instruction, query}}.

`instruction=` (math, humaneval, gaia, table) appends a fixed instruction after the prompt, separated by
a blank line, and marks it as the Instruction (e.g. "Put your final answer within \\boxed{}.").
"""
from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from engine import files
from engine.cases.ifeval_phrases import instruction_spans
from engine.cases.segments import Spans, complement, empty_spans, shift_spans
from engine.records import FailureLensError

ZOO_EVAL = Path(__file__).parents[1] / "zoo" / "data" / "eval.jsonl"


@dataclass(frozen=True)
class Case:
    """One benchmark item. segments: char spans over `prompt` (keys special/instruction/query/answer)."""

    id: str
    benchmark: str
    prompt: str
    reference: str
    segments: Spans
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        """Unique across the benchmarks of a sweep (the store's case key)."""
        return f"{self.benchmark}/{self.id}"


# ---- reading -------------------------------------------------------------------------------------------

def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8-sig")


def _need_file(path: Path, what: str) -> Path:
    files.regular_file(path, f"{what} file")
    return path


def _json(text: str, where: str) -> Any:
    """Parsed JSON of one record or file, with the nesting limit of engine.files."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise FailureLensError(f"{where} is not valid JSON ({e.msg}, line {e.lineno}); fix or remove it.") from None
    except RecursionError:  # nested deeper than the parser can go
        raise files.depth_error(where) from None
    files.check_depth(value, where)
    return value


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line."""
    with _open_text(_need_file(path, "benchmark")) as f:
        for n, line in files.lines(f, path):
            if not line.strip():
                continue
            rec = _json(line, f"{path} line {n}")
            if not isinstance(rec, dict):
                raise FailureLensError(f"{path} line {n} is not a JSON object; each line must be one record.")
            yield n, rec


def _read_records(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, record) from .jsonl(.gz), .json (object or list) or .csv."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        for n, rec in read_jsonl(path):
            yield f"{path} line {n}", rec
    elif name.endswith(".json"):
        data = _json(files.read_text(path, files.MAX_JSON_BYTES, "benchmark file"), str(path))
        for i, rec in enumerate(data if isinstance(data, list) else [data]):
            yield f"{path} item {i}", rec
    elif name.endswith(".csv"):
        with open(_need_file(path, "benchmark"), encoding="utf-8-sig", newline="") as f:
            yield from _csv_rows(f, path)
    else:
        raise FailureLensError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz, .json or .csv.")


def _csv_rows(f: Any, path: Path) -> Iterator[tuple[str, dict]]:
    """(where, row) of a CSV file; cells up to the line limit of engine.files (the csv module's default,
    128 KiB, refused real long-context prompts)."""
    csv.field_size_limit(max(csv.field_size_limit(), files.MAX_LINE_CHARS))
    rows = csv.DictReader(f)
    n = 1
    while True:
        try:
            rec = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            if "NUL" in str(e):
                raise  # a binary file: load_benchmark says so
            limit = f" (the limit is {files.MAX_LINE_CHARS:,} characters)" if "field limit" in str(e) else ""
            raise FailureLensError(
                f"{path} row {n + 1}: not valid CSV ({e}){limit}; fix or shorten that row.") from None
        n += 1
        yield f"{path} row {n}", rec


def _field(rec: Mapping, names: tuple[str, ...], where: str, kind: str) -> Any:
    for n in names:
        if n in rec and rec[n] is not None:
            return rec[n]
    raise FailureLensError(
        f"{where}: no {' / '.join(repr(n) for n in names)} field, so this is not a {kind} record "
        f"(fields: {', '.join(map(str, rec))}). Pick the matching benchmark kind or fix the file."
    )


# ---- building cases ------------------------------------------------------------------------------------

def _compose(parts: list[tuple[str, str]]) -> tuple[str, Spans]:
    """Join (segment, text) parts with blank lines; each part's text becomes a span of its segment."""
    spans, text = empty_spans(), ""
    for name, part in parts:
        if not part:
            continue
        if text:
            text += "\n\n"
        spans[name].append((len(text), len(text) + len(part)))
        text += part
    return text, spans


def _with_instruction(text: str, spans: Spans, instruction: Optional[str]) -> tuple[str, Spans]:
    if not instruction:
        return text, spans
    start = len(text) + 2 if text else 0
    out = {k: list(v) for k, v in spans.items()}
    out["instruction"].append((start, start + len(instruction)))
    return (f"{text}\n\n{instruction}" if text else instruction), out


def _case(cid: Any, bench: str, text: str, spans: Spans, reference: str, instruction: Optional[str], **meta) -> Case:
    text, spans = _with_instruction(text, spans, instruction)
    return Case(str(cid), bench, text, str(reference), spans, meta)


def last_boxed(solution: str) -> Optional[str]:
    """Content of the last \\boxed{...} (or \\fbox{...}) with balanced braces, or None."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", solution)]
    if not starts:
        return None
    depth, i = 1, starts[-1]
    while i < len(solution) and depth:
        depth += {"{": 1, "}": -1}.get(solution[i], 0)
        i += 1
    return solution[starts[-1]:i - 1] if depth == 0 else None


def load_ifeval(path: Path, references: Optional[Path] = None, **_) -> list[Case]:
    refs: dict[str, str] = {}
    if references is not None:
        for where, rec in _read_records(Path(references)):
            refs[_field(rec, ("prompt",), where, "IFEval response")] = _field(
                rec, ("response",), where, "IFEval response")
    cases = []
    for where, rec in _read_records(path):
        prompt = _field(rec, ("prompt",), where, "IFEval")
        ids = _field(rec, ("instruction_id_list",), where, "IFEval")
        kwargs = rec.get("kwargs") or [{} for _ in ids]
        phrases = rec.get("instruction_phrases") or rec.get("l_instruction_phases")
        spans = empty_spans()
        spans["instruction"] = instruction_spans(prompt, ids, kwargs, phrases)
        spans["query"] = complement(len(prompt), spans["instruction"])
        reference = rec.get("response") or rec.get("reference") or refs.get(prompt, "")
        cases.append(Case(str(rec.get("key", rec.get("id", len(cases)))), "ifeval", prompt, reference, spans,
                          {"instruction_id_list": ids, "kwargs": kwargs, "has_reference": bool(reference)}))
    return cases


def load_math(path: Path, instruction: Optional[str] = None, **_) -> list[Case]:
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    if not files:
        raise FailureLensError(
            f"{path} holds no .json MATH problem files; point the path at the MATH folder or a .jsonl.")
    cases = []
    for file in files:
        for where, rec in _read_records(file):
            problem = _field(rec, ("problem",), where, "MATH")
            solution = _field(rec, ("solution",), where, "MATH")
            cid = (rec.get("unique_id") or rec.get("id")
                   or (str(file.relative_to(path)) if path.is_dir() else len(cases)))
            text, spans = _compose([("query", problem)])
            cases.append(_case(cid, "math", text, spans, solution, instruction,
                               answer=rec.get("answer") or last_boxed(solution),
                               level=rec.get("level"), type=rec.get("type") or rec.get("subject")))
    return cases


_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)\1', re.S)


def load_humaneval(path: Path, instruction: Optional[str] = None, bench: str = "humaneval", **_) -> list[Case]:
    cases = []
    for where, rec in _read_records(path):
        prompt = _field(rec, ("prompt",), where, "HumanEval")
        spans = empty_spans()
        spans["instruction"] = [m.span(2) for m in _DOCSTRING.finditer(prompt) if m.group(2).strip()]
        spans["query"] = complement(len(prompt), spans["instruction"])
        cases.append(_case(_field(rec, ("task_id",), where, "HumanEval"), bench, prompt, spans,
                           _field(rec, ("canonical_solution",), where, "HumanEval"), instruction,
                           test=rec.get("test", ""), entry_point=rec.get("entry_point")))
    return cases


def load_gaia(path: Path, instruction: Optional[str] = None, **_) -> list[Case]:
    cases = []
    for where, rec in _read_records(path):
        question = _field(rec, ("Question", "question"), where, "GAIA")
        answer = _field(rec, ("Final answer", "final_answer", "answer"), where, "GAIA")
        context = rec.get("context") or ""
        attached = rec.get("file_name") or ""
        if not context and attached and Path(str(attached)).suffix.lower() in {
                ".txt", ".md", ".csv", ".json", ".jsonl", ".py"}:
            file = files.inside(path.parent, str(attached), f"{where}: attachment")
            context = files.read_bytes(file, files.MAX_ATTACHMENT_BYTES, "GAIA attachment").decode("utf-8", "replace")
        text, spans = _compose([("query", context), ("query", question)])
        cases.append(_case(_field(rec, ("task_id", "id"), where, "GAIA"), "gaia", text, spans, answer, instruction,
                           level=rec.get("Level", rec.get("level")), file_name=attached or None,
                           context_chars=len(context)))
    return cases


def _phrases(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    text = str(value or "").strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text) if str(v)]
        except json.JSONDecodeError:
            pass
    return [text] if text else []


def load_table(path: Path, columns: Optional[Mapping[str, str]] = None, instruction: Optional[str] = None,
               bench: Optional[str] = None, **_) -> list[Case]:
    cols = dict(columns or {})
    unknown = set(cols) - {"prompt", "reference", "id", "instruction"}
    if unknown or "prompt" not in cols or "reference" not in cols:
        raise FailureLensError(
            f"table benchmark {path}: columns must map 'prompt' and 'reference' (optionally 'id', 'instruction') "
            f"to column names; got {sorted(cols)}."
        )
    cases = []
    for where, rec in _read_records(path):
        for role, col in cols.items():
            if role != "instruction" and col not in rec:
                raise FailureLensError(f"{where}: no column {col!r} (for {role}); columns: {', '.join(map(str, rec))}.")
        prompt = str(rec[cols["prompt"]])
        spans = empty_spans()
        for phrase in _phrases(rec.get(cols.get("instruction", ""))):
            start = prompt.find(phrase)
            if start < 0:
                raise FailureLensError(f"{where}: instruction phrase {phrase!r} does not occur in the prompt; "
                                       "instruction phrases must be exact substrings of the prompt.")
            spans["instruction"].append((start, start + len(phrase)))
        spans["query"] = complement(len(prompt), spans["instruction"])
        cid = rec[cols["id"]] if "id" in cols else len(cases)
        cases.append(_case(cid, bench or path.name.split(".")[0], prompt, spans, rec[cols["reference"]], instruction))
    return cases


def load_zoo(path: Path = ZOO_EVAL, **_) -> list[Case]:
    if not path.exists():
        raise FailureLensError(
            f"zoo evaluation set not found at {path}. Build the zoo first (engine/zoo writes data/eval.jsonl) "
            "or give the path of an eval.jsonl in the zoo format."
        )
    cases = []
    for n, rec in read_jsonl(path):
        where = f"{path} line {n}"
        spans = empty_spans()
        for key, value in (_field(rec, ("segments",), where, "zoo") or {}).items():
            if key not in spans:
                raise FailureLensError(f"{where}: unknown segment {key!r}; use {', '.join(spans)}.")
            spans[key] = [(int(s), int(e)) for s, e in value]
        cases.append(Case(str(_field(rec, ("id",), where, "zoo")), "zoo", _field(rec, ("prompt",), where, "zoo"),
                          _field(rec, ("reference",), where, "zoo"), spans, {"family": rec.get("family")}))
    return cases


def load_stored_cases(path: Path, **_) -> list[Case]:
    """Cases as the store keeps them, one JSON object per line {id, benchmark, prompt, reference, segments,
    meta}: the case lists a study writes for its phases (engine.runs.study); uids stay those of the source."""
    cases = []
    for n, rec in read_jsonl(path):
        where = f"{path} line {n}"
        spans = empty_spans()
        for key, value in (rec.get("segments") or {}).items():
            if key not in spans:
                raise FailureLensError(f"{where}: unknown segment {key!r}; use {', '.join(spans)}.")
            spans[key] = [(int(s), int(e)) for s, e in value]
        meta = rec.get("meta") or {}
        if not isinstance(meta, dict):
            raise FailureLensError(f"{where}: meta must be a JSON object.")
        cases.append(Case(str(_field(rec, ("id",), where, "cases")), str(_field(rec, ("benchmark",), where, "cases")),
                          _field(rec, ("prompt",), where, "cases"), str(rec.get("reference") or ""), spans, meta))
    return cases


LOADERS: dict[str, Callable[..., list[Case]]] = {
    "ifeval": load_ifeval,
    "math": load_math,
    "humaneval": load_humaneval,
    "evalplus": lambda path, **kw: load_humaneval(path, bench="evalplus", **kw),
    "gaia": load_gaia,
    "table": load_table,
    "zoo": load_zoo,
    "cases": load_stored_cases,
}
BENCHMARK_KINDS = tuple(LOADERS)
_OPTIONS = {"columns": {"table"}, "references": {"ifeval"},
            "instruction": {"math", "humaneval", "evalplus", "gaia", "table"}}


def load_benchmark(kind: str, path: Optional[str | Path] = None, *, name: Optional[str] = None,
                   limit: Optional[int] = None, **options: Any) -> list[Case]:
    """Load a benchmark file. options: columns (table), references (ifeval), instruction (see module doc)."""
    if kind not in LOADERS:
        raise FailureLensError(f"unknown benchmark kind {kind!r}; use one of {', '.join(BENCHMARK_KINDS)}.")
    used = {k: v for k, v in options.items() if v not in (None, "", {})}
    for key in used:
        if kind not in _OPTIONS.get(key, ()):
            raise FailureLensError(f"option {key!r} does not apply to benchmark kind {kind!r}; remove it.")
    if path is None and kind != "zoo":
        raise FailureLensError(f"benchmark kind {kind!r} needs a path to its file.")
    if "references" in used:
        used["references"] = Path(used["references"])
    source = Path(path) if path is not None else ZOO_EVAL
    try:
        cases = LOADERS[kind](source, **used)
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error) as e:
        raise FailureLensError(
            f"{source} is not readable as UTF-8 text ({type(e).__name__}); is it a binary file? "
            "Save it as UTF-8 JSONL, JSON or CSV."
        ) from None
    if name:
        cases = [Case(c.id, name, c.prompt, c.reference, c.segments, c.meta) for c in cases]
    files.no_lone_surrogates((f"{kind} benchmark {source}, case {c.id!r} ({part})", text) for c in cases
                             for part, text in (("id", c.id), ("prompt", c.prompt), ("reference", c.reference)))
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise FailureLensError(
                f"{kind} benchmark {path}: duplicate id {c.id!r}; ids must be unique (choose an id column).")
        seen.add(c.id)
    return cases[:limit] if limit is not None else cases


# ---- chat templates ------------------------------------------------------------------------------------

_SENTINEL = "\ue000FAILURE-LENS-CONTENT\ue001"


def apply_template(tokenizer: Any, case: Case, thinking: Optional[bool] = None) -> tuple[str, Spans]:
    """Render `case.prompt` as one user turn (+ generation prompt) and move the segment spans with it.

    How spans move: the template is first rendered with a sentinel as the user content, which gives the
    exact template text before and after the content. The real rendering must be prefix + content +
    suffix, where content is the prompt or, for templates that trim, the stripped prompt; spans are shifted
    by the prefix length (minus any trimmed leading characters) and clipped to the content. Everything
    outside the content (role headers, <think></think>, BOS written by the template) is marked special.
    A template that changes the content any other way is refused.

    thinking: passed as `enable_thinking` only when the template mentions it; otherwise ignored.
    Without a chat template, the prompt and spans are returned unchanged.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return case.prompt, {k: list(v) for k, v in case.segments.items()}
    extra = {"enable_thinking": thinking} if thinking is not None and "enable_thinking" in str(template) else {}

    def render(content: str) -> str:
        try:
            return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                 add_generation_prompt=True, **extra)
        except Exception as e:  # noqa: BLE001 - jinja errors of arbitrary templates
            raise FailureLensError(f"the chat template failed ({type(e).__name__}: {e}); turn chat templates "
                                   "off for this benchmark.") from None

    probe = render(_SENTINEL)
    if probe.count(_SENTINEL) != 1:
        raise FailureLensError("the chat template does not show the user message exactly once; "
                               "turn chat templates off for this benchmark.")
    prefix, suffix = probe.split(_SENTINEL)
    text = render(case.prompt)
    middle = text[len(prefix):len(text) - len(suffix)] if text.startswith(prefix) and text.endswith(suffix) else None
    if middle == case.prompt:
        lead = 0
    elif middle is not None and middle == case.prompt.strip():
        lead = len(case.prompt) - len(case.prompt.lstrip())
    else:
        raise FailureLensError(f"the chat template rewrites the prompt of case {case.uid}, so its segments "
                               "cannot be placed; turn chat templates off for this benchmark.")
    shift, lo, hi = len(prefix) - lead, len(prefix), len(prefix) + len(middle)
    spans: Spans = {}
    for key, values in shift_spans(case.segments, shift).items():
        spans[key] = [(max(s, lo), min(e, hi)) for s, e in values if min(e, hi) > max(s, lo)]
    spans.setdefault("special", [])
    spans["special"] += [(s, e) for s, e in ((0, lo), (hi, len(text))) if e > s]
    return text, spans
