"""The built-in model zoo: tiny Qwen3 models trained on a toy benchmark, with ready-made failure cases.

Everything here reads shipped files only (no torch import), so listing the zoo is instant.
`engine.models.load_model("zoo:<name>")` resolves a name through `zoo_path`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from engine.records import FailureLensError

ZOO_DIR = Path(__file__).parent
DATA_DIR = ZOO_DIR / "data"
MODELS_DIR = ZOO_DIR / "models"
FAILURES_PATH = ZOO_DIR / "failures.jsonl"
FAMILIES = ("instruction", "math", "code", "retrieval")

Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ZooCase:
    """One benchmark case; segments maps "special" / "instruction" / "query" to char spans in `prompt`."""

    id: str
    family: str
    prompt: str
    reference: str  # the correct continuation (one or more tokens)
    segments: dict[str, Spans]


@dataclass(frozen=True)
class CaseScore:
    """One model's exact-match score of one eval case (written by evaluate, read by the card)."""
    case_id: str
    family: str
    n_tokens: int  # prompt tokens including <bos>
    correct: bool
    fail_at: int  # index of the first wrong reference token; -1 when correct
    target_id: int  # the model's top-1 there (-1 when correct)
    contrast_id: int  # the reference token there (-1 when correct)
    logit_diff: float  # logit(target) - logit(contrast), 0.0 when correct


@dataclass(frozen=True)
class ZooFailure:
    """The first wrong greedy token of a zoo model on a case, with the prompt cut right before it.

    prompt = case prompt + the correct part of the answer; segments add "answer" for that part.
    logit_diff = logit(target) - logit(contrast) > 0 at the last position of `prompt`.
    """

    model: str
    case_id: str
    family: str
    prompt: str
    target: str  # the model's wrong top-1 token
    target_id: int
    contrast: str  # the reference token
    contrast_id: int
    logit_diff: float
    segments: dict[str, Spans]


def _spans(segments: dict) -> dict[str, Spans]:
    return {k: tuple((int(s), int(e)) for s, e in v) for k, v in segments.items()}


@lru_cache(maxsize=1)
def _index() -> dict:
    path = MODELS_DIR / "index.json"
    return json.loads(path.read_text()) if path.exists() else {"sizes": [], "checkpoints": []}


def zoo_sizes() -> list[str]:
    """Model sizes, smallest to largest."""
    return list(_index()["sizes"])


def zoo_checkpoints() -> list[str]:
    """Saved training points of one size, in training order."""
    return list(_index()["checkpoints"])


def checkpoint_series() -> dict[str, list[str]]:
    """Size -> its saved training points in training order, for every size that has any (names "<size>-stepNNNNN")."""
    out: dict[str, list[str]] = {}
    for name in zoo_checkpoints():
        out.setdefault(name.split("-step")[0], []).append(name)
    return out


def zoo_names() -> list[str]:
    return zoo_sizes() + zoo_checkpoints()


def zoo_path(name: str) -> Path:
    """Folder of a zoo model (config, safetensors and tokenizer; loads alone with from_pretrained)."""
    names = zoo_names()
    if name not in names or not (MODELS_DIR / name / "config.json").exists():
        raise FailureLensError(f"Unknown zoo model {name!r}. "
                               f"Available: {', '.join(names) or 'none (run python -m engine.zoo.train)'}.")
    return MODELS_DIR / name


def _check_family(family: Optional[str]) -> None:
    if family is not None and family not in FAMILIES:
        raise FailureLensError(f"Unknown benchmark family {family!r}. Available: {', '.join(FAMILIES)}.")


@lru_cache(maxsize=2)
def _read_split(split: str) -> tuple[ZooCase, ...]:
    with (DATA_DIR / f"{split}.jsonl").open() as f:
        rows = [json.loads(line) for line in f]
    return tuple(ZooCase(r["id"], r["family"], r["prompt"], r["reference"], _spans(r["segments"])) for r in rows)


def load_benchmark(split: str = "eval", family: Optional[str] = None) -> list[ZooCase]:
    if split not in ("train", "eval"):
        raise FailureLensError(f"Unknown benchmark split {split!r}. Available: train, eval.")
    _check_family(family)
    return [c for c in _read_split(split) if family is None or c.family == family]


@lru_cache(maxsize=2)
def _read_failures(path: str, mtime_ns: int, size: int) -> tuple[ZooFailure, ...]:
    """The failures file, parsed once per version (a page run looks cases up many times; ~50 ms a read)."""
    with open(path) as f:
        return tuple(ZooFailure(**{**r, "segments": _spans(r["segments"])}) for r in map(json.loads, f))


def load_failures(model: Optional[str] = None) -> list[ZooFailure]:
    """Ready-made failure cases, all models or one (`model` must be a zoo name)."""
    if model is not None:
        zoo_path(model)
    try:
        st = FAILURES_PATH.stat()
    except FileNotFoundError:
        return []
    every = _read_failures(str(FAILURES_PATH), st.st_mtime_ns, st.st_size)
    return [f for f in every if model is None or f.model == model]


def continuation(case_id: str, prompt: str) -> str:
    """The right answer from the end of `prompt` on, for a failure prompt cut from an eval case (prompt = case
    prompt + " " + the correct part of the answer, see evaluate.failure_record); "" when it does not match."""
    case = next((c for c in _read_split("eval") if c.id == case_id), None)
    if case is None or not prompt.startswith(case.prompt):
        return ""
    done = prompt[len(case.prompt):].strip()
    return case.reference[len(done):].lstrip() if case.reference.startswith(done) else ""


def find_failure(ref: str, default_model: Optional[str] = None) -> ZooFailure:
    """The failure case named "<zoo model>/<case id>" as the dashboard shows it ("l/eval-math-00014"); a bare
    case id is looked up under `default_model`. Unknown ids raise a FailureLensError that says how to list them."""
    model, _, case_id = ref.strip().rpartition("/")
    model = model or default_model or ""
    how = "List the valid ids with `python -m engine cases --model zoo:<name>` (or pick one in the dashboard)."
    if model not in zoo_names():
        raise FailureLensError(f"Unknown failure case {ref!r}: case ids look like 'l/eval-math-00014' "
                               f"(zoo model / case id; zoo models: {', '.join(zoo_names()) or 'none'}). {how}")
    found = [f for f in load_failures(model) if f.case_id == case_id]
    if not found:
        raise FailureLensError(f"Unknown failure case {ref!r}: zoo:{model} has no failure {case_id!r}. {how}")
    return found[0]
