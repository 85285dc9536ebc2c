"""Does a bigger (or later) model fix *this* failure? One verdict per case and model, from the model's own top-1.

The verdict rule (one rule, used by every headline, table and chart):
- **fixed**: the model's top-1 next token is the contrast's scored token (engine.compare.deltas's first-token
  rule), or a non-empty start of the right continuation (`CaseSpec.reference`, else the contrast text): a
  tokenizer that splits the answer differently still counts as right when its first piece is right.
- **still wrong**: the top-1 is the target's scored token (the reference model's mistake).
- **different wrong answer**: any other top-1.
- **not scored**: the case was skipped for that model (prompt too long, target and contrast with no token or
  the same first token); `notes` says why.
Δℓ = ℓ(target) − ℓ(contrast) on the same token pair is reported beside the verdict but does not decide it: a
narrow failure (Δℓ = +0.2) is still wrong, and a model can have Δℓ < 0 while a third token wins.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import pandas as pd
import torch

from ..models import ModelHandle
from ..records import FailureLensError, TokenChoice
from ..tokens import display, encode_prompt, resolve_token
from .deltas import CaseDelta, CaseSpec, last_logits, logit_diffs, model_label

FIXED, STILL_WRONG, DIFFERENT, NOT_SCORED = "fixed", "still wrong", "different wrong answer", "not scored"
VERDICTS = (FIXED, STILL_WRONG, DIFFERENT, NOT_SCORED)
COLUMNS = ["case_id", "family", "model", "verdict", "top1", "p_top1", "target", "p_target", "contrast", "p_contrast",
           "delta", "notes"]


@dataclass(frozen=True)
class ModelVerdict:
    """One case in one model: what it says next, how sure it is, and the verdict (module docstring)."""

    case_id: str
    family: str
    model: str
    verdict: str
    top1: Optional[TokenChoice]
    p_top1: Optional[float]
    target: Optional[TokenChoice]  # the tokens scored in this model (first token of each text)
    p_target: Optional[float]
    contrast: Optional[TokenChoice]
    p_contrast: Optional[float]
    delta: Optional[float]  # ℓ(target) − ℓ(contrast)
    notes: str = ""


@dataclass(frozen=True)
class CaseAcrossModels:
    """One case in several models, in the given model order."""

    case: CaseSpec
    rows: tuple[ModelVerdict, ...]


def verdict(top1: TokenChoice, target: TokenChoice, contrast: TokenChoice, reference: str = "") -> str:
    """fixed / still wrong / different wrong answer for a model whose next token is `top1` (module docstring).
    reference: the right continuation from the cut on; "" -> only the contrast token counts as right."""
    if top1.token_id == contrast.token_id:
        return FIXED
    if top1.token_id == target.token_id:
        return STILL_WRONG
    piece = top1.text.strip()
    return FIXED if piece and reference.lstrip().startswith(piece) else DIFFERENT


def from_delta(d: CaseDelta, case: CaseSpec) -> ModelVerdict:
    """The verdict of one `CaseDelta` (from engine.compare.deltas.logit_diffs) for its case."""
    if d.delta is None or d.top1 is None or d.target is None or d.contrast is None:
        return ModelVerdict(d.case_id, d.family, d.model, NOT_SCORED, None, None, d.target, None, d.contrast, None,
                            None, d.note())
    v = verdict(d.top1, d.target, d.contrast, case.reference or case.contrast)
    return ModelVerdict(d.case_id, d.family, d.model, v, d.top1, d.p_top1, d.target, d.p_target, d.contrast,
                        d.p_contrast, d.delta, d.note())


def from_logits(logits: torch.Tensor, tokenizer, case: CaseSpec, model: str, target: TokenChoice,
                contrast: TokenChoice, notes: str = "") -> ModelVerdict:
    """The verdict from one row of next-token logits [vocab] (for tests and callers with their own forward)."""
    row = logits.float()
    probs = torch.softmax(row, -1)
    top = int(row.argmax())
    top1 = TokenChoice(top, display(tokenizer, top))
    delta = float(row[target.token_id] - row[contrast.token_id])
    return ModelVerdict(case.case_id, case.family, model,
                        verdict(top1, target, contrast, case.reference or case.contrast),
                        top1, float(probs[top]), target, float(probs[target.token_id]), contrast,
                        float(probs[contrast.token_id]), delta, notes)


def verdicts(deltas: Sequence[CaseDelta], cases: Sequence[CaseSpec]) -> list[ModelVerdict]:
    """`from_delta` for each CaseDelta of one or several models (cases matched by id)."""
    by_id = {c.case_id: c for c in cases}
    return [from_delta(d, by_id[d.case_id]) for d in deltas if d.case_id in by_id]


def case_across_models(handles: Sequence[ModelHandle], case: CaseSpec, labels: Optional[Sequence[str]] = None,
                       progress: Optional[Callable[[int, int, str], None]] = None) -> CaseAcrossModels:
    """One case in every model (one forward each): top-1, p(target), p(contrast), Δℓ on the same token texts,
    and the verdict. labels: row names (default: each model's label)."""
    labels = list(labels) if labels is not None else [model_label(h) for h in handles]
    if len(labels) != len(handles):
        raise FailureLensError(f"{len(handles)} models but {len(labels)} labels; give one label per model.")
    rows = []
    for k, (handle, name) in enumerate(zip(handles, labels)):
        d = logit_diffs(handle, [case])[0]
        rows.append(from_delta(dataclasses.replace(d, model=name), case))
        if progress:
            progress(k + 1, len(handles), f"{name}: {rows[-1].verdict}")
    return CaseAcrossModels(case, tuple(rows))


def table(rows: Iterable[ModelVerdict]) -> pd.DataFrame:
    """One row per (case, model): COLUMNS, token texts as shown to people."""
    def text(t: Optional[TokenChoice]) -> str:
        return t.text if t is not None else ""

    out = [{"case_id": r.case_id, "family": r.family, "model": r.model, "verdict": r.verdict, "top1": text(r.top1),
            "p_top1": r.p_top1, "target": text(r.target), "p_target": r.p_target, "contrast": text(r.contrast),
            "p_contrast": r.p_contrast, "delta": r.delta, "notes": r.notes} for r in rows]
    return pd.DataFrame(out, columns=COLUMNS)


def counts(rows: Iterable[ModelVerdict], models: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Verdict counts per model: model, verdict, count, cases (every verdict listed, zeros included; models in
    first-seen order, or `models`)."""
    rows = list(rows)
    models = list(models) if models is not None else list(dict.fromkeys(r.model for r in rows))
    out = []
    for m in models:
        mine = [r for r in rows if r.model == m]
        out += [{"model": m, "verdict": v, "count": sum(r.verdict == v for r in mine), "cases": len(mine)}
                for v in VERDICTS]
    return pd.DataFrame(out, columns=["model", "verdict", "count", "cases"])


def headline(counts_: pd.DataFrame, model: str) -> str:
    """'fixed 3 of 12' for one model of a `counts` table (the page metrics and the CLI say the same)."""
    mine = counts_[counts_["model"] == model]
    fixed = int(mine.loc[mine["verdict"] == FIXED, "count"].sum())
    return f"fixed {fixed} of {int(mine['cases'].max()) if len(mine) else 0}"


@dataclass(frozen=True)
class TrainingCounts:
    """What training fixed and broke, from the first and the last checkpoint's verdicts of each case."""

    cases: int
    fixed_last: int  # right at the last checkpoint
    fixed_by_training: int  # wrong at the first, right at the last
    broken: int  # right at the first, wrong at the last
    lost_again: int  # wrong at both ends, right at some checkpoint between
    never: int  # wrong at every checkpoint


def training_counts(rows: Iterable[ModelVerdict], first: str, last: str) -> TrainingCounts:
    """TrainingCounts of the cases in `rows` between checkpoints `first` and `last` (the page and the deck)."""
    rows = list(rows)
    at = {(r.case_id, r.model): r.verdict for r in rows}
    ids = set(r.case_id for r in rows)
    fixed_first = {c for c in ids if at.get((c, first)) == FIXED}
    fixed_last = {c for c in ids if at.get((c, last)) == FIXED}
    fixed_ever = {r.case_id for r in rows if r.verdict == FIXED}
    return TrainingCounts(len(ids), len(fixed_last), len(fixed_last - fixed_first), len(fixed_first - fixed_last),
                          len(fixed_ever - fixed_first - fixed_last), len(ids - fixed_ever))


def spec_from_view(handle: ModelHandle, prompt: str, target: str = "", contrast: str = "", case_id: str = "prompt",
                   **fields) -> CaseSpec:
    """A model-independent case from a view (prompt, target, contrast as the Heatmap page holds them): '#id' or
    text is resolved in `handle`'s tokenizer to its text; empty target / contrast -> the model's top-1 /
    runner-up. fields: segments, family, reference for CaseSpec."""
    tok = handle.tokenizer
    ids = encode_prompt(tok, prompt).ids
    chosen = {}
    for what, value in (("target", target), ("contrast", contrast)):
        if value:
            chosen[what] = resolve_token(tok, int(value[1:]) if value.startswith("#") and value[1:].isdigit()
                                         else value, what).text
    if len(chosen) < 2:
        with handle.lock:
            row = last_logits(handle, [ids])[0]
        ranked = [int(i) for i in row.topk(3).indices]
        for what in ("target", "contrast"):
            if what not in chosen:
                chosen[what] = next(t for t in (display(tok, i) for i in ranked) if t not in chosen.values())
    if chosen["target"] == chosen["contrast"]:
        raise FailureLensError(f"Target and contrast are the same token {chosen['target']!r}; pick two different "
                               "tokens on the Heatmap page.")
    return CaseSpec(case_id, prompt, chosen["target"], chosen["contrast"], **fields)
