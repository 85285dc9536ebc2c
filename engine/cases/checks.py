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

What is computed (`curves`):
- "verdict" (default): only the rows the verdict reads. The red curve one row after the other up to its first
  flip (row k differs from row k−1 at the one position p it adds, so it runs positions p.. on row k−1's cached
  keys and values, `rows.PrefixCache.run_after`); then, at that k (or at the red curve's end when nothing
  flips), one row per random seed, batched. No blue, insertion or other random rows; no area (None).
  The verdict is the same as the full computation's (same rows, same rules; tested on every shipped zoo
  failure). No sequential rule stops the random seeds early: one unseen seed's Δℓ is unbounded, so no subset
  of seeds fixes the sign of the random mean or the spread test; every seed runs.
- "full": every curve at every k, all rows as one [rows, T] batch in as few forward passes as memory allows,
  each row from its first removed token on the cached prefix of the unchanged prompt; the area.
Identical rows (a token equal to the replacement, or two seeds removing the same set) run once. A result
records its model runs and their wall-clock time (`verdict_rows`, `verdict_seconds`).
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

from engine.cases.faithfulness import neutral_mask_id
from engine.cases.rows import MaskedRows
from engine.records import FailureLensError

REPLACEMENTS = ("neutral", "pad", "unk")
PARTLY_SHARE = 0.5  # "partly": removing the top K cuts Δℓ by at least this share of its starting value
RANDOM_MARGIN_STD = 2.0  # ... and lands this many random standard deviations below the random mean
VERDICTS = ("explains", "fragile", "partly", "not_explained", "no_failure")
R_GRAPH = 0.5  # a failure counts as explained by the graph when its top nodes' zero-ablation correlation reaches this
CURVE_MODES = ("verdict", "full")  # the verdict's rows only (default) | every curve at every k


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
    area: Optional[float]  # mean over k >= 1 of (random_mean - target); None without the full curves
    verdict: str  # one of VERDICTS
    sentence: str  # the verdict in words
    replacement: str
    mask_id: int
    seeds: tuple[int, ...]
    k_max: int
    forward_rows: int  # model runs: the prompt's own and each distinct masked variant computed
    curves: str = "full"  # "full": every curve at every k; "verdict": only the rows the verdict needs
    random_k: Optional[int] = None  # the k where the verdict compares with the random baseline (flip_k or the end)
    random_mean_k: Optional[float] = None  # the random mean and spread there
    random_std_k: Optional[float] = None
    verdict_rows: int = 0  # model runs the verdict took (all of them for "full")
    verdict_seconds: float = 0.0  # and their wall-clock time

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
                    insertion: bool = True, chunk: Optional[int] = None, reuse_prefix: bool = True,
                    curves: str = "verdict") -> DeletionCurves:
    """The verdict of the module docstring for one case; with curves="full" also every curve, and the area.

    input_ids / relevance / special_mask: [T] aligned; relevance > 0 supports the target.
    """
    if len(input_ids) != len(relevance):
        raise FailureLensError(f"{len(input_ids)} tokens but {len(relevance)} relevance values; "
                               "pass the ids the relevance was computed for.")
    if not 1 <= int(k) <= 1000:
        raise FailureLensError(f"K = {k} is out of range; use 1..1000 (10 is the usual choice).")
    if not seeds:
        raise FailureLensError("Give at least one random seed for the random baseline.")
    if curves not in CURVE_MODES:
        raise FailureLensError(f"Unknown curves {curves!r}: use 'verdict' (the verdict's rows only) or 'full'.")
    clock = time.perf_counter()
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
    case = MaskedRows.of(model, input_ids, mask_id, target_id, contrast_id, chunk, reuse_prefix)
    with torch.inference_mode():
        if curves == "full":
            out = _full(case, plain, by_target, by_contrast, shuffled, k_max, insertion)
        else:
            out = _fast(case, by_target, shuffled)
    target, rmean, rstd, flip_k, flip_logits = out["target"], out["rmean"], out["rstd"], out["flip_k"], out["flip"]
    base = target[0]
    flip_top = _text(tokenizer, int(flip_logits.argmax())) if flip_logits is not None else None
    verdict, sentence = _verdict(base, target, rmean, rstd, flip_k, flip_top, _text(tokenizer, target_id),
                                 _text(tokenizer, contrast_id))
    random_k = (flip_k if flip_k is not None else len(target) - 1) if base > 0 else None
    seconds = time.perf_counter() - clock
    return DeletionCurves(
        base_logit_diff=base, target=tuple(target), contrast=tuple(out.get("contrast", ())),
        random_mean=tuple(out.get("random_mean", ())), random_std=tuple(out.get("random_std", ())),
        insertion=tuple(out.get("insertion", ())), target_positions=tuple(by_target),
        target_tokens=tuple(_text(tokenizer, int(input_ids[i])) for i in by_target),
        contrast_positions=tuple(by_contrast), flip_k=flip_k, flip_top=flip_top, area=out.get("area"),
        verdict=verdict, sentence=sentence, replacement=str(replacement), mask_id=mask_id,
        seeds=tuple(int(s) for s in seeds), k_max=k_max, forward_rows=case.runs, curves=curves,
        random_k=random_k if random_k else None, random_mean_k=rmean[random_k] if random_k else None,
        random_std_k=rstd[random_k] if random_k else None, verdict_rows=out.get("verdict_rows", case.runs),
        verdict_seconds=out.get("verdict_seconds", seconds))


