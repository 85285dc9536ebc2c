"""The sweep runner: every case of every benchmark under every model, analysed and stored.

Per model (loaded once), per case, as named phases (timings logged at INFO):
  template   the prompt as one user turn when the benchmark asks for it and the tokenizer has a template
  failure    first divergence from the reference (teacher forcing); filters min Δℓ and max reference rank
  heatmap    contrastive relevance on the exact prefix ids the failure was found on
  segments   Instruction / Query / Answer (the reference before the failure) / Special; category suggestion
  graph      optional: attribution graph pruned per the config, kept as JSON in the case's array file
  faith      optional: masking faithfulness
  checks     optional: deletion curves with their verdict, top-N node ablation (engine.cases.checks / ablation)
then one atomic `Store.put_result`. Status per case: ok | no_failure | filtered | error (the message of the
case's error; the sweep goes on). A model that does not load, or a config that does not fit it, ends the sweep.

A run is (store folder, run id); the id defaults to the config's name. The run keeps `SweepConfig.identity()`;
resume=True skips every (model, case) already stored (`Store.done_cases`), so nothing is recomputed, lost or
stored twice, and a different config under an existing run id is an error. Without resume, an existing run id
with results is an error too (nothing is silently mixed).

`analyse_case` is the whole per-case pipeline, free of the store. `ModelWorker` runs it for one model's cases and
`Tally` stores and reports what it returns: run_sweep drives them in this process, the Ray runner
(engine.runs.ray) runs the workers as actors and the tally in the driver.
"""
from __future__ import annotations

import gc
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np

from engine.cases.benchmarks import Case, apply_template, load_benchmark
from engine.cases.segments import SEGMENTS, Spans, add_span, assign_segments, phrase_mask, segment_relevance
from engine.lrp.architectures import architecture_of
from engine.records import FailureLensError
from engine.runs.config import BenchmarkSpec, GraphSpec, SweepConfig
from engine.runs.store import ResultRow, Store

log = logging.getLogger(__name__)

Todo = list[tuple[BenchmarkSpec, Case]]


@dataclass(frozen=True)
class SweepProgress:
    """One progress report. phase: "load" (a model is loading), "case" (a case was stored), "done"."""

    phase: str
    model: str
    case: int  # cases of this model done (stored before or now)
    cases: int  # cases of this model
    done: int  # (model, case) pairs done in the whole run
    total: int
    elapsed_s: float
    eta_s: Optional[float]  # None until a case has been computed
    case_id: str = ""
    status: str = ""


Progress = Optional[Callable[[SweepProgress], None]]
Cancel = Optional[Callable[[], bool]]  # e.g. threading.Event().is_set; checked between cases


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    store: str
    total: int  # (model, case) pairs in the run
    skipped: int  # already stored before this call
    computed: int  # stored by this call
    statuses: dict[str, int]  # of the computed ones
    cancelled: bool
    elapsed_s: float
    lost: tuple[str, ...] = ()  # "model/case" not computed because workers kept dying (Ray); resume retries them

    @property
    def complete(self) -> bool:
        return self.skipped + self.computed == self.total


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    row: ResultRow
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What a run has to do: its cases and, per model label, those not stored yet."""

    run_id: str
    cases: tuple[tuple[BenchmarkSpec, Case], ...]
    todo: dict[str, Todo]
    total: int
    skipped: int


class Clock:
    """Elapsed time and time left. Time left = remaining cases x busy seconds per computed case, where busy
    time counts from `mark()` (after a model has loaded) to each `tick`, so cases skipped on resume cost nothing."""

    def __init__(self, total: int, done: int = 0):
        self.total, self.done, self.computed, self.busy = total, done, 0, 0.0
        self.start = self.last = time.monotonic()

    def mark(self) -> None:
        self.last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        self.busy += now - self.last
        self.last = now
        self.done += 1
        self.computed += 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def eta(self) -> Optional[float]:
        return self.busy / self.computed * (self.total - self.done) if self.computed else None


# ---- arrays ---------------------------------------------------------------------------------------------

def text_array(text: str) -> np.ndarray:
    """UTF-8 bytes as uint8 (text inside an .npz without pickles)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def array_text(a: np.ndarray) -> str:
    return a.astype(np.uint8).tobytes().decode("utf-8")


