"""A study: the reference paper's whole analysis as three sweeps into one store.

A study config (`studies/*.yaml`, read by the sweep config's checker: safe_load into frozen dataclasses, every
key and range checked, errors name the line) names benchmark families, a reference model whose failures are
studied, a size series and a checkpoint series:

    name: zoo-study
    reference: {source: 'zoo:xs', label: xs}
    sizes: [{source: 'zoo:s', label: s}, ...]          # larger models, smallest first
    checkpoints: [{source: 'zoo:m-step00050', label: m-step00050}, ...]   # in training order
    benchmarks: [{kind: zoo}]                        # as in a sweep config
    failures_per_family: {default: 50, retrieval: 20}   # reference failures studied per family (null: all)
    cases_per_family: 250                            # cases screened per family (null: all); also {family: n}
    families: [instruction, math]                    # only these families (default: every family)
    compute: {heatmap: true, graph: true, checks: true}   # what the reference phase computes (sweep keys)
    check_models: false                              # also check the other models where they still fail
    store: runs/zoo-study

It runs as three sweeps (engine.runs.sweep, or engine.runs.ray with --ray), each its own run in the store:
  <name>/screen     the reference model on every screened case: the first wrong token only (cheap)
  <name>/reference  the reference model's first `failures_per_family` failures per family, with `compute`
  <name>/models     every size and checkpoint on exactly those failures: the same prompt, answer prefix and token
                    pair (engine.cases.failures.pinned_failure), with a heatmap (and `compute.checks` when
                    `check_models`); Δℓ may be negative there (the model is right)
The case lists of the later phases are files in <store>/study-<name>/ (benchmark kind `cases`), written
atomically from the store; the study itself is registered as run <name> with its config, so resuming with
another config is refused. Each phase resumes like a sweep, so `kill -9` then --resume stores nothing twice.
A family is the case's `family` (the zoo's four) or else its benchmark name.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from engine import files
from engine.records import FailureLensError
from engine.runs.config import (
    BenchmarkSpec,
    ComputeSpec,
    Filters,
    ModelSpec,
    Objective,
    RaySpec,
    SweepConfig,
    _Builder,
    _finish,
    _key_lines,
    _where,
    config_dict,
    load_config_file,
)
from engine.runs.store import Store
from engine.runs.study_eta import PhasePlan, row_units, study_eta, unit_rate
from engine.runs.sweep import RunSummary, SweepProgress

PHASES = ("screen", "reference", "models")
PHASE_WORDS = {"screen": "finding the reference model's failures", "reference": "analysing the reference's failures",
               "models": "the same failures in every size and checkpoint"}


@dataclass(frozen=True)
class StudyConfig:
    reference: ModelSpec
    benchmarks: tuple[BenchmarkSpec, ...]
    store: str
    name: str = "study"
    sizes: tuple[ModelSpec, ...] = ()
    checkpoints: tuple[ModelSpec, ...] = ()
    failures_per_family: Union[int, dict[str, int], None] = 50  # a number, or {family: n, default: n}
    cases_per_family: Union[int, dict[str, int], None] = None
    families: tuple[str, ...] = ()  # only these families (empty: all)
    check_models: bool = False  # causal checks on the other models' still-failing cases too (costly on long prompts)
    objective: Objective = field(default_factory=Objective)
    rule: str = "attnlrp"
    top_k: int = 10
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    ray: RaySpec = field(default_factory=RaySpec)

    @property
    def others(self) -> tuple[ModelSpec, ...]:
        """Sizes then checkpoints, each label once (a checkpoint that is also a size is computed once)."""
        return tuple({m.label: m for m in (*self.sizes, *self.checkpoints)}.values())

    def identity(self) -> dict[str, Any]:
        """What decides the study's results (kept with it; resuming needs the same): all but store and ray, and
        check_models and families only when set (so studies from before them keep their identity)."""
        out = {k: v for k, v in config_dict(self).items() if k not in ("store", "ray")}
        for key in ("check_models", "families"):
            if not out[key]:
                out.pop(key)
        return {"study": out}

    def sweep(self, phase: str, models: tuple[ModelSpec, ...], benchmarks: tuple[BenchmarkSpec, ...]) -> SweepConfig:
        """The sweep config of one phase (see the module docstring)."""
        others = ComputeSpec(heatmap=True, checks=self.compute.checks if self.check_models else ComputeSpec().checks)
        compute = {"screen": ComputeSpec(heatmap=False), "reference": self.compute, "models": others}[phase]
        return SweepConfig(models=models, benchmarks=benchmarks, store=self.store, name=run_id(self.name, phase),
                           objective=self.objective, rule=self.rule, top_k=self.top_k, compute=compute, ray=self.ray)


def run_id(name: str, phase: str) -> str:
    return f"{name}/{phase}"


def _as_sweep(cfg: StudyConfig) -> SweepConfig:
    return SweepConfig(models=(cfg.reference,), benchmarks=cfg.benchmarks, store=cfg.store, name=cfg.name,
                       objective=cfg.objective, rule=cfg.rule, top_k=cfg.top_k, compute=cfg.compute, ray=cfg.ray)


def parse_study_config(text: str, source: str = "<study>", base_dir: Optional[Path] = None) -> StudyConfig:
    """Parse and check a study YAML (the sweep config's rules; see the module docstring). Needs no weights."""
    try:
        node = yaml.compose(text)
        files.check_yaml_nodes(node, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise FailureLensError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', None) or e}); "
                               "fix the syntax.") from None
    except RecursionError:
        raise FailureLensError(f"{source}: nested more than {files.MAX_DEPTH} levels deep; flatten it.") from None
    if not isinstance(data, dict) or node is None:
        raise FailureLensError(f"{source}: a study config must be a YAML mapping with reference, benchmarks, "
                               "store (and sizes / checkpoints).")
    b = _Builder(source, _key_lines(node, source))
    cfg = b.build_dataclass(StudyConfig, data, ())
    if cfg.rule not in ("attnlrp", "cp-lrp"):
        raise b.error(("rule",), f"rule must be attnlrp or cp-lrp, not {cfg.rule!r}.")
    if not cfg.name.strip() or "/" in cfg.name:
        raise b.error(("name",), f"name {cfg.name!r} must be non-empty and without '/'; it names the study's runs.")
    for key in ("failures_per_family", "cases_per_family"):
        value = getattr(cfg, key)
        for k, v in (value.items() if isinstance(value, dict) else [("", value)]):
            if v is not None and not 1 <= v <= 1_000_000:
                where = (key, k) if k else (key,)
                raise b.error(where, f"{_where(where)} is {v!r}, out of its range: it must be from 1 to 1,000,000.")
    if not cfg.sizes and not cfg.checkpoints:
        raise b.error(("sizes",), "a study needs sizes or checkpoints (or both) to compare with the reference.")
    labels: dict[str, tuple[tuple, ModelSpec]] = {}

    def label(m: ModelSpec, path: tuple) -> ModelSpec:
        """Default labels; a label twice is an error unless a size is also a checkpoint (same model, run once)."""
        m = dataclasses.replace(m, label=m.label or m.source.rstrip("/").split("/")[-1]
                                + (f"@{m.revision}" if m.revision else ""))
        seen = labels.get(m.label)
        if seen and (path[0] == seen[0][0] or "reference" in (path[0], seen[0][0]) or seen[1] != m):
            raise b.error(path, f"model label {m.label!r} is used twice ({_where(seen[0])} and {_where(path)}); "
                                "give each model its own label.")
        labels.setdefault(m.label, (path, m))
        return m

    ref = label(cfg.reference, ("reference",))
    sizes = tuple(label(m, ("sizes", i)) for i, m in enumerate(cfg.sizes))
    points = tuple(label(m, ("checkpoints", i)) for i, m in enumerate(cfg.checkpoints))
    checked = _finish(_as_sweep(dataclasses.replace(cfg, reference=ref)), b, base_dir)  # benchmarks, ranges, paths
    return dataclasses.replace(cfg, reference=ref, sizes=sizes, checkpoints=points, benchmarks=checked.benchmarks,
                               store=checked.store)


def load_study_config(path: str | Path) -> StudyConfig:
    return load_config_file(path, "study config", " (e.g. studies/zoo.yaml)", parse_study_config)


# ---- running ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyProgress:
    """One progress report: the phase (1-based of 3), the sweep's own report inside it, the study's time left."""

    phase: str
    index: int
    sweep: SweepProgress
    eta_s: Optional[float] = None  # the whole study's time left (engine.runs.study_eta); None until measured


@dataclass(frozen=True)
class StudySummary:
    name: str
    store: str
    phases: tuple[RunSummary, ...]
    cancelled: bool
    elapsed_s: float

    @property
    def lost(self) -> tuple[str, ...]:
        return tuple(x for p in self.phases for x in p.lost)


def cap(limit: Union[int, dict[str, int], None], fam: str) -> Optional[int]:
    """The per-family limit: a number for every family, or {family: n, default: n} (missing: no limit)."""
    return limit.get(fam, limit.get("default")) if isinstance(limit, dict) else limit


def family(case_meta: Optional[dict], benchmark: str) -> str:
    return str((case_meta or {}).get("family") or benchmark)


def _case_record(c: Any, meta: Optional[dict] = None) -> dict[str, Any]:
    return {"id": c.id, "benchmark": c.benchmark, "prompt": c.prompt, "reference": c.reference,
            "segments": {k: [list(s) for s in v] for k, v in c.segments.items()}, "meta": meta or c.meta}


def _write_cases(folder: Path, phase: str, cfg: StudyConfig, groups: list[list[dict]]) -> tuple[BenchmarkSpec, ...]:
    """One `cases` file per study benchmark (so each keeps its template and thinking settings)."""
    out = []
    for i, (bench, records) in enumerate(zip(cfg.benchmarks, groups)):
        if not records:
            continue
        path = folder / f"{phase}-{i}.jsonl"
        files.write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "case list")
        keep = bench.filters if phase == "screen" else Filters()
        out.append(dataclasses.replace(bench, kind="cases", path=str(path), name=None, columns={}, references=None,
                                       instruction=None, filters=dataclasses.replace(keep, limit=None)))
    if not out:
        raise FailureLensError(f"the study has no cases left for its {phase} phase (no failures of the reference "
                               "model, or no case of its `families`?); check the benchmarks, the filters and "
                               "`families`.")
    return tuple(out)


