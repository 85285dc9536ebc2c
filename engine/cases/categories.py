"""Failure categories: the engine suggests, a person confirms or changes, both are kept with their time.

Outcome (does an explanation account for the failure?):
  M-IA        input attribution explains it,
  NC-IA+M-AG  input attribution does not, the attribution graph does,
  NC-IA+AG    neither does.
Pattern: URT (relevant tokens underweighted), OIT (irrelevant tokens overweighted), URT+OIT.

Suggestion heuristics (version HEURISTICS_VERSION), on normalised segment relevance (engine.cases.segments;
positive supports the wrong target) and Δℓ = ℓ(target) − ℓ(contrast). They start from the reference
system's notebook proxies; "≈ 0" means |x| <= eps.
Outcome:
  O1. total < -eps and Δℓ > min_logit_diff (default 1): the input relevance points to the contrast while
      the model clearly prefers the target, so input attribution does not explain the failure (the
      reference system's "AG required"). Then NC-IA+M-AG if a person/graph check says the graph explains
      it (`graph_explains=True`), otherwise NC-IA+AG (not yet shown to be explained).
  O2. otherwise M-IA.
Pattern (needs an instruction segment; "instruction_target" is the relevance of instruction phrases that
mention the target string, the rest of the instruction is "instruction_other"):
  P1. instruction < -eps and total > eps: the instruction argues for the contrast but loses -> URT.
  P2. instruction < -eps and total <= eps: the instruction is followed -> no pattern.
  P3. instruction > eps, instruction_target > eps and instruction_other <= eps (negative, or no other phrases):
      phrases naming the wrong token pull towards it while the rest is outweighed -> URT+OIT.
  P4. instruction > eps otherwise -> URT (the instruction as a whole does not hold the contrast up).
  P5. instruction ≈ 0 or no instruction segment -> no pattern (label by hand).
"""
from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Optional

HEURISTICS_VERSION = "1"


class Outcome(str, enum.Enum):
    M_IA = "M-IA"
    NC_IA_M_AG = "NC-IA+M-AG"
    NC_IA_AG = "NC-IA+AG"


class Pattern(str, enum.Enum):
    URT = "URT"
    OIT = "OIT"
    URT_OIT = "URT+OIT"


@dataclass(frozen=True)
class Category:
    outcome: Optional[Outcome]
    pattern: Optional[Pattern]

    def to_dict(self) -> dict[str, Optional[str]]:
        return {"outcome": self.outcome.value if self.outcome else None,
                "pattern": self.pattern.value if self.pattern else None}

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> Optional["Category"]:
        if not d:
            return None
        return cls(Outcome(d["outcome"]) if d.get("outcome") else None,
                   Pattern(d["pattern"]) if d.get("pattern") else None)


@dataclass(frozen=True)
class Suggestion:
    category: Category
    reasons: tuple[str, ...]  # which rules fired, in words
    version: str = HEURISTICS_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category.to_dict(), "reasons": list(self.reasons), "version": self.version}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Suggestion":
        return cls(Category.from_dict(d["category"]) or Category(None, None), tuple(d["reasons"]), d["version"])


@dataclass(frozen=True)
class Label:
    """A person's label for one case under one model, stored next to what the engine suggested."""

    case_id: str
    model_label: str
    suggested: Optional[Suggestion]
    human: Optional[Category]
    time: float  # unix seconds
    author: str = ""
    note: str = ""

    @classmethod
    def now(cls, case_id: str, model_label: str, suggested: Optional[Suggestion], human: Optional[Category],
            author: str = "", note: str = "") -> "Label":
        return cls(case_id, model_label, suggested, human, time.time(), author, note)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["suggested"] = self.suggested.to_dict() if self.suggested else None
        d["human"] = self.human.to_dict() if self.human else None
        return d


def suggest_category(segment_rel: Mapping[str, float], logit_diff: float, *, graph_explains: Optional[bool] = None,
                     min_logit_diff: float = 1.0, eps: float = 1e-3) -> Suggestion:
    """Apply rules O1-O2 and P1-P5 of the module docstring."""
    total = float(segment_rel.get("total", 0.0))
    inst = segment_rel.get("instruction")
    reasons = []
    if total < -eps and logit_diff > min_logit_diff:
        outcome = Outcome.NC_IA_M_AG if graph_explains else Outcome.NC_IA_AG
        reasons.append(f"O1: total relevance {total:+.3f} < 0 while Δℓ = {logit_diff:.2f} > {min_logit_diff:g}: "
                       "input attribution does not explain the failure"
                       + ("; the graph does" if graph_explains else "; the graph is not (yet) shown to"))
    else:
        outcome = Outcome.M_IA
        reasons.append(f"O2: total relevance {total:+.3f} with Δℓ = {logit_diff:.2f}: input attribution explains it")
    pattern: Optional[Pattern] = None
    if inst is None or abs(inst) <= eps:
        reasons.append("P5: no instruction relevance; pattern left to a person")
    elif inst < 0:
        if total > eps:
            pattern = Pattern.URT
            reasons.append(f"P1: instruction {inst:+.3f} argues for the contrast but total {total:+.3f} wins: URT")
        else:
            reasons.append(f"P2: instruction {inst:+.3f} and total {total:+.3f} both favour the contrast: no pattern")
    else:
        tgt = segment_rel.get("instruction_target")
        other = segment_rel.get("instruction_other", inst - tgt if tgt is not None else None)
        if tgt is not None and tgt > eps and (other is None or other <= eps):
            pattern = Pattern.URT_OIT
            reasons.append(f"P3: phrases naming the target {tgt:+.3f} pull towards it, "
                           f"the rest {other or 0:+.3f}: URT+OIT")
        else:
            pattern = Pattern.URT
            reasons.append(f"P4: instruction {inst:+.3f} supports the wrong token: URT")
    return Suggestion(Category(outcome, pattern), tuple(reasons))


def shares(rows: Iterable[Mapping[str, Any]], by: tuple[str, ...] = ("benchmark", "model_label"),
           column: str = "outcome") -> Any:
    """Share of each category value per group, as a long pandas DataFrame [*by, column, count, share].

    rows: mappings with the `by` keys and `column` (e.g. store label rows); None values count as "unlabelled".
    """
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=[*by, column])
    df[column] = df[column].fillna("unlabelled")
    out = df.groupby([*by, column]).size().rename("count").reset_index()
    out["share"] = out["count"] / out.groupby(list(by))["count"].transform("sum")
    return out
