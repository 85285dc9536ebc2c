"""Comparing models on the same failure cases: Δℓ across model sizes and checkpoints, segment breakdowns.

Cases carry the target and contrast as TEXT, because the models compared may have different tokenizers.
Per model (the token rule):
- The prompt is tokenised exactly as `engine.attribute` does (`encode_prompt`, with the tokenizer's special
  tokens such as BOS), so the Δℓ here equals the `logit_diff` of a heatmap of the same case.
- The target / contrast text is tokenised alone, without special tokens. One token: used as is. Several tokens:
  the FIRST token is used and a note says so in `CaseDelta.notes` (shown in every table) — the next-token
  logit can only score one token, and the first is the one the model must put first. No tokens, or target and
  contrast sharing their first token (Δℓ would be 0 by construction): the case is skipped for that model, with
  the reason in `CaseDelta.skipped`; tables keep the row with a missing Δℓ.
Δℓ = ℓ(target) − ℓ(contrast) from the logits at the last prompt position.

Batching: cases are sorted by length and packed up to `max_batch_tokens` padded tokens, padded on the left
with an attention mask and explicit position ids (0 at the first real token), so absolute-position models
(GPT-2) see the same positions as unbatched; tests check batched == unbatched within 1e-5. A row that comes
out non-finite from a padded batch is rerun alone (some attention kernels turn fully masked rows into NaN).
Progress: `progress(done, total, message)` is called before the first batch and after each; to cancel,
raise from the callback (the exception propagates; nothing is half-written).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch

from ..cases.segments import assign_segments, segment_relevance
from ..heatmap import attribute
from ..models import ModelHandle, load_model
from ..objectives import Objective
from ..records import FailureLensError, TokenChoice
from ..tokens import display, encode_prompt

log = logging.getLogger(__name__)

Progress = Optional[Callable[[int, int, str], None]]
SEGMENT_COLUMNS = ("total", "instruction", "query", "answer", "special")


@dataclass(frozen=True)
class CaseSpec:
    """One failure case, model-independent. segments: name -> char spans in `prompt` (see engine.cases.segments)."""

    case_id: str
    prompt: str
    target: str  # the wrong token's text (what the reference model preferred)
    contrast: str  # the correct token's text
    segments: Mapping[str, Sequence[tuple[int, int]]] = field(default_factory=dict)
    family: str = ""
    reference: str = ""  # the right continuation from the cut on ("" -> the contrast text); see verdicts


@dataclass(frozen=True)
class CaseDelta:
    """Δℓ of one case in one model. delta is None when the case was skipped (`skipped` says why)."""

    case_id: str
    model: str  # model_label(handle)
    family: str
    delta: Optional[float]
    target: Optional[TokenChoice] = None  # the token actually scored in this model
    contrast: Optional[TokenChoice] = None
    n_tokens: int = 0  # prompt tokens in this model
    notes: tuple[str, ...] = ()
    skipped: Optional[str] = None
    top1: Optional[TokenChoice] = None  # the model's own next token at the cut
    p_top1: Optional[float] = None  # softmax probabilities at the last position
    p_target: Optional[float] = None
    p_contrast: Optional[float] = None

    def note(self) -> str:
        return "; ".join(([f"skipped: {self.skipped}"] if self.skipped else []) + list(self.notes))


@dataclass(frozen=True)
class _Prepared:
    ids: list[int]
    target: TokenChoice
    contrast: TokenChoice
    notes: tuple[str, ...]


def model_label(handle: ModelHandle) -> str:
    """The handle's label, with '@revision' when a revision was loaded (checkpoints share one label)."""
    rev = handle.fingerprint.revision
    return f"{handle.label}@{rev}" if rev else handle.label


def cases_from_failures(failures: Iterable[Any]) -> list[CaseSpec]:
    """CaseSpecs from zoo failures (`engine.zoo.load_failures`) or any records with the same fields; the
    reference continuation comes from the record's `reference`, else from the zoo benchmark."""
    from ..zoo import continuation

    return [CaseSpec(f.case_id, f.prompt, f.target, f.contrast,
                     {k: [tuple(s) for s in v] for k, v in f.segments.items()}, f.family,
                     getattr(f, "reference", "") or continuation(f.case_id, f.prompt)) for f in failures]