def _stats(per_seed: list[float]) -> tuple[float, float]:
    mean = sum(per_seed) / len(per_seed)
    return mean, math.sqrt(sum((s - mean) ** 2 for s in per_seed) / len(per_seed))


def _full(case: MaskedRows, plain: list[int], by_target: list[int], by_contrast: list[int], shuffled: list[list[int]],
          k_max: int, insertion: bool) -> dict[str, Any]:
    """Every curve at every k, all rows as one batch (the verdict and area from them)."""
    case.base()
    keys_t = [case.key(by_target[:j]) for j in range(1, len(by_target) + 1)]
    keys_c = [case.key(by_contrast[:j]) for j in range(1, len(by_contrast) + 1)]
    keys_r = [[case.key(order[:j]) for j in range(1, k_max + 1)] for order in shuffled]
    keys_i = [case.key([p for p in plain if p not in by_target[:j]]) for j in range(len(by_target) + 1)] \
        if insertion else []
    case.batch(keys_t + keys_c + [key for seed in keys_r for key in seed] + keys_i)
    base = case.delta(())
    target = [base] + [case.delta(key) for key in keys_t]
    per_seed = [[base] + [case.delta(key) for key in seed] for seed in keys_r]
    stats = [_stats([s[j] for s in per_seed]) for j in range(k_max + 1)]
    flip_k = next((j for j, d in enumerate(target) if j > 0 and d < 0), None)
    upto = len(target) - 1
    rmean, rstd = [m for m, _ in stats], [s for _, s in stats]
    area = sum(rmean[j] - target[j] for j in range(1, upto + 1)) / upto if upto else 0.0
    return {"target": target, "rmean": rmean[:upto + 1], "rstd": rstd[:upto + 1], "flip_k": flip_k,
            "flip": case.values[keys_t[flip_k - 1]] if flip_k else None, "area": float(area),
            "contrast": [base] + [case.delta(key) for key in keys_c], "random_mean": rmean, "random_std": rstd,
            "insertion": [case.delta(key) for key in keys_i]}


def _fast(case: MaskedRows, by_target: list[int], shuffled: list[list[int]]) -> dict[str, Any]:
    """Only the verdict's rows: the red curve up to its first flip, one row after the other, each from the
    position it adds on the previous row's cache; then the random rows at that k (or at the red curve's end)."""
    case.base()
    base = case.delta(())
    flip_k, target, last = case.first_flip(by_target) if base > 0 else (None, [base], ())
    at = flip_k if flip_k is not None else len(target) - 1
    rmean, rstd = [base] + [math.nan] * at, [0.0] + [math.nan] * at
    if at and base > 0:
        keys = [case.key(order[:at]) for order in shuffled]
        case.batch(keys)
        rmean[at], rstd[at] = _stats([case.delta(key) for key in keys])
    return {"target": target, "rmean": rmean, "rstd": rstd, "flip_k": flip_k,
            "flip": case.values[last] if flip_k else None}


def _text(tokenizer: Any, token_id: int) -> str:
    from engine.tokens import display

    return display(tokenizer, token_id)


def check_attribution(handle: Any, att: Any, k: int = 10, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                      replacement: Union[str, int] = "neutral", insertion: bool = True,
                      curves: str = "verdict") -> DeletionCurves:
    """`deletion_curves` for an engine `Attribution` (contrastive: it needs a contrast token)."""
    if att.contrast is None:
        raise FailureLensError("The deletion check needs a contrast token: use the logit difference against a "
                               "reference token (mode logit_diff, strategy by_ref_token).")
    with handle.lock:
        return deletion_curves(handle.model, handle.tokenizer, att.token_ids, att.relevance, att.target.token_id,
                               att.contrast.token_id, att.special_mask, k, seeds, replacement, insertion,
                               curves=curves)


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