@dataclass(frozen=True)
class StoredCase:
    """The arrays of one stored result, decoded. Per token: [T] aligned lists; layer_relevance [layers + 1, T]."""

    tokens: list[str]
    token_ids: list[int]
    relevance: np.ndarray
    layer_relevance: np.ndarray
    segments: list[str]
    special_mask: list[bool]
    offsets: list[tuple[int, int]]
    graph: Optional[dict[str, Any]]  # engine.graph.export.to_json of the pruned graph (from_json restores it)


def load_case(store: Store, run_id: str, model_label: str, case_id: str) -> Optional[StoredCase]:
    """The stored arrays of a result, or None when it has none (no failure, filtered, error, no heatmap)."""
    a = store.load_arrays(run_id, model_label, case_id)
    if "relevance" not in a and "graph_json" not in a:
        return None
    n = len(a["token_ids"])
    return StoredCase(
        tokens=json.loads(array_text(a["tokens_json"])), token_ids=a["token_ids"].tolist(),
        relevance=a.get("relevance", np.zeros(n, np.float32)),
        layer_relevance=a.get("layer_relevance", np.zeros((0, n), np.float32)),
        segments=[SEGMENTS[i] for i in a["segments"]] if "segments" in a else [],
        special_mask=a["special_mask"].tolist(), offsets=[tuple(o) for o in a["offsets"].tolist()],
        graph=json.loads(array_text(a["graph_json"])) if "graph_json" in a else None,
    )


# ---- planning -------------------------------------------------------------------------------------------

def load_cases(config: SweepConfig) -> list[tuple[BenchmarkSpec, Case]]:
    """Every benchmark's cases (after `limit`); case ids must be unique across the sweep."""
    out, seen = [], {}
    for i, b in enumerate(config.benchmarks):
        cases = load_benchmark(b.kind, b.path, name=b.name, limit=b.filters.limit, columns=b.columns,
                               references=b.references, instruction=b.instruction)
        for c in cases:
            if c.uid in seen:
                raise FailureLensError(f"benchmarks[{seen[c.uid]}] and benchmarks[{i}] both give case {c.uid!r}; "
                                       "give each benchmark its own name.")
            seen[c.uid] = i
            out.append((b, c))
    return out


def plan_run(store: Store, config: SweepConfig, run_id: str, resume: bool) -> Plan:
    """Register the run and its cases (once) and list what is left per model."""
    exists = any(r["run_id"] == run_id for r in store.runs())
    if exists and not resume and any(store.done_cases(run_id, m.label) for m in config.models):
        raise FailureLensError(f"run {run_id!r} already exists in {store.folder}; add --resume to continue it, "
                               "or give another run id (--run-id).")
    cases = load_cases(config)  # before create_run: a bad benchmark file leaves no empty run behind
    store.create_run(run_id, config.identity(), name=config.name)
    store.put_cases(run_id, [c for _, c in cases])
    todo: dict[str, Todo] = {}
    for m in config.models:
        done = store.done_cases(run_id, m.label)
        todo[m.label] = [(b, c) for b, c in cases if c.uid not in done]
    total = len(cases) * len(config.models)
    return Plan(run_id, tuple(cases), todo, total, total - sum(len(t) for t in todo.values()))


def default_run_id(config: SweepConfig) -> str:
    return config.name or "sweep"


# ---- one case -------------------------------------------------------------------------------------------

@contextmanager
def _phase(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - t0, 4)


def graph_stages(spec: GraphSpec, handle: Any) -> tuple[bool, Optional[list[int]]]:
    """(split, stage indices) for build_graph from the config's `layers`: "recommended" (embedding + 6 evenly
    spaced layers), "all", or a list of decoder layer numbers (the embedding is always included)."""
    from engine.graph.prune import layer_presets, stage_layout

    parallel = architecture_of(handle).parallel_residual(handle.model.config)
    split = spec.split_mid and not parallel  # build_graph turns the split off there (and notes it)
    if spec.layers == "all":
        return split, None
    if spec.layers == "recommended":
        return split, layer_presets(handle.n_layers, split)["Evenly spaced (6)"]
    bad = [layer for layer in spec.layers if not 0 <= layer < handle.n_layers]
    if bad or not spec.layers:
        raise FailureLensError(f"compute.graph.layers {list(spec.layers)} does not fit {handle.label} "
                               f"({handle.n_layers} layers, numbered 0..{handle.n_layers - 1}); fix the layer list.")
    wanted = {-1, *spec.layers}
    return split, [i for i, s in enumerate(stage_layout(handle.n_layers, split)) if s.layer in wanted]