def first_token(tokenizer: Any, text: str, what: str) -> tuple[Optional[TokenChoice], Optional[str]]:
    """(token, note): the first token of `text` alone; note is set when text is several tokens.
    (None, reason) when it gives no token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    if not ids:
        return None, f"the {what} {text!r} gives no token in this tokenizer"
    choice = TokenChoice(int(ids[0]), display(tokenizer, ids[0]))
    if len(ids) == 1:
        return choice, None
    pieces = " | ".join(repr(display(tokenizer, i)) for i in ids)
    return choice, f"{what} {text!r} is {len(ids)} tokens here ({pieces}); scored its first token {choice.text!r}"


def _prepare(handle: ModelHandle, case: CaseSpec) -> _Prepared | str:
    """Token ids and scored tokens of one case, or the reason to skip it."""
    tok = handle.tokenizer
    try:
        ids = encode_prompt(tok, case.prompt).ids
    except FailureLensError as e:
        return str(e)
    if len(ids) > handle.context_length:
        return f"the prompt is {len(ids)} tokens, more than the model's context of {handle.context_length}"
    tgt, t_note = first_token(tok, case.target, "target")
    con, c_note = first_token(tok, case.contrast, "contrast")
    if tgt is None or con is None:
        return t_note if tgt is None else c_note
    if tgt.token_id == con.token_id:
        return f"target {case.target!r} and contrast {case.contrast!r} start with the same token {tgt.text!r}"
    return _Prepared(ids, tgt, con, tuple(n for n in (t_note, c_note) if n))


def _batches(lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first; each batch's padded size (rows x longest) stays within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * lengths[out[-1][0]] <= max_batch_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@torch.inference_mode()
def last_logits(handle: ModelHandle, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    """[len(seqs), vocab] float32 logits at the last token of each sequence, in one left-padded forward."""
    width = max(len(s) for s in seqs)
    pad = handle.tokenizer.pad_token_id
    pad = int(pad if pad is not None else 0)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, width - len(s):] = torch.tensor(list(s))
        mask[r, width - len(s):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                       position_ids=positions.to(handle.device), logits_to_keep=1, use_cache=False)
    return out.logits[:, -1].float()


def logit_diffs(handle: ModelHandle, cases: Sequence[CaseSpec], progress: Progress = None,
                max_batch_tokens: int = 4096) -> list[CaseDelta]:
    """Δℓ = ℓ(target) − ℓ(contrast) at the last position of each case, one `CaseDelta` per case, in order."""
    if max_batch_tokens < 1:
        raise FailureLensError(f"max_batch_tokens = {max_batch_tokens}; use a positive number (e.g. 4096).")
    label = model_label(handle)
    prepared = [_prepare(handle, c) for c in cases]
    results: list[Optional[CaseDelta]] = [
        None if isinstance(p, _Prepared) else CaseDelta(c.case_id, label, c.family, None, skipped=p)
        for c, p in zip(cases, prepared)
    ]
    todo = [i for i, p in enumerate(prepared) if isinstance(p, _Prepared)]
    n, done = len(cases), len(cases) - len(todo)
    if progress:
        progress(done, n, f"{label}: {done}/{n} cases")
    t0 = time.perf_counter()
    batches = _batches([len(prepared[i].ids) for i in todo], max_batch_tokens)
    for batch in batches:
        rows = [todo[b] for b in batch]
        with handle.lock:
            logits = last_logits(handle, [prepared[i].ids for i in rows])
        for r, i in enumerate(rows):
            p, c = prepared[i], cases[i]
            row = logits[r]
            delta = float(row[p.target.token_id] - row[p.contrast.token_id])
            if not math.isfinite(delta) and len(rows) > 1:  # some attention kernels turn padding into NaN
                with handle.lock:
                    row = last_logits(handle, [p.ids])[0]
                delta = float(row[p.target.token_id] - row[p.contrast.token_id])
            if not math.isfinite(delta):
                raise FailureLensError(f"Δℓ of case {c.case_id} is not finite in {label} (numeric overflow); "
                                       "reload the model in float32 or bfloat16.")
            probs = torch.softmax(row, -1)  # [vocab]
            top = int(row.argmax())
            results[i] = CaseDelta(c.case_id, label, c.family, delta, p.target, p.contrast, len(p.ids), p.notes,
                                   top1=TokenChoice(top, display(handle.tokenizer, top)), p_top1=float(probs[top]),
                                   p_target=float(probs[p.target.token_id]),
                                   p_contrast=float(probs[p.contrast.token_id]))
        done += len(rows)
        if progress:
            progress(done, n, f"{label}: {done}/{n} cases")
    log.info("logit_diffs %s: %d cases (%d skipped) in %d batches, %.2fs", label, n, n - len(todo), len(batches),
             time.perf_counter() - t0)
    return [r for r in results if r is not None]


# ---- model scaling ---------------------------------------------------------------------------------------

def scaling_table(ref_label: str, deltas_by_model: Mapping[str, Sequence[CaseDelta]],
                  corrected: tuple[float, float] = (1.0, -1.0)) -> pd.DataFrame:
    """One row per (case of the reference model, other model): x = delta_ref, y = delta.

    corrected: (x_min, y_max); a case is corrected in a model when delta_ref > x_min and delta < y_max
    (strict; False where either Δℓ is missing). notes joins both models' notes and skip reasons.
    """
    if ref_label not in deltas_by_model:
        raise FailureLensError(f"Reference model {ref_label!r} has no Δℓ; compute it first "
                               f"(have: {', '.join(deltas_by_model) or 'none'}).")
    x_min, y_max = corrected
    rows = []
    for model, deltas in deltas_by_model.items():
        if model == ref_label:
            continue
        by_case = {d.case_id: d for d in deltas}
        for ref in deltas_by_model[ref_label]:
            d = by_case.get(ref.case_id)
            x = ref.delta if ref.delta is not None else math.nan
            y = d.delta if d is not None and d.delta is not None else math.nan
            notes = [f"{ref_label}: {ref.note()}" if ref.note() else "",
                     f"{model}: {d.note()}" if d is not None and d.note() else "",
                     "" if d is not None else f"{model}: not computed for this case"]
            rows.append({"case_id": ref.case_id, "family": ref.family, "model": model, "delta_ref": x,
                         "delta": y, "corrected": bool(x > x_min and y < y_max),
                         "notes": "; ".join(n for n in notes if n)})
    return pd.DataFrame(rows, columns=["case_id", "family", "model", "delta_ref", "delta", "corrected", "notes"])


def ecdf(values: Iterable[Optional[float]]) -> pd.DataFrame:
    """Empirical CDF: one row per distinct value, fraction = share of values <= it (missing values dropped)."""
    s = pd.Series([v for v in values if v is not None], dtype=float).dropna().sort_values()
    counts = s.value_counts(sort=False).sort_index()
    return pd.DataFrame({"value": counts.index.to_numpy(dtype=float),
                         "fraction": counts.cumsum().to_numpy() / max(len(s), 1)})


# ---- segment breakdown -----------------------------------------------------------------------------------

def segment_breakdown(handle: ModelHandle, cases: Sequence[CaseSpec], progress: Progress = None) -> pd.DataFrame:
    """Normalised segment relevance per case (engine.cases.segments rule) from a logit_diff/by_ref_token heatmap.

    Columns: case_id, family, model, delta, total, instruction, query, answer, special, notes.
    Targets/contrasts follow the module's token rule; skipped cases keep a row with missing values.
    """
    label = model_label(handle)
    rows = []
    if progress:
        progress(0, len(cases), f"{label}: 0/{len(cases)} heatmaps")
    for n, case in enumerate(cases, 1):
        row: dict[str, Any] = {"case_id": case.case_id, "family": case.family, "model": label, "delta": math.nan,
                               **{s: math.nan for s in SEGMENT_COLUMNS}}
        p = _prepare(handle, case)
        try:
            if not isinstance(p, _Prepared):
                raise FailureLensError(p)
            att = attribute(handle, case.prompt, Objective(p.target.token_id, p.contrast.token_id))
            labels = assign_segments(att.offsets, case.segments, att.special_mask)
            rel = segment_relevance(att.relevance, labels)
            row.update(delta=att.logit_diff, **{s: rel[s] for s in SEGMENT_COLUMNS}, notes="; ".join(p.notes))
        except FailureLensError as e:  # one bad case (overflow, too long) must not lose the others
            row["notes"] = f"skipped: {e}"
        rows.append(row)
        if progress:
            progress(n, len(cases), f"{label}: {n}/{len(cases)} heatmaps")
    return pd.DataFrame(rows, columns=["case_id", "family", "model", "delta", *SEGMENT_COLUMNS, "notes"])


def mean_by_model(breakdown: pd.DataFrame, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Long table for grouped bars: by..., segment, mean, sem, n (missing values left out; groups keep
    their first-seen order). Split by correction status with by=("model", "corrected") after a merge."""
    long = breakdown.melt(id_vars=list(by), value_vars=list(SEGMENT_COLUMNS), var_name="segment")
    g = long.dropna(subset=["value"]).groupby([*by, "segment"], sort=False)["value"]
    return pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.count()}).reset_index()


