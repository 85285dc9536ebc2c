"""Objectives: scalar functions of the next-token logits whose relevance we explain.

Each is `fn(logits [V], target, contrast, k) -> scalar`; contrastive ones subtract a baseline.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .records import FailureLensError

Objective = Callable[[torch.Tensor, int, Optional[int], int], torch.Tensor]


def _max_logit(logits, target, contrast, k):
    return logits[target]


def _by_ref_token(logits, target, contrast, k):
    return logits[target] - logits[contrast]


def _by_topk_avg(logits, target, contrast, k):
    """l(target) - mean of the global top-k logits (which may include the target itself)."""
    k = max(1, min(int(k), logits.shape[-1]))
    return logits[target] - logits.topk(k).values.mean()


def _demean(logits, target, contrast, k):
    return logits[target] - logits.mean()


OBJECTIVES: dict[str, Objective] = {
    "max_logit": _max_logit,
    "logit_diff/by_ref_token": _by_ref_token,
    "logit_diff/by_topk_avg": _by_topk_avg,
    "logit_diff/demean": _demean,
}
MODES = ("max_logit", "logit_diff")
STRATEGIES = ("by_ref_token", "by_topk_avg", "demean")


def objective_name(mode: str, strategy: Optional[str]) -> str:
    if mode == "max_logit":
        return "max_logit"
    if mode != "logit_diff":
        raise FailureLensError(f"Unknown mode {mode!r}. Use one of: {', '.join(MODES)}.")
    if strategy not in STRATEGIES:
        raise FailureLensError(f"Unknown strategy {strategy!r}. Use one of: {', '.join(STRATEGIES)}.")
    return f"logit_diff/{strategy}"


def needs_contrast(name: str) -> bool:
    return name == "logit_diff/by_ref_token"