def _screen_cases(cfg: StudyConfig) -> list[list[dict]]:
    from engine.runs.sweep import load_cases

    taken: dict[str, int] = {}
    groups: list[list[dict]] = [[] for _ in cfg.benchmarks]
    index = {id(b): i for i, b in enumerate(cfg.benchmarks)}
    for bench, case in load_cases(_as_sweep(cfg)):
        fam = family(case.meta, case.benchmark)
        limit = cap(cfg.cases_per_family, fam)
        if cfg.families and fam not in cfg.families:
            continue
        if limit is None or taken.get(fam, 0) < limit:
            taken[fam] = taken.get(fam, 0) + 1
            groups[index[id(bench)]].append(_case_record(case))
    return groups


def _phase_cases(benches: tuple[BenchmarkSpec, ...]) -> list[tuple[int, Any]]:
    """(study benchmark index, case) of a phase's case files, in file order."""
    from engine.cases.benchmarks import load_benchmark

    return [(int(Path(b.path).stem.rsplit("-", 1)[1]), c) for b in benches for c in load_benchmark("cases", b.path)]


def _failure_cases(store: Store, cfg: StudyConfig, screen: tuple[BenchmarkSpec, ...]) -> list[list[dict]]:
    """The reference's first `failures_per_family` failures per family, in case order."""
    ok = {r["case_id"] for r in store.result_rows(run_id(cfg.name, "screen")) if r["status"] == "ok"}
    taken: dict[str, int] = {}
    out: list[list[dict]] = [[] for _ in cfg.benchmarks]
    for i, c in _phase_cases(screen):
        fam = family(c.meta, c.benchmark)
        limit = cap(cfg.failures_per_family, fam)
        if c.uid in ok and (limit is None or taken.get(fam, 0) < limit):
            taken[fam] = taken.get(fam, 0) + 1
            out[i].append(_case_record(c))
    return out


