"""The reference paper's figures as tables, regenerated from a study's store, each with its claim and this run's answer.

`study_tables(store, name)` reads the three runs of a study (engine.runs.study) and returns `StudyTables`: one
DataFrame per figure (the CSV behind it) and `claims`, one `Claim` per figure. Every figure is drawn from one case
set, the reference model's studied failures (`<name>/reference`, status ok), and says how many of those rest on a
causal check, on a person's label or on the segment heuristic alone (`basis_counts`).

Outcome of one failure (`failure_outcome`, through engine.cases.outcome.decide as on every screen): the person's label
wins; else the causal check (explains / partly -> by input; otherwise top-node ablation r >= 0.5 -> by graph; else
no clue); the heuristic suggestion only when the failure has no check. Pattern (URT / OIT / URT+OIT): the person's,
else the heuristic's. Other models are judged on the same cases and token pair: Δℓ <= 0 means fixed; where such a
model still fails, its outcome rests on its own checks when the study ran them there (`check_models`), else on the
heuristic (counted as such).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from engine.cases.outcome import HEURISTIC, decide, stored_category
from engine.records import FailureLensError
from engine.runs.store import Store
from engine.runs.study import family, run_id

OUTCOME_WORDS = {"M-IA": "by input", "NC-IA+M-AG": "by graph", "NC-IA+AG": "no clue"}
OUTCOMES = ("by input", "by graph", "no clue")
PATTERNS = ("URT", "OIT", "URT+OIT")
SEGMENTS = ("instruction", "query", "answer", "special")
ROLE = {"instruction": "IFEval", "ifeval": "IFEval", "math": "MATH", "code": "EvalPlus", "evalplus": "EvalPlus",
        "humaneval": "EvalPlus", "retrieval": "GAIA", "gaia": "GAIA"}  # the paper's benchmark each family stands for
GRAPH_TOKENS = 120  # Fig 3 prefers a case this short: a wider graph does not fit a slide
FIGURES = ("Fig 1", "Fig 2", "Fig 3", "Fig 4", "Fig 5", "Fig 6", "Fig 7")


def failure_outcome(human: Any, verdict: Any, r_zero: Any, suggested: Any) -> tuple[Optional[str], str]:
    """(outcome code or None, basis: person | check | heuristic | none) of one failure, by the rule every screen
    uses (engine.cases.outcome.decide: a person's label, else the causal checks, else the heatmap heuristic)."""
    got = decide(stored_category(suggested, None), human=stored_category(human, None), verdict=verdict,
                 r_zero=r_zero)
    if got.source == HEURISTIC and got.code is None:
        return None, "none"
    return got.code, got.source


@dataclass(frozen=True)
class Claim:
    figure: str
    claim: str
    answer: str  # holds | does not hold | mixed | not tested
    number: Optional[float]  # the number that decides it
    words: str  # the answer in a sentence, with the numbers

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "claim": self.claim, "answer": self.answer,
                "number": None if self.number is None or not math.isfinite(self.number) else round(self.number, 4),
                "in_words": self.words}


@dataclass(frozen=True)
class StudyTables:
    name: str
    reference: str
    sizes: tuple[str, ...]
    checkpoints: tuple[str, ...]
    failures: pd.DataFrame  # one row per studied failure of the reference: outcome, basis, pattern, checks
    tables: dict[str, pd.DataFrame]  # figure tables by name (the CSVs)
    claims: tuple[Claim, ...]
    basis_counts: dict[str, int]  # of the case set: check / person / heuristic / none

    def case_set(self) -> str:
        n = len(self.failures)
        b = self.basis_counts
        return (f"Cases: the {n} studied failures of {self.reference} (same prompts and token pairs in every model); "
                f"{b.get('check', 0)} rest on a causal check, {b.get('person', 0)} on a person's label, "
                f"{b.get('heuristic', 0)} on the heatmap heuristic alone.")


def study_runs(store: Store) -> list[str]:
    """Names of the studies registered in a store (newest first)."""
    return [r["run_id"] for r in store.runs() if "study" in r["config"]][::-1]


def _frame(store: Store, name: str, phase: str) -> pd.DataFrame:
    df = store.results_frame(run_id(name, phase))
    if df.empty:
        return df
    fams = {c["case_id"]: family(_meta(c["meta_json"]), c["benchmark"]) for c in store.cases(run_id(name, phase))}
    return df.assign(family=df["case_id"].map(fams))


def _meta(text: str) -> dict:
    import json

    return json.loads(text or "{}")


def _outcomes(df: pd.DataFrame) -> pd.DataFrame:
    col = lambda c: df[c] if c in df else pd.Series(None, index=df.index, dtype=object)  # noqa: E731
    out = [failure_outcome(h, v, r, s) for h, v, r, s in zip(col("human_outcome"), col("check_verdict"),
                                                             col("check_r_zero"), col("suggested_outcome"))]
    human_p = col("human_pattern")
    return df.assign(outcome=[OUTCOME_WORDS.get(o, "no clue" if o is None and b == "check" else o) for o, b in out],
                     basis=[b for _, b in out],
                     pattern=human_p.where(human_p.notna(), col("suggested_pattern")).fillna("none"))


