"""Objectives: scalar functions of the next-token logits whose relevance we explain, and the `Objective` record
that names one request (which tokens, which function, at which position).

Each function is `fn(logits [V], target, contrast, k) -> scalar`; contrastive ones subtract a baseline.
No torch import here: the sweep config (engine.runs.config) reads `Objective` and must stay light.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Optional, Union

from .records import FailureLensError

if TYPE_CHECKING:
    import torch

    from .records import Attribution

ObjectiveFn = Callable[["torch.Tensor", int, Optional[int], int], "torch.Tensor"]
TokenSpec = Union[int, str, None]  # a token id, "#<id>", or text that is one token
MAX_K = 1000  # candidates averaged by by_topk_avg
Strategy = Literal["by_ref_token", "demean", "by_topk_avg"]  # STRATEGIES, in the order the sweep config names them


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


OBJECTIVES: dict[str, ObjectiveFn] = {
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


# `config: False`: not a key of a sweep config's `objective:` block (engine.runs.config), set per case instead.
_PER_CASE = {"config": False}


@dataclass(frozen=True)
class Objective:
    """One explanation request: the target token against the contrast (None: the model's top-1 / runner-up), the
    objective function (mode, strategy, k) and the position whose next-token logits are explained (-1: the last).

    Validated when built, so a bad mode, strategy or k never reaches a model. The Literal types are the sweep
    config's choices (a test keeps them equal to MODES and STRATEGIES).
    """

    target: TokenSpec = field(default=None, metadata=_PER_CASE)
    contrast: TokenSpec = field(default=None, metadata=_PER_CASE)
    mode: Literal["logit_diff", "max_logit"] = "logit_diff"
    strategy: Optional[Strategy] = field(default="by_ref_token", metadata={"config_type": Strategy})  # config: no null
    k: int = field(default=10, metadata={"range": (1, MAX_K)})
    position: int = field(default=-1, metadata=_PER_CASE)

    def __post_init__(self):
        objective_name(self.mode, self.strategy)
        if not 1 <= int(self.k) <= MAX_K:
            raise FailureLensError(f"k = {self.k} is out of range; use 1..{MAX_K} (10 is the usual choice).")

    @property
    def name(self) -> str:
        """The key of its function in OBJECTIVES, e.g. "logit_diff/by_ref_token"."""
        return objective_name(self.mode, self.strategy)

    def key(self) -> str:
        """A stable text naming every field (types kept: the id 5 and the text "5" differ), for cache keys."""
        return json.dumps([self.target, self.contrast, self.mode, self.strategy, int(self.k), int(self.position)])

    @classmethod
    def of(cls, att: "Attribution") -> "Objective":
        """The request an attribution answered, with its resolved target and contrast by id ("#<id>")."""
        con = att.contrast.token_id if att.contrast is not None else None
        return cls(f"#{att.target.token_id}", None if con is None else f"#{con}", att.mode, att.strategy, att.k,
                   att.position)