def _pinned_cases(store: Store, cfg: StudyConfig, reference: tuple[BenchmarkSpec, ...]) -> list[list[dict]]:
    """The reference's analysed failures with their token pair pinned, for every other model."""
    rows = {r["case_id"]: r for r in store.result_rows(run_id(cfg.name, "reference")) if r["status"] == "ok"}
    out: list[list[dict]] = [[] for _ in cfg.benchmarks]
    for i, c in _phase_cases(reference):
        r = rows.get(c.uid)
        if r is not None:
            pin = {"prefix": r["prefix"] or "", "target": r["target"], "contrast": r["contrast"]}
            out[i].append(_case_record(c, {**c.meta, "pin": pin}))
    return out


def run_study(cfg: StudyConfig, resume: bool = False, progress: Optional[Callable[[StudyProgress], None]] = None,
              cancel: Optional[Callable[[], bool]] = None, ray_address: Optional[str] = None) -> StudySummary:
    """Run (or resume) the three phases of the module docstring; returns each phase's summary."""
    from engine.runs.sweep import run_sweep

    t0 = time.perf_counter()
    folder = Path(cfg.store) / f"study-{cfg.name}"
    runner, started, ray = run_sweep, False, None
    if ray_address:
        from engine.runs.ray import _connect, probe, require_ray, run_sweep_ray

        ray = require_ray()
        if not ray.is_initialized():
            probe(ray_address)
        started = _connect(ray, ray_address)
        runner = run_sweep_ray
    summaries: list[RunSummary] = []
    try:
        with Store(cfg.store) as store:
            exists = any(r["run_id"] == cfg.name for r in store.runs())
            if exists and not resume and any(store.result_rows(run_id(cfg.name, p)) for p in PHASES):
                raise FailureLensError(f"study {cfg.name!r} already exists in {store.folder}; add --resume to "
                                       "continue it, or change its name.")
            store.create_run(cfg.name, cfg.identity(), name=cfg.name)  # refuses another config under this name
            folder.mkdir(parents=True, exist_ok=True)
            benches = _existing(folder, "screen", cfg) if resume else ()
            benches = benches or _write_cases(folder, "screen", cfg, _screen_cases(cfg))  # drawn once per study
        plans = _plans(cfg, benches)
        unit_s: list[Optional[float]] = [None]  # seconds per row unit, measured last (engine.runs.study_eta)
        for n, phase in enumerate(PHASES, 1):
            if phase != "screen":
                with Store(cfg.store) as store:
                    make = _failure_cases if phase == "reference" else _pinned_cases
                    benches = _write_cases(folder, phase, cfg, make(store, cfg, benches))

            def emit(p: SweepProgress, phase: str = phase, n: int = n) -> None:
                if not progress:
                    return
                plans[n - 1] = dataclasses.replace(plans[n - 1], rows=p.total)  # the phase's own count is exact
                if phase == "reference":
                    plans[2] = dataclasses.replace(plans[2], rows=p.total * len(cfg.others))
                unit_s[0] = unit_rate(p.done, p.total, p.eta_s, plans[n - 1].units) or unit_s[0]
                progress(StudyProgress(phase, n, p, study_eta(plans, n - 1, p.done, unit_s[0])))

            models = cfg.others if phase == "models" else (cfg.reference,)
            sweep = cfg.sweep(phase, models, benches)
            kwargs = dict(resume=True, run_id=sweep.name, progress=emit, cancel=cancel)
            summaries.append(runner(sweep, None, **kwargs) if ray is not None else runner(sweep, **kwargs))
            if summaries[-1].cancelled or summaries[-1].lost:
                break
    finally:
        if started:
            ray.shutdown()
    cancelled = any(s.cancelled for s in summaries)
    return StudySummary(cfg.name, str(Path(cfg.store)), tuple(summaries), cancelled, time.perf_counter() - t0)


