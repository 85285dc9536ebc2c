"""Typed records that cross module borders (engine -> CLI / UI / store).

Every record is a frozen dataclass of plain Python values (lists, floats, str), so it pickles, hashes
its inputs by content and round-trips through JSON with `to_json` / `from_json`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional


class FailureLensError(ValueError):
    """A problem the user can fix. The message names the problem and a way out."""


def finite(value: Any) -> Any:
    """`value` with every NaN / ±Inf float (nested in lists, tuples, dicts) replaced by None: JSON has no NaN,
    and Python's json writes a bare `NaN` that other readers refuse (e.g. conservation when all logits tie)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kw: Any) -> str:
    """json.dumps that never writes NaN / Infinity (see `finite`)."""
    return json.dumps(finite(value), allow_nan=False, **kw)


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a loaded model for caching: same fingerprint -> same numbers."""

    source: str
    revision: Optional[str]
    dtype: str
    quantize: Optional[str]
    rule: str
    weights_hash: str

    def key(self) -> str:
        return "|".join(str(v) for v in dataclasses.astuple(self))


@dataclass(frozen=True)
class TopToken:
    rank: int  # 1-based
    token: str
    token_id: int
    logit: float
    prob: float


@dataclass(frozen=True)
class TokenChoice:
    token_id: int
    text: str


@dataclass(frozen=True)
class Attribution:
    """Result of `engine.attribute`.

    tokens / token_ids / relevance: one entry per input token (the prompt up to and including `position`).
    layer_relevance: [layers + 1][tokens] residual-stream relevance, row 0 after the embedding, row l after layer l.
    """

    model: str  # fingerprint key
    tokens: list[str]
    token_ids: list[int]
    relevance: list[float]
    layer_relevance: list[list[float]]
    objective: float
    mode: str
    strategy: Optional[str]
    k: int
    position: int
    target: TokenChoice
    contrast: Optional[TokenChoice]
    logit_diff: Optional[float]  # l(target) - l(contrast) when a contrast is given
    topk: list[TopToken]
    conservation: float  # sum(relevance) / objective
    rule: str
    special_mask: list[bool] = field(default_factory=list)  # True for BOS / template tokens
    offsets: list[tuple[int, int]] = field(default_factory=list)  # char spans in the prompt
    warnings: list[str] = field(default_factory=list)
    path: str = "kept"  # memory path that ran: "kept" activations or per-layer "recompute" (same numbers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Attribution":
        d = dict(d)
        d["target"] = TokenChoice(**d["target"])
        d["contrast"] = TokenChoice(**d["contrast"]) if d.get("contrast") else None
        d["topk"] = [TopToken(**t) for t in d["topk"]]
        d["offsets"] = [tuple(o) for o in d.get("offsets", [])]
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> "Attribution":
        return cls.from_dict(json.loads(s))