# ---- checkpoint evolution --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """One point of a training run: what to load and how to call it."""

    source: str  # hub id, local folder or zoo:<name>
    revision: Optional[str]
    label: str


def _names(values: str | Sequence[str]) -> list[str]:
    parts = values.replace(",", " ").split() if isinstance(values, str) else [str(v).strip() for v in values]
    return [p for p in parts if p]


def checkpoint_labels(source: str, revisions: str | Sequence[str] = ()) -> list[Checkpoint]:
    """Checkpoints of one source. revisions: a list or a comma/space separated string; empty -> the source
    itself. source "zoo": the revisions are zoo model names (e.g. zoo_checkpoints()). Labels are
    '<last part of the source>@<revision>' (the zoo name for the zoo)."""
    source = (source or "").strip()
    if not source:
        raise FailureLensError("No model given for the checkpoints: type a hub id, a local folder or 'zoo'.")
    revs = _names(revisions)
    if len(set(revs)) != len(revs):
        raise FailureLensError(f"Revision list of {source!r} names a revision twice; list each once.")
    if source == "zoo":
        if not revs:
            raise FailureLensError("Name the zoo checkpoints to compare (e.g. those of zoo_checkpoints()).")
        return [Checkpoint(f"zoo:{r}", None, r) for r in revs]
    short = source.rstrip("/").split("/")[-1]
    if not revs:
        return [Checkpoint(source, None, short)]
    return [Checkpoint(source, r, f"{short}@{r}") for r in revs]