def _plans(cfg: StudyConfig, screen: tuple[BenchmarkSpec, ...]) -> list[PhasePlan]:
    """The rows and row costs of the three phases (engine.runs.study_eta): the screened cases; at most
    `failures_per_family` failures of each family's screened cases; those in every other model."""
    per_family: dict[str, int] = {}
    for _, c in _phase_cases(screen):
        fam = family(c.meta, c.benchmark)
        per_family[fam] = per_family.get(fam, 0) + 1
    failures = sum(min(n, cap(cfg.failures_per_family, f) or n) for f, n in per_family.items())
    rows = (sum(per_family.values()), failures, failures * len(cfg.others))
    return [PhasePlan(r, row_units(cfg.sweep(ph, (), ()).compute)) for r, ph in zip(rows, PHASES)]


def _existing(folder: Path, phase: str, cfg: StudyConfig) -> tuple[BenchmarkSpec, ...]:
    """The case files a phase wrote before (resume: the screened cases are never re-drawn)."""
    out = []
    for i, bench in enumerate(cfg.benchmarks):
        path = folder / f"{phase}-{i}.jsonl"
        if path.exists():
            out.append(dataclasses.replace(bench, kind="cases", path=str(path), name=None, columns={}, references=None,
                                           instruction=None, filters=dataclasses.replace(bench.filters, limit=None)))
    return tuple(out)