def _instruction_groups(offsets, text: str, spans: Spans, labels: list[str], target: str) -> dict[str, list[bool]]:
    """Instruction tokens in phrases that name the target string, and the other instruction tokens."""
    if not spans.get("instruction"):
        return {}
    hit = phrase_mask(offsets, text, spans["instruction"], target)
    inst = [lab == "instruction" for lab in labels]
    return {"instruction_target": [h and i for h, i in zip(hit, inst)],
            "instruction_other": [i and not h for h, i in zip(hit, inst)]}


def _analyse(handle: Any, case: Case, bench: BenchmarkSpec, cfg: SweepConfig) -> tuple[ResultRow, dict]:
    from engine.cases.categories import suggest_category
    from engine.cases.failures import find_first_divergence, keep, pinned_failure
    from engine.heatmap import attribute

    t: dict[str, float] = {}
    tok = handle.tokenizer
    with _phase(t, "template"):
        if bench.chat_template:
            text, spans = apply_template(tok, case, bench.thinking)
        else:
            text, spans = case.prompt, {k: list(v) for k, v in case.segments.items()}
    with _phase(t, "failure"):
        pin = case.meta.get("pin")  # a study's pinned token pair (engine.runs.study): same failure, another model
        context = getattr(handle, "context_length", None)
        div = (pinned_failure(handle.model, tok, text, pin["prefix"], pin["target"], pin["contrast"], cfg.top_k,
                              context) if pin else
               find_first_divergence(handle.model, tok, text, case.reference, top_k=cfg.top_k, context=context))
    if div is None:
        return ResultRow("no_failure"), {}
    base = dict(logit_diff=div.logit_diff, ref_rank=div.ref_rank, target_id=div.target.token_id,
                target=div.target.text, contrast_id=div.contrast.token_id, contrast=div.contrast.text,
                position=div.position, prefix=div.prefix)
    extra: dict[str, Any] = {"ref_index": div.ref_index, "n_prompt_tokens": div.n_prompt_tokens,
                             "target_rank": div.target_rank, "topk": [vars(x) for x in div.topk]}
    f = bench.filters
    if not keep(div, f.min_logit_diff, f.max_ref_rank):
        return ResultRow("filtered", **base, extra=extra), {}
    read = text + div.prefix  # the text of prefix_ids; offsets point into it
    spans = add_span(spans, "answer", len(text), len(read))
    tgt, con = div.target.token_id, div.contrast.token_id
    obj = replace(cfg.objective, target=tgt, contrast=con)  # the config's objective on this case's tokens
    labels = assign_segments(div.offsets, spans, div.special_mask)
    arrays: dict[str, np.ndarray] = {
        "token_ids": np.asarray(div.prefix_ids, np.int64), "special_mask": np.asarray(div.special_mask, bool),
        "offsets": np.asarray(div.offsets, np.int64).reshape(-1, 2),
        "segments": np.asarray([SEGMENTS.index(lab) for lab in labels], np.int8),
    }
    seg, suggestion, faith = {}, None, None
    if cfg.compute.heatmap:
        with _phase(t, "heatmap"):
            att = attribute(handle, read, obj, top_k=cfg.top_k, token_ids=div.prefix_ids, offsets=div.offsets)
        with _phase(t, "segments"):
            seg = segment_relevance(att.relevance, labels, _instruction_groups(div.offsets, read, spans, labels,
                                                                                div.target.text))
            suggestion = suggest_category(seg, div.logit_diff).to_dict()
        arrays.update(tokens_json=text_array(json.dumps(att.tokens)),
                      relevance=np.asarray(att.relevance, np.float32),
                      layer_relevance=np.asarray(att.layer_relevance, np.float32))
        extra.update(objective=att.objective, conservation=att.conservation, warnings=att.warnings)
    else:
        from engine.tokens import display

        arrays["tokens_json"] = text_array(json.dumps([display(tok, i) for i in div.prefix_ids]))
    if cfg.compute.graph.enabled:
        from engine.graph.build import build_graph
        from engine.graph.export import to_json
        from engine.graph.prune import prune
        from engine.graph.types import PruneSettings

        with _phase(t, "graph"):
            split, stages = graph_stages(cfg.compute.graph, handle)
            g = build_graph(handle, read, obj, split=split, stages=stages, token_ids=div.prefix_ids)
            p = cfg.compute.graph.pruning
            pruned = prune(g, PruneSettings(mode=p.mode, top_p=p.top_p, edge_threshold=p.edge_threshold,
                                            node_threshold=p.node_threshold), stages)
            graph = to_json(g, pruned)
        arrays["graph_json"] = text_array(json.dumps(graph))
        extra["graph"] = {"nodes": len(graph["nodes"]["token"]),
                          "edges": sum(t["n_edges"] for t in graph["transitions"]),
                          "notes": list(g.notes)}
    if cfg.compute.faithfulness.enabled and cfg.compute.heatmap:
        from engine.cases.faithfulness import mask_flip_k, neutral_mask_id

        fs = cfg.compute.faithfulness
        with _phase(t, "faith"):
            faith = mask_flip_k(handle.model, div.prefix_ids, att.relevance, tgt, con,
                                neutral_mask_id(tok, fs.mask_id), div.special_mask, fs.seeds, fs.max_k,
                                fs.chunk).to_dict()
    check = None
    if cfg.compute.checks.enabled and cfg.compute.heatmap:
        check = _checks(handle, att, cfg.compute.checks, t)
        suggestion = _decided(suggestion, check)
    log.info("case %s: %s", case.uid, ", ".join(f"{k} {v:.3f}s" for k, v in t.items()))
    return ResultRow("ok", **base, segment_rel=seg, suggestion=suggestion, faith=faith, check=check,
                     extra=extra), arrays