def checkpoint_deltas(checkpoints: Sequence[Checkpoint | ModelHandle], cases: Sequence[CaseSpec],
                      load: Optional[Callable[[Checkpoint], ModelHandle]] = None, progress: Progress = None,
                      max_batch_tokens: int = 4096) -> dict[str, list[CaseDelta]]:
    """Δℓ per checkpoint, in the given order, loading one checkpoint at a time (a page passes its cached
    loader as `load`; default load_model(source, revision)). Progress counts over all checkpoints x cases."""
    load = load or (lambda cp: load_model(cp.source, revision=cp.revision))
    labels = [c.label if isinstance(c, Checkpoint) else model_label(c) for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise FailureLensError(f"Two checkpoints share a label ({', '.join(labels)}); give each a distinct one.")
    out: dict[str, list[CaseDelta]] = {}
    total = len(checkpoints) * len(cases)
    for k, (cp, label) in enumerate(zip(checkpoints, labels)):
        handle = load(cp) if isinstance(cp, Checkpoint) else cp

        def step(i: int, _n: int, _msg: str, k: int = k, label: str = label) -> None:
            if progress:
                progress(k * len(cases) + i, total, f"{label} ({k + 1}/{len(checkpoints)}): {i}/{len(cases)} cases")

        deltas = logit_diffs(handle, cases, step, max_batch_tokens)
        out[label] = [dataclasses.replace(d, model=label) for d in deltas]
        del handle  # let a non-cached checkpoint go before the next loads
    return out


def evolution_table(
    checkpoints: Mapping[str, Sequence[CaseDelta]] | Sequence[Checkpoint | ModelHandle],
    cases: Sequence[CaseSpec] = (),
    **kwargs: Any,
) -> pd.DataFrame:
    """Δℓ per (case, checkpoint): columns case_id, family, checkpoint, order, delta, notes.

    checkpoints: label -> Δℓ already computed (order = the mapping's order), or checkpoints / handles to run
    on `cases` through `checkpoint_deltas` (kwargs: load, progress, max_batch_tokens).
    """
    if not isinstance(checkpoints, Mapping):
        if not cases:
            raise FailureLensError("No cases to follow across checkpoints; pick failure cases first.")
        checkpoints = checkpoint_deltas(checkpoints, cases, **kwargs)
    rows = [{"case_id": d.case_id, "family": d.family, "checkpoint": label, "order": order,
             "delta": d.delta if d.delta is not None else math.nan, "notes": d.note()}
            for order, (label, deltas) in enumerate(checkpoints.items()) for d in deltas]
    return pd.DataFrame(rows, columns=["case_id", "family", "checkpoint", "order", "delta", "notes"])


def mean_line(evolution: pd.DataFrame) -> pd.DataFrame:
    """Mean Δℓ per checkpoint, in order: checkpoint, order, mean, sem, n (missing Δℓ left out)."""
    g = evolution.groupby(["order", "checkpoint"])["delta"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.count()}).reset_index()
    return out[["checkpoint", "order", "mean", "sem", "n"]].sort_values("order", ignore_index=True)