def _series(df: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    return df[df["model_label"].isin(models)].assign(order=lambda d: d["model_label"].map(models.index))


def _seg_means(df: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for m in models:
        g = df[df["model_label"] == m]
        for s in ("total", *SEGMENTS):
            v = pd.to_numeric(g.get(f"seg_{s}", pd.Series(dtype=float)), errors="coerce").dropna()
            rows.append({"model": m, "order": models.index(m), "segment": s, "mean": float(v.mean()) if len(v) else
                         math.nan, "sem": float(v.sem()) if len(v) > 1 else math.nan, "n": int(len(v))})
    return pd.DataFrame(rows, columns=["model", "order", "segment", "mean", "sem", "n"])


def study_tables(store: Store, name: str, arrays: bool = True) -> StudyTables:
    """Every figure's table and claim of the study `name` in `store` (see the module docstring). arrays=False skips
    what needs the stored heatmaps (token patterns, special-token share, positions)."""
    runs = {r["run_id"]: r for r in store.runs()}
    if name not in runs or "study" not in runs[name]["config"]:
        raise FailureLensError(f"no study {name!r} in {store.folder}; studies there: "
                               f"{', '.join(study_runs(store)) or 'none'}.")
    cfg = runs[name]["config"]["study"]
    ref = cfg["reference"]["label"]
    sizes = tuple(m["label"] for m in cfg.get("sizes", []))
    points = tuple(m["label"] for m in cfg.get("checkpoints", []))
    reference = _frame(store, name, "reference")
    if reference.empty or not (reference["status"] == "ok").any():
        raise FailureLensError(f"study {name!r} has no analysed failures yet; run or resume it first "
                               "(python -m engine study CONFIG --resume).")
    fails = _outcomes(reference[reference["status"] == "ok"].reset_index(drop=True))
    others = _frame(store, name, "models")
    others = _outcomes(others[others["status"] == "ok"]) if not others.empty else fails.iloc[:0]
    basis = {k: int(v) for k, v in fails["basis"].value_counts().items()}
    t: dict[str, pd.DataFrame] = {}
    t["fig1_outcomes"] = _counts(fails, "outcome", OUTCOMES)
    t["fig1_patterns"] = _counts(fails[fails["outcome"] == "by input"], "pattern", (*PATTERNS, "none"))
    t["fig2_examples"] = _examples(fails)
    t["fig3_graph"] = _graph_case(fails)
    both = others.merge(fails[["case_id", "logit_diff"]].rename(columns={"logit_diff": "delta_ref"}), on="case_id")
    sc = _series(both, sizes)
    t["fig4_scaling"] = sc.assign(below=sc["logit_diff"] < sc["delta_ref"])[
        ["case_id", "family", "model_label", "order", "delta_ref", "logit_diff", "below"]].rename(
        columns={"model_label": "model", "logit_diff": "delta"})
    t["fig5_segments"] = _seg_means(pd.concat([fails, others]), (ref, *sizes))
    ck = _series(both, points)
    t["fig6_checkpoints"] = ck[["case_id", "family", "model_label", "order", "logit_diff"]].rename(
        columns={"model_label": "checkpoint", "logit_diff": "delta"})
    t["fig6_means"] = _mean_line(t["fig6_checkpoints"], points)
    t["fig7_segments"] = _seg_means(others, points)
    t["headline"] = _headline(fails, others, ref, sizes, points)
    if arrays:
        from engine.runs.study_patterns import pattern_tables

        t.update(pattern_tables(store, name, fails, others, (ref, *dict.fromkeys((*sizes, *points)))))
    tables = StudyTables(name, ref, sizes, points, fails, t, (), basis)
    from engine.runs.study_claims import claims

    return StudyTables(name, ref, sizes, points, fails, t, claims(tables), basis)


# ---- a cache of the tables beside the study (re-opening a finished study without re-reading every heatmap) ----

def study_stamp(store: Store, name: str) -> list:
    """Changes whenever the study stores a result or gets a label: the cache key of its tables."""
    runs = [run_id(name, p) for p in ("screen", "reference", "models")]
    rows = store._query("SELECT COUNT(*), MAX(created) FROM results WHERE run_id IN (?, ?, ?)", runs)
    labels = store._query("SELECT COUNT(*), MAX(created) FROM labels WHERE run_id IN (?, ?, ?)", runs)
    return [*rows[0], *labels[0]]


def save_cached(t: StudyTables, folder: Path, stamp: list) -> None:
    """The tables as Parquet files and the rest as JSON in `folder` (no pickles: a store may come from elsewhere)."""
    import io
    import json

    from engine.files import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    for n, df in {**t.tables, "failures": t.failures}.items():
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        write_atomic(folder / f"{n}.parquet", buf.getvalue(), "table cache")
    meta = {"stamp": stamp, "name": t.name, "reference": t.reference, "sizes": t.sizes, "checkpoints": t.checkpoints,
            "tables": list(t.tables), "claims": [c.__dict__ for c in t.claims], "basis_counts": t.basis_counts}
    write_atomic(folder / "tables.json", json.dumps(meta, default=str), "table cache")  # last: marks it complete


def load_cached(folder: Path, stamp: list) -> Optional[StudyTables]:
    """The cached tables when they were made from exactly this state of the store, else None."""
    import json

    try:
        meta = json.loads((folder / "tables.json").read_text())
        if meta["stamp"] != json.loads(json.dumps(stamp, default=str)):
            return None
        read = lambda n: pd.read_parquet(folder / f"{n}.parquet")  # noqa: E731
        return StudyTables(meta["name"], meta["reference"], tuple(meta["sizes"]), tuple(meta["checkpoints"]),
                           read("failures"), {n: read(n) for n in meta["tables"]},
                           tuple(Claim(**c) for c in meta["claims"]), meta["basis_counts"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _counts(df: pd.DataFrame, column: str, order: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for fam, g in df.groupby("family", sort=True):
        for v in order:
            n = int((g[column] == v).sum())
            by = {b: int(((g[column] == v) & (g["basis"] == b)).sum()) for b in ("check", "person", "heuristic")}
            rows.append({"family": fam, "paper": ROLE.get(str(fam).lower(), ""), column: v, "count": n,
                         "share": n / len(g) if len(g) else math.nan, "of": len(g),
                         **{f"on_{b}": k for b, k in by.items()}})
    return pd.DataFrame(rows, columns=["family", "paper", column, "count", "share", "of", "on_check", "on_person",
                                       "on_heuristic"])


def _examples(fails: pd.DataFrame) -> pd.DataFrame:
    """The clearest failure of each pattern (by input, largest check area, then Δℓ) and of "no clue" (largest Δℓ)."""
    rows = []
    area = pd.to_numeric(fails.get("check_area", pd.Series(np.nan, index=fails.index)), errors="coerce").fillna(-np.inf)
    f = fails.assign(_area=area)
    for p in PATTERNS:
        g = f[(f["outcome"] == "by input") & (f["pattern"] == p)].sort_values(["_area", "logit_diff"], ascending=False)
        if len(g):
            rows.append({"example": p, **_pick(g.iloc[0]), "why": "by input with this pattern; largest check area"})
    g = f[f["outcome"] == "no clue"].sort_values("logit_diff", ascending=False)
    if len(g):
        rows.append({"example": "no clue", **_pick(g.iloc[0]), "why": "no clue; largest Δℓ"})
    return pd.DataFrame(rows, columns=["example", "case_id", "family", "logit_diff", "check_area", "basis", "target",
                                       "contrast", "why"])


def _pick(r: pd.Series) -> dict[str, Any]:
    return {k: r.get(k) for k in ("case_id", "family", "logit_diff", "check_area", "basis", "target", "contrast")}


def _graph_case(fails: pd.DataFrame) -> pd.DataFrame:
    """The by-graph failure with the highest node-ablation correlation (the heatmap does not explain it), among
    those short enough to draw (at most GRAPH_TOKENS tokens) when there are such."""
    g = fails[(fails["outcome"] == "by graph") & fails.get("check_r_zero", pd.Series(dtype=float)).notna()]
    short = g[g["position"] <= GRAPH_TOKENS]
    g = (short if len(short) else g).sort_values("check_r_zero", ascending=False).head(1)
    return g[["case_id", "family", "logit_diff", "check_verdict", "check_r_zero", "basis"]].reset_index(drop=True)


def _mean_line(ck: pd.DataFrame, points: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for p in points:
        d = ck.loc[ck["checkpoint"] == p, "delta"].dropna()
        rows.append({"checkpoint": p, "order": points.index(p), "mean": float(d.mean()) if len(d) else math.nan,
                     "sem": float(d.sem()) if len(d) > 1 else math.nan, "n": int(len(d))})
    return pd.DataFrame(rows, columns=["checkpoint", "order", "mean", "sem", "n"])


def _headline(fails: pd.DataFrame, others: pd.DataFrame, ref: str, sizes: tuple[str, ...],
              points: tuple[str, ...]) -> pd.DataFrame:
    """Per model: how its studied cases end (fixed, or explained by input / by graph / no clue), with counts."""
    rows = []
    for group, models in (("size", (ref, *sizes)), ("checkpoint", points)):
        for i, m in enumerate(models):
            g = fails if m == ref else others[others["model_label"] == m]
            fixed = g["logit_diff"] <= 0
            cats = {"fixed": int(fixed.sum()), **{o: int(((g["outcome"] == o) & ~fixed).sum()) for o in OUTCOMES}}
            heur = int(((g["basis"] == "heuristic") & ~fixed).sum())
            for o, n in cats.items():
                rows.append({"group": group, "model": m, "order": i, "outcome": o, "count": n,
                             "share": n / len(g) if len(g) else math.nan, "of": int(len(g)), "on_heuristic": heur})
    return pd.DataFrame(rows, columns=["group", "model", "order", "outcome", "count", "share", "of", "on_heuristic"])