def _decided(suggestion: Optional[dict[str, Any]], check: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The stored suggestion with its outcome decided by the checks (engine.cases.outcome, as on the pages): the
    heuristic's category is kept under "heuristic", `source` says which one the category is."""
    from engine.cases.categories import Suggestion
    from engine.cases.outcome import decide

    if suggestion is None:
        return None
    guess = Suggestion.from_dict(suggestion)
    verdict = (check.get("curves") or {}).get("verdict")
    r_zero = (check.get("ablation") or {}).get("r_zero")
    got = decide(guess.category, verdict=verdict, r_zero=r_zero)
    category = {"outcome": got.code, "pattern": got.pattern}
    return {**suggestion, "category": category, "reasons": [*suggestion["reasons"], f"Outcome {got.basis}."],
            "source": got.source, "heuristic": suggestion["category"]}


def _checks(handle: Any, att: Any, spec: Any, t: dict[str, float]) -> dict[str, Any]:
    """Deletion curves with their verdict and the top-N node ablation of one case (engine.cases.checks)."""
    from engine.cases.ablation import ablate_nodes
    from engine.cases.checks import check_attribution

    with _phase(t, "check curves"):
        curves = check_attribution(handle, att, spec.k, spec.seeds, spec.replacement, curves=spec.curves)
    ablation = None
    if spec.nodes:
        with _phase(t, "check nodes"):
            ablation = ablate_nodes(handle, att.token_ids, att.target.token_id, att.contrast.token_id,
                                    top_n=spec.nodes, split=spec.split).to_dict()
    return {"curves": curves.to_dict(), "ablation": ablation}


def analyse_case(handle: Any, case: Case, bench: BenchmarkSpec, config: SweepConfig) -> CaseResult:
    """The per-case pipeline of the module docstring. Errors of the case become an "error" row."""
    try:
        with handle.lock:
            row, arrays = _analyse(handle, case, bench, config)
    except FailureLensError as e:
        row, arrays = ResultRow("error", error=str(e)), {}
    except Exception as e:  # noqa: BLE001 - one broken case must not end a sweep of thousands
        log.exception("case %s failed", case.uid)
        row, arrays = ResultRow("error", error=f"{type(e).__name__}: {e}"), {}
    return CaseResult(case.uid, row, arrays)


# ---- the local runner -----------------------------------------------------------------------------------

def load_spec(spec: Any, config: SweepConfig, device: str = "auto") -> Any:
    from engine.models import load_model

    handle = load_model(spec.source, revision=spec.revision, dtype=spec.dtype, quantize=spec.quantize,
                        rule=config.rule, device=device)
    if config.compute.graph.enabled:
        graph_stages(config.compute.graph, handle)  # a layer list that does not fit fails now, not per case
    return handle


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelWorker:
    """One model's share of a sweep: loads the model on first use (so a restarted Ray actor reloads it by
    itself) and runs `analyse_case` for each (benchmark, case) given. run_sweep drives one in this process;
    engine.runs.ray runs one per model as a Ray actor."""

    def __init__(self, spec: Any, config: SweepConfig, device: str = "auto"):
        self.spec, self.config, self.device, self.handle = spec, config, device, None

    def _handle(self) -> Any:
        if self.handle is None:
            self.handle = load_spec(self.spec, self.config, self.device)
        return self.handle

    def ready(self) -> int:
        """Load the model now (errors surface before any case); returns the worker's process id."""
        import os

        self._handle()
        return os.getpid()

    def run(self, bench: BenchmarkSpec, case: Case) -> CaseResult:
        return analyse_case(self._handle(), case, bench, self.config)

    def close(self) -> None:
        """Let the model go and free its memory."""
        self.handle = None
        _free_memory()


class Tally:
    """The driver's side of a run, local or on Ray: the only writer of the store. Stores each result once,
    counts statuses, keeps the clock and reports progress (`SweepProgress`)."""

    def __init__(self, store: Store, plan: Plan, progress: Progress = None):
        self.store, self.plan, self.emit = store, plan, progress or (lambda p: None)
        self.clock = Clock(plan.total, plan.skipped)
        self.n = len(plan.cases)
        self.statuses: dict[str, int] = {}

    def loading(self, label: str, done: int) -> None:
        c = self.clock
        self.emit(SweepProgress("load", label, done, self.n, c.done, self.plan.total, c.elapsed, c.eta))

    def put(self, label: str, done: int, res: CaseResult) -> None:
        """Store `res` (the `done`-th case of model `label`), then report it."""
        self.store.put_result(self.plan.run_id, label, res.case_id, res.row, res.arrays or None)
        self.statuses[res.row.status] = self.statuses.get(res.row.status, 0) + 1
        c = self.clock
        c.tick()
        self.emit(SweepProgress("case", label, done, self.n, c.done, self.plan.total, c.elapsed, c.eta,
                                res.case_id, res.row.status))

    def finish(self, cancelled: bool, lost: tuple[str, ...] = ()) -> RunSummary:
        c, total = self.clock, self.plan.total
        self.emit(SweepProgress("done", "", self.n, self.n, c.done, total, c.elapsed, c.eta if c.done < total else 0.0))
        return RunSummary(self.plan.run_id, str(self.store.folder), total, self.plan.skipped, c.computed,
                          self.statuses, cancelled, c.elapsed, lost)


def run_sweep(config: SweepConfig, resume: bool = False, progress: Progress = None, cancel: Cancel = None,
              run_id: Optional[str] = None) -> RunSummary:
    """Run (or, with resume, continue) a sweep in this process; see the module docstring."""
    run_id = run_id or default_run_id(config)
    cancelled = False
    with Store(config.store) as store:
        plan = plan_run(store, config, run_id, resume)
        tally = Tally(store, plan, progress)
        for spec in config.models:
            todo = plan.todo[spec.label]
            first = tally.n - len(todo)
            if not todo:
                continue
            if cancel and cancel():
                cancelled = True
                break
            tally.loading(spec.label, first)
            worker = ModelWorker(spec, config)
            worker.ready()
            tally.clock.mark()
            for i, (bench, case) in enumerate(todo, first + 1):
                if cancel and cancel():
                    cancelled = True
                    break
                tally.put(spec.label, i, worker.run(bench, case))
            worker.close()
            if cancelled:
                break
        return tally.finish(cancelled)
