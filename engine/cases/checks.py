"""Does the heatmap explain the failure? Token deletion and insertion curves with a verdict in words.

For one case (input ids, per-token relevance, target, contrast) every curve is Δℓ = ℓ(target) − ℓ(contrast)
at the last position after replacing some tokens by a replacement token, for k = 0..K:

- target:    the k tokens with the largest positive relevance removed (the heatmap's red tokens);
- contrast:  the k tokens with the most negative relevance removed (the blue tokens; Δℓ should rise);
- random:    k ordinary tokens in a random order, once per seed; mean and spread (population std) per k;
- insertion: every ordinary token replaced except the k red ones (does the heatmap's top alone rebuild Δℓ?).

Removing keeps the sequence length and positions (the id is swapped, nothing is dropped). Special tokens
(BOS, template tokens) are never removed. The replacement (`replacement_id`): "neutral" (default: the
tokenizer's unk token, else its pad token, else a single space: `faithfulness.neutral_mask_id`), "pad",
"unk", or an explicit id.

Area between curves: mean over k = 1..K of (random mean − target), in logit units; positive when removing
the red tokens lowers Δℓ more than removing as many random tokens.

Over a sweep, each checked failure gets a causal outcome in the reference study's codes (`causal_outcome`):
M-IA (input attribution explains it: verdict explains or partly), NC-IA+M-AG (it does not, but the graph's top
nodes do: correlation of predicted and measured zero-ablation change ≥ R_GRAPH), NC-IA+AG (no clue).

Verdicts (thresholds are module constants, stated in the sentences and in the README):
- explains      the target curve flips (Δℓ < 0) at some k ≤ K while the random mean at that k is still > 0;
- fragile       the target curve flips, but so does the random mean at that k (any removal breaks this case);
- partly        no flip, but removing the top K cuts Δℓ by ≥ PARTLY_SHARE of its value and beats the random
                mean by more than RANDOM_MARGIN_STD random standard deviations;
- not_explained anything else;
- no_failure    Δℓ ≤ 0 before removing anything (the model already prefers the contrast).

All rows of all curves are built as one [rows, T] batch and run in as few forward passes as memory allows;
a row whose first removed token is at position p runs only positions p.. on the cached keys and values of the
unchanged prompt before p (`PrefixCache`; tested equal to full forwards on every architecture).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

from engine.cases.faithfulness import neutral_mask_id
from engine.records import FailureLensError

REPLACEMENTS = ("neutral", "pad", "unk")
PARTLY_SHARE = 0.5  # "partly": removing the top K cuts Δℓ by at least this share of its starting value
RANDOM_MARGIN_STD = 2.0  # ... and lands this many random standard deviations below the random mean
VERDICTS = ("explains", "fragile", "partly", "not_explained", "no_failure")
R_GRAPH = 0.5  # a failure counts as explained by the graph when its top nodes' zero-ablation correlation reaches this
_ACTIVATION_BYTES = 256 << 20  # per forward chunk


@dataclass(frozen=True)
class DeletionCurves:
    """Curves of one case; every curve is Δℓ for k = 0..len-1 (index 0 = nothing removed)."""

    base_logit_diff: float
    target: tuple[float, ...]
    contrast: tuple[float, ...]
    random_mean: tuple[float, ...]
    random_std: tuple[float, ...]
    insertion: tuple[float, ...]  # k red tokens kept, every other ordinary token replaced
    target_positions: tuple[int, ...]  # removal order of the target curve (token positions)
    target_tokens: tuple[str, ...]
    contrast_positions: tuple[int, ...]
    flip_k: Optional[int]  # smallest k with target[k] < 0
    flip_top: Optional[str]  # the model's top-1 token after removing the top flip_k tokens
    area: float  # mean over k >= 1 of (random_mean - target)
    verdict: str  # one of VERDICTS
    sentence: str  # the verdict in words
    replacement: str
    mask_id: int
    seeds: tuple[int, ...]
    k_max: int
    forward_rows: int  # masked variants computed (all curves together)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeletionCurves":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


def replacement_id(tokenizer: Any, replacement: Union[str, int] = "neutral") -> int:
    """The id that replaces removed tokens: "neutral", "pad", "unk", or an id (int or "#123")."""
    if isinstance(replacement, int) or (isinstance(replacement, str) and replacement.lstrip("#").isdigit()):
        tid = int(str(replacement).lstrip("#"))
        if not 0 <= tid < len(tokenizer):
            raise FailureLensError(f"Replacement token id {tid} is outside the vocabulary (0..{len(tokenizer) - 1}).")
        return tid
    if replacement == "neutral":
        return neutral_mask_id(tokenizer)
    if replacement in ("pad", "unk"):
        value = getattr(tokenizer, f"{replacement}_token_id", None)
        if value is None:
            raise FailureLensError(
                f"This tokenizer has no {replacement} token; use replacement 'neutral' or a token id.")
        return int(value)
    raise FailureLensError(f"Unknown replacement {replacement!r}: use one of {', '.join(REPLACEMENTS)} or a token id.")


def _chunk_rows(model: Any, n_tokens: int) -> int:
    cfg = getattr(model, "config", None)
    d = int(getattr(cfg, "hidden_size", 1024) or 1024)
    heads = int(getattr(cfg, "num_attention_heads", 16) or 16)
    per_row = 4 * n_tokens * (16 * d + heads * n_tokens)  # float32 activations of one row, roughly
    return max(1, _ACTIVATION_BYTES // max(per_row, 1))


class PrefixCache:
    """Keys and values of one unpatched forward over a prompt, to re-run rows from position t on.

    Rows that change nothing before position t run only positions t.. on a copy cropped to t and repeated
    over the rows (the model's own cache API, so every architecture keeps its own masks and positions).
    `ok` is False where the cache cannot roll back (sliding-window layers) or the model has none: every
    row then runs the whole prompt.
    """

    def __init__(self, model: Any, ids: torch.Tensor):
        self.model, self.n = model, ids.shape[-1]
        self.name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        try:
            out = model(input_ids=ids, logits_to_keep=1, use_cache=True)
        except TypeError:  # models without logits_to_keep / caches
            out = model(input_ids=ids)
        self.logits = out.logits[:, -1].float()  # [1, V]
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self.ok = (cache is not None and bool(getattr(cache, "is_croppable", False))
                   and not any(getattr(cache, "is_sliding", ())))
        self.cache = cache if self.ok else None

    def kwargs(self, t0: int, rows: int) -> dict[str, Any]:
        """Forward kwargs (besides the ids of positions t0..) for `rows` rows that start at t0."""
        if not t0:
            return {}
        past = copy.deepcopy(self.cache)
        past.crop(t0 - self.n)  # a negative crop keeps positions 0..t0-1
        past.batch_repeat_interleave(rows)
        return {self.name: past, "use_cache": True}


@torch.inference_mode()
def _last_logits(model: Any, batch: torch.Tensor, chunk: int, starts: Optional[list[int]] = None) -> torch.Tensor:
    """[B, V] last-position logits of every row of `batch` [B, T], `chunk` rows per forward.

    starts[i]: the first position where row i differs from row 0 (the unchanged prompt); rows are grouped by
    it and run on the cached prefix (PrefixCache) where the model allows.
    """
    prefix = PrefixCache(model, batch[:1]) if starts is not None else None
    if prefix is None or not prefix.ok:
        starts = [0] * batch.shape[0]
    groups: dict[int, list[int]] = {}
    for row, t0 in enumerate(starts):
        groups.setdefault(t0, []).append(row)
    out: dict[int, torch.Tensor] = {}
    for t0, rows in groups.items():
        if t0 >= batch.shape[1]:  # nothing changed: the prompt's own logits
            out.update((r, prefix.logits[0]) for r in rows)
            continue
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            extra = prefix.kwargs(t0, len(part)) if prefix is not None and prefix.ok else {}
            try:
                logits = model(input_ids=batch[part, t0:], logits_to_keep=1, **extra).logits
            except TypeError:  # models without logits_to_keep
                logits = model(input_ids=batch[part, t0:], **extra).logits
            out.update(zip(part, logits[:, -1].float()))
    return torch.stack([out[r] for r in range(batch.shape[0])])


def _verdict(base: float, target: list[float], rmean: list[float], rstd: list[float], flip_k: Optional[int],
             flip_top: Optional[str], target_text: str, contrast_text: str) -> tuple[str, str]:
    k_max = len(target) - 1
    if base <= 0:
        return "no_failure", (f"The model already prefers {contrast_text!r} over {target_text!r} "
                              f"(Δℓ = {base:+.2f}): there is no failure to explain.")
    if flip_k is not None:
        one = flip_k == 1
        top, them = ("token accounts", "it") if one else (f"{flip_k} tokens account", "them")
        answer = f"flips the answer to {flip_top!r}" if flip_top == contrast_text else \
            f"makes the model prefer {contrast_text!r} to {target_text!r} (its top answer becomes {flip_top!r})"
        if rmean[flip_k] > 0:
            return "explains", f"The heatmap's top {top} for the failure: removing {them} {answer}."
        many = "one random token does" if one else f"{flip_k} random tokens does"
        return "fragile", (f"Removing the heatmap's top {'token' if one else f'{flip_k} tokens'} {answer}, but "
                           f"removing {many} too (mean Δℓ {rmean[flip_k]:+.2f}): this case breaks under any "
                           "removal, so the flip does not single out the highlighted tokens.")
    if k_max == 0:
        return "not_explained", "No token supports the wrong answer in the heatmap: it does not explain this failure."
    drop = base - target[-1]
    margin = rmean[-1] - target[-1]
    if drop >= PARTLY_SHARE * base and margin > RANDOM_MARGIN_STD * rstd[-1]:
        return "partly", (f"Removing the heatmap's top {k_max} tokens cuts Δℓ from {base:+.2f} to {target[-1]:+.2f} "
                          f"({drop / base:.0%}; random tokens: {rmean[-1]:+.2f}), but the model still prefers "
                          f"{target_text!r}: the heatmap explains part of this failure.")
    how = "does not lower Δℓ" if target[-1] >= base else "changes little"
    return "not_explained", (f"Removing the highlighted tokens {how} (Δℓ {base:+.2f} → {target[-1]:+.2f} "
                             f"after {k_max}; random tokens: {rmean[-1]:+.2f}): the heatmap does not explain "
                             "this failure.")


def deletion_curves(model: Any, tokenizer: Any, input_ids: Sequence[int], relevance: Sequence[float],
                    target_id: int, contrast_id: int, special_mask: Optional[Sequence[bool]] = None, k: int = 10,
                    seeds: Sequence[int] = (0, 1, 2, 3, 4), replacement: Union[str, int] = "neutral",
                    insertion: bool = True, chunk: Optional[int] = None, reuse_prefix: bool = True) -> DeletionCurves:
    """The curves, area and verdict of the module docstring for one case.

    input_ids / relevance / special_mask: [T] aligned; relevance > 0 supports the target.
    """
    if len(input_ids) != len(relevance):
        raise FailureLensError(f"{len(input_ids)} tokens but {len(relevance)} relevance values; "
                               "pass the ids the relevance was computed for.")
    if not 1 <= int(k) <= 1000:
        raise FailureLensError(f"K = {k} is out of range; use 1..1000 (10 is the usual choice).")
    if not seeds:
        raise FailureLensError("Give at least one random seed for the random baseline.")
    mask_id = replacement_id(tokenizer, replacement)
    n = len(input_ids)
    special = list(special_mask) if special_mask is not None else [False] * n
    plain = [i for i in range(n) if not special[i]]
    k_max = min(int(k), len(plain))
    by_target = sorted((i for i in plain if relevance[i] > 0), key=lambda i: -relevance[i])[:k_max]
    by_contrast = sorted((i for i in plain if relevance[i] < 0), key=lambda i: relevance[i])[:k_max]
    shuffled = []
    for seed in seeds:
        order = list(plain)
        random.Random(seed).shuffle(order)
        shuffled.append(order[:k_max])

    device = next(model.parameters()).device
    ids = torch.tensor(list(input_ids), device=device)
    masks: list[torch.Tensor] = [torch.zeros(n, dtype=torch.bool, device=device)]  # row 0: the case itself

    def removals(order: list[int], upto: int) -> list[int]:
        rows = []
        for j in range(1, upto + 1):
            m = torch.zeros(n, dtype=torch.bool, device=device)
            m[order[:j]] = True
            rows.append(len(masks))
            masks.append(m)
        return rows

    rows_target = removals(by_target, len(by_target))
    rows_contrast = removals(by_contrast, len(by_contrast))
    rows_random = [removals(order, k_max) for order in shuffled]
    rows_insert = []
    if insertion:
        everything = torch.zeros(n, dtype=torch.bool, device=device)
        everything[plain] = True
        for j in range(0, len(by_target) + 1):
            m = everything.clone()
            m[by_target[:j]] = False
            rows_insert.append(len(masks))
            masks.append(m)
    stacked = torch.stack(masks)  # [rows, T]
    batch = torch.where(stacked, torch.tensor(mask_id, device=device), ids[None, :])
    changed = stacked & (batch != ids[None, :])  # a replaced token equal to the replacement changes nothing
    starts = [int(r.nonzero()[0]) if r.any() else n for r in changed] if reuse_prefix else None
    logits = _last_logits(model, batch, chunk or _chunk_rows(model, n), starts)
    diffs = (logits[:, target_id] - logits[:, contrast_id]).tolist()

    base = diffs[0]
    target = [base] + [diffs[r] for r in rows_target]
    contrast = [base] + [diffs[r] for r in rows_contrast]
    per_seed = [[base] + [diffs[r] for r in rows] for rows in rows_random]
    rmean = [sum(s[j] for s in per_seed) / len(per_seed) for j in range(k_max + 1)]
    rstd = [math.sqrt(sum((s[j] - rmean[j]) ** 2 for s in per_seed) / len(per_seed)) for j in range(k_max + 1)]
    flip_k = next((j for j, d in enumerate(target) if j > 0 and d < 0), None)
    flip_top = None
    if flip_k is not None:
        flip_top = _text(tokenizer, int(logits[rows_target[flip_k - 1]].argmax()))
    upto = len(target) - 1
    area = sum(rmean[j] - target[j] for j in range(1, upto + 1)) / upto if upto else 0.0
    verdict, sentence = _verdict(base, target, rmean[:upto + 1], rstd[:upto + 1], flip_k, flip_top,
                                 _text(tokenizer, target_id),
                                 _text(tokenizer, contrast_id))
    return DeletionCurves(
        base_logit_diff=base, target=tuple(target), contrast=tuple(contrast), random_mean=tuple(rmean),
        random_std=tuple(rstd), insertion=tuple(diffs[r] for r in rows_insert),
        target_positions=tuple(by_target), target_tokens=tuple(_text(tokenizer, int(input_ids[i])) for i in by_target),
        contrast_positions=tuple(by_contrast), flip_k=flip_k, flip_top=flip_top, area=float(area), verdict=verdict,
        sentence=sentence, replacement=str(replacement), mask_id=mask_id, seeds=tuple(int(s) for s in seeds),
        k_max=k_max, forward_rows=len(masks),
    )


def _text(tokenizer: Any, token_id: int) -> str:
    from engine.tokens import display

    return display(tokenizer, token_id)


def check_attribution(handle: Any, att: Any, k: int = 10, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                      replacement: Union[str, int] = "neutral", insertion: bool = True) -> DeletionCurves:
    """`deletion_curves` for an engine `Attribution` (contrastive: it needs a contrast token)."""
    if att.contrast is None:
        raise FailureLensError("The deletion check needs a contrast token: use the logit difference against a "
                               "reference token (mode logit_diff, strategy by_ref_token).")
    with handle.lock:
        return deletion_curves(handle.model, handle.tokenizer, att.token_ids, att.relevance, att.target.token_id,
                               att.contrast.token_id, att.special_mask, k, seeds, replacement, insertion)


def causal_outcome(verdict: Optional[str], r_zero: Optional[float]) -> Optional[str]:
    """The reference study's outcome code from a case's checks (see the module docstring); None: no failure."""
    if verdict is None or verdict == "no_failure":
        return None
    if verdict in ("explains", "partly"):
        return "M-IA"
    if r_zero is not None and r_zero == r_zero and r_zero >= R_GRAPH:
        return "NC-IA+M-AG"
    return "NC-IA+AG"


def verdict_table(frame: Any, by: Sequence[str] = ("benchmark", "outcome")) -> Any:
    """How often the attribution explains the failure, per group of a results frame (Store.results_frame rows
    with check_* columns): cases checked, share of each verdict, mean area, median node correlation and the
    causal outcome shares (by input / by graph / no clue)."""
    import pandas as pd

    cols = [*by, "checked", "by input", "by graph", "no clue", *VERDICTS[:4], "mean area", "median r (nodes)"]
    if "check_verdict" not in frame or frame["check_verdict"].isna().all():
        return pd.DataFrame(columns=cols)
    df = frame[frame["check_verdict"].notna()].copy()
    df["causal"] = [causal_outcome(v, r) for v, r in zip(df["check_verdict"], df["check_r_zero"])]
    rows = []
    for key, g in df.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        share = lambda col, v: float((g[col] == v).mean())  # noqa: E731
        r = pd.to_numeric(g["check_r_zero"], errors="coerce")
        rows.append([*key, len(g), share("causal", "M-IA"), share("causal", "NC-IA+M-AG"), share("causal", "NC-IA+AG"),
                     *[share("check_verdict", v) for v in VERDICTS[:4]],
                     float(pd.to_numeric(g["check_area"], errors="coerce").mean()),
                     float(r.median()) if r.notna().any() else None])
    return pd.DataFrame(rows, columns=cols)
