"""One answer to "which category is this case?", shared by the page summary, the deck, the case report and sweeps.

What decides, strongest first:
  person     a person's label (engine.cases.categories.Label.human) wins;
  check      else the causal checks (engine.cases.checks.causal_outcome): the deletion verdict explains / partly ->
             M-IA (by input); otherwise the graph's top nodes, when their predicted and measured zero-ablation
             changes correlate with r >= R_GRAPH -> NC-IA+M-AG (by graph); else NC-IA+AG (no clue). A verdict of
             "no_failure" leaves no outcome (there is nothing to explain);
  heuristic  else the rules of engine.cases.categories on the heatmap's numbers alone: "guessed from the heatmap
             alone", and said so wherever it is shown.
The pattern (URT / OIT) is not tested by the checks: the person's pattern, else the heuristic's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from engine.cases.categories import Category, Outcome, Pattern
from engine.cases.checks import R_GRAPH, causal_outcome

PERSON, CHECK, HEURISTIC = "person", "check", "heuristic"
OUTCOMES, PATTERNS = {o.value for o in Outcome}, {p.value for p in Pattern}
GUESSED = "guessed from the heatmap alone"
VERDICT_WORDS = {"explains": "explains", "fragile": "fragile", "partly": "partly", "not_explained": "does not explain",
                 "no_failure": "no failure"}


@dataclass(frozen=True)
class CaseOutcome:
    """A case's category and where it comes from."""

    code: Optional[str]  # M-IA | NC-IA+M-AG | NC-IA+AG; None: nothing to categorise (or nobody said)
    pattern: Optional[str]  # URT | OIT | URT+OIT | None
    source: str  # person | check | heuristic
    verdict: Optional[str] = None  # the deletion check's verdict (engine.cases.checks.VERDICTS), None: not run
    r_zero: Optional[float] = None  # the top nodes' zero-ablation correlation, None: not run

    @property
    def words(self) -> str:
        """The outcome's plain name ("explained by the heatmap"), "no failure to categorise" without one."""
        from engine.present import glossary

        return glossary.name(self.code) if self.code else "no failure to categorise"

    @property
    def basis(self) -> str:
        """How the outcome was decided, in words."""
        if self.source == PERSON:
            return "set by a person"
        if self.source == HEURISTIC:
            return GUESSED + " (run the causal check to test it)"
        v = f"the heatmap check says {VERDICT_WORDS.get(self.verdict, self.verdict)!r}"
        if self.verdict in ("explains", "partly", "no_failure"):
            return f"decided by the causal check: {v}"
        nodes = ("the graph's top nodes were not checked" if not _known(self.r_zero) else
                 f"the graph's top nodes {'hold' if self.r_zero >= R_GRAPH else 'do not hold'} "
                 f"(r = {self.r_zero:+.2f}; {R_GRAPH:g} needed)")
        return f"decided by the causal checks: {v}; {nodes}"

    @property
    def sentence(self) -> str:
        """"Category: explained by the heatmap (M-IA), pattern …; decided by the causal check: …"."""
        if self.code is None and self.source == CHECK:
            return f"Category: none, {self.basis}."
        code = f"{self.words} ({self.code})" if self.code else "none"
        pat = ""
        if self.pattern:
            from engine.present import glossary

            pat = f", pattern: {glossary.name(self.pattern)} ({self.pattern})"
        return f"Category: {code}{pat}; {self.basis}."

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.code, "pattern": self.pattern, "source": self.source, "verdict": self.verdict,
                "r_zero": self.r_zero}


def _known(r: Optional[float]) -> bool:
    return r is not None and isinstance(r, (int, float)) and math.isfinite(r)


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None  # pandas gives NaN for missing text


def decide(heuristic: Optional[Category] = None, *, human: Optional[Category] = None, verdict: Optional[str] = None,
           r_zero: Optional[float] = None) -> CaseOutcome:
    """The case's outcome by the rules of the module docstring. heuristic: `suggest_category(...).category`;
    human: the latest label (None: nobody labelled it); verdict / r_zero: the checks' results (None: not run)."""
    verdict = _text(verdict)
    r = float(r_zero) if _known(r_zero) else None
    h_out = heuristic.outcome.value if heuristic is not None and heuristic.outcome else None
    h_pat = heuristic.pattern.value if heuristic is not None and heuristic.pattern else None
    if human is not None and (human.outcome or human.pattern):
        return CaseOutcome(human.outcome.value if human.outcome else None,
                           human.pattern.value if human.pattern else None, PERSON, verdict, r)
    if verdict is not None:
        return CaseOutcome(causal_outcome(verdict, r), h_pat, CHECK, verdict, r)
    return CaseOutcome(h_out, h_pat, HEURISTIC)


def stored_category(outcome: Any, pattern: Any) -> Category:
    """Stored codes as a Category; text that is no known code (a damaged or foreign store) counts as none."""
    o, p = _text(outcome), _text(pattern)
    return Category(Outcome(o) if o in OUTCOMES else None, Pattern(p) if p in PATTERNS else None)


def decide_row(row: Any) -> CaseOutcome:
    """`decide` for one results-frame row (engine.runs.store.Store.results_frame): suggested_* (the heuristic),
    human_* (the latest label) and check_verdict / check_r_zero."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    return decide(stored_category(get("suggested_outcome"), get("suggested_pattern")),
                  human=stored_category(get("human_outcome"), get("human_pattern")),
                  verdict=get("check_verdict"), r_zero=get("check_r_zero"))


SOURCE_WORDS = {PERSON: "person", CHECK: "causal check", HEURISTIC: GUESSED}


def frame_outcomes(df: Any, none: str = "none") -> Any:
    """A results frame with `outcome`, `pattern` (codes; `none` where there is none) and `decided_by` (the source
    in words, SOURCE_WORDS) from `decide_row`, so that tables, charts and reports count the same categories."""
    got = [decide_row(r) for r in df.to_dict("records")] if len(df) else []
    return df.assign(outcome=[g.code or none for g in got], pattern=[g.pattern or none for g in got],
                     decided_by=[SOURCE_WORDS[g.source] for g in got])
