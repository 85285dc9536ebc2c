"""Faithfulness by masking: how many of the most relevant input tokens must go before the model flips?

For a case (input ids, relevance, target, contrast): mask the k tokens with the largest positive relevance
(the ones said to support the wrong target), k = 0, 1, 2, ..., and recompute Δℓ = ℓ(target) − ℓ(contrast)
at the last position. The result is the smallest k with Δℓ < 0 (k = 0 when Δℓ is already negative).
The baseline does the same with the non-special tokens in a random order, once per seed; its k is
averaged over the seeds that flip (and the share of seeds that flip is reported).

Masking replaces the token id by a neutral id and keeps the position and the attention mask, so the
sequence length and positions do not change. The neutral id (`neutral_mask_id`) is, in order: an id the
caller gives; the tokenizer's unk token; its pad token; the token of a single space. Special tokens (BOS,
chat-template tokens, per `special_mask`) are never masked. Candidates are capped by `max_k`.

Masked variants are batched: one batch per chunk of k values, stopping at the first chunk that flips. The rows
run on the masking engine of the deletion checks (`rows.MaskedRows.first_flip`): each distinct masked variant
once, from its first masked position on the prompt's cached keys and values.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from engine.cases.rows import MaskedRows
from engine.records import FailureLensError


@dataclass(frozen=True)
class FaithResult:
    k_relevance: Optional[int]  # smallest k that flips masking by relevance; None: no flip within the candidates
    k_random: tuple[Optional[int], ...]  # the same per seed, masking in a random order
    k_random_mean: Optional[float]  # mean over the seeds that flipped; None if none did
    random_flip_rate: float  # share of seeds that flipped
    base_logit_diff: float
    curve: tuple[float, ...]  # Δℓ after masking the top-k by relevance, k = 0.. (computed prefix only)
    n_candidates: int  # tokens with positive relevance that may be masked
    mask_id: int
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class FaithSummary:
    n_cases: int
    relevance_flip_rate: float
    k_relevance_mean: Optional[float]  # over cases that flipped
    random_flip_rate: float  # over cases x seeds
    k_random_mean: Optional[float]  # over cases whose random baseline flipped at least once


def neutral_mask_id(tokenizer: Any, mask_id: Optional[int] = None) -> int:
    """The id used for masking (see the module docstring for the order)."""
    if mask_id is not None:
        return int(mask_id)
    for name in ("unk_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    ids = tokenizer(" ", add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    raise FailureLensError("this tokenizer has no unk or pad token and no single-token space; "
                           "give the masking token id explicitly (faithfulness mask_id).")


def flip_k(model: Any, input_ids: Sequence[int], order: Sequence[int], target_id: int, contrast_id: int,
           mask_id: int, chunk: int = 16) -> tuple[Optional[int], list[float]]:
    """Smallest k such that masking positions order[:k] gives Δℓ < 0, and Δℓ for k = 0.. up to it.

    input_ids: [T]; order: positions to mask, first first. k runs over 0..len(order), `chunk` values per batch.
    """
    k, curve, _ = MaskedRows.of(model, input_ids, mask_id, target_id, contrast_id).first_flip(order, chunk)
    return k, curve


def mask_flip_k(model: Any, input_ids: Sequence[int], relevance: Sequence[float], target_id: int, contrast_id: int,
                mask_id: int, special_mask: Optional[Sequence[bool]] = None, seeds: Sequence[int] = (0, 1, 2),
                max_k: Optional[int] = None, chunk: int = 16) -> FaithResult:
    """Relevance-ordered masking vs random masking (see the module docstring).

    input_ids / relevance / special_mask: [T] aligned; relevance > 0 supports the target.
    """
    if len(input_ids) != len(relevance):
        raise FailureLensError(f"{len(input_ids)} tokens but {len(relevance)} relevance values; "
                               "pass the ids the relevance was computed for.")
    special = list(special_mask) if special_mask is not None else [False] * len(input_ids)
    plain = [i for i in range(len(input_ids)) if not special[i]]
    by_rel = sorted((i for i in plain if relevance[i] > 0), key=lambda i: -relevance[i])[:max_k]
    rows = MaskedRows.of(model, input_ids, mask_id, target_id, contrast_id)
    k_rel, curve, _ = rows.first_flip(by_rel, chunk)
    k_rand = []
    for seed in seeds:
        order = list(plain)
        random.Random(seed).shuffle(order)
        k_rand.append(rows.first_flip(order[:max_k], chunk)[0])
    flipped = [k for k in k_rand if k is not None]
    return FaithResult(
        k_relevance=k_rel, k_random=tuple(k_rand),
        k_random_mean=sum(flipped) / len(flipped) if flipped else None,
        random_flip_rate=len(flipped) / len(k_rand) if k_rand else 0.0,
        base_logit_diff=curve[0], curve=tuple(curve), n_candidates=len(by_rel), mask_id=mask_id, seeds=tuple(seeds),
    )


def aggregate(results: Sequence[FaithResult]) -> FaithSummary:
    """Per-run summary of per-case results."""
    rel = [r.k_relevance for r in results if r.k_relevance is not None]
    rand = [r.k_random_mean for r in results if r.k_random_mean is not None]
    n_seeds = sum(len(r.k_random) for r in results)
    return FaithSummary(
        n_cases=len(results),
        relevance_flip_rate=len(rel) / len(results) if results else 0.0,
        k_relevance_mean=sum(rel) / len(rel) if rel else None,
        random_flip_rate=sum(r.random_flip_rate * len(r.k_random) for r in results) / n_seeds if n_seeds else 0.0,
        k_random_mean=sum(rand) / len(rand) if rand else None,
    )
