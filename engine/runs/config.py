"""Sweep configuration: a YAML file read with yaml.safe_load into typed, frozen dataclasses.

Every key is checked: an unknown key, a duplicate key, a value of the wrong type or a missing required
key is an error that names the key and its line. Relative paths (benchmark files, references, the store)
start at the config file's folder. Example:

    name: ifeval-small
    models:
      - {source: Qwen/Qwen3-0.6B, revision: main, dtype: bfloat16, quantize: 4bit, label: q06}
    benchmarks:
      - kind: ifeval
        path: data/ifeval.jsonl
        references: data/ifeval_responses.jsonl
        thinking: false
        filters: {min_logit_diff: 1.0, max_ref_rank: 10, limit: 50}
    objective: {mode: logit_diff, strategy: by_ref_token, k: 10}
    rule: attnlrp
    compute:
      heatmap: true
      graph: {enabled: true, layers: recommended, pruning: {mode: cum_mass, top_p: 0.8}}
      faithfulness: {enabled: true, seeds: [0, 1, 2], max_k: 64}
      checks: {enabled: true, k: 10, seeds: [0, 1, 2, 3, 4], replacement: neutral, nodes: 20, curves: verdict}
    store: runs/store
    ray: {gpus_per_actor: 1, cpus_per_actor: 1, max_retries: 3}   # only used by `sweep --ray`

`graph: true` / `faithfulness: true` / `checks: true` are short for `{enabled: true}` with the defaults.
`checks` (engine.cases.checks, engine.cases.ablation) needs `heatmap: true`; a config without it keeps the
identity it had before checks existed, so older runs resume unchanged. `checks: true` computes the fast verdict
(only the rows it reads); `checks: {curves: full}` (a checks mapping without `enabled` turns them on) also stores
every curve at every k. The default `curves:
verdict` is left out of a run's identity (the verdict is the same), so runs from before it resume.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

import yaml

from engine import files
from engine.cases.benchmarks import BENCHMARK_KINDS
from engine.graph.types import DEFAULT_TOP_P
from engine.model_spec import ModelSpec
from engine.objectives import MAX_K, Objective
from engine.records import FailureLensError


@dataclass(frozen=True)
class Filters:
    min_logit_diff: Optional[float] = None  # keep failures with Δℓ above this
    max_ref_rank: Optional[int] = None  # keep failures whose reference token is within the top-k
    limit: Optional[int] = None  # first N cases of the file


@dataclass(frozen=True)
class BenchmarkSpec:
    kind: str = field(metadata={"choices": BENCHMARK_KINDS})
    path: Optional[str] = None  # not needed for kind zoo
    name: Optional[str] = None  # benchmark name in results; defaults to the kind (file name for table)
    columns: dict[str, str] = field(default_factory=dict)  # table: prompt/reference/id/instruction -> column
    references: Optional[str] = None  # ifeval: response file {prompt, response}
    instruction: Optional[str] = None  # appended instruction (math, humaneval, evalplus, gaia, table)
    chat_template: bool = True  # apply the tokenizer's chat template when it has one
    thinking: Optional[bool] = None  # enable_thinking where the template supports it
    filters: Filters = field(default_factory=Filters)


@dataclass(frozen=True)
class Pruning:
    mode: Literal["cum_mass", "global"] = "cum_mass"
    top_p: float = DEFAULT_TOP_P
    edge_threshold: float = 0.01
    node_threshold: float = 0.0


@dataclass(frozen=True)
class GraphSpec:
    enabled: bool = False
    layers: Union[Literal["recommended", "all"], tuple[int, ...]] = "recommended"
    split_mid: bool = False  # attention / MLP split nodes
    pruning: Pruning = field(default_factory=Pruning)


@dataclass(frozen=True)
class FaithSpec:
    enabled: bool = False
    seeds: tuple[int, ...] = (0, 1, 2)
    max_k: Optional[int] = 64
    mask_id: Optional[int] = None  # default: unk, then pad, then a space token
    chunk: int = 16  # masked variants per forward pass


@dataclass(frozen=True)
class ChecksSpec:
    """Causal checks per case: deletion curves with their verdict, and top-N node ablation."""

    enabled: bool = False
    k: int = 10  # tokens removed, at most
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # random orders of the baseline
    replacement: str = "neutral"  # neutral | pad | unk | a token id "#123"
    nodes: int = 20  # top nodes by |R| to ablate (0: none)
    split: bool = False  # ablate attention / MLP rows (block outputs) too
    curves: Literal["verdict", "full"] = "verdict"  # verdict: only the rows the verdict reads; full: every curve


@dataclass(frozen=True)
class ComputeSpec:
    heatmap: bool = True
    graph: GraphSpec = field(default_factory=GraphSpec)
    faithfulness: FaithSpec = field(default_factory=FaithSpec)
    checks: ChecksSpec = field(default_factory=ChecksSpec)


@dataclass(frozen=True)
class RaySpec:
    """How `sweep --ray` places work; never changes results, so it is not part of a run's identity."""

    gpus_per_actor: Optional[float] = None  # default: 1 when the cluster has GPUs, else 0
    cpus_per_actor: float = 1.0
    max_retries: int = 3  # restarts of a dead model actor, and retries of the case it was running


@dataclass(frozen=True)
class SweepConfig:
    models: tuple[ModelSpec, ...]  # engine.model_spec; keys source, label, revision, dtype, quantize
    benchmarks: tuple[BenchmarkSpec, ...]
    store: str
    name: str = ""
    objective: Objective = field(default_factory=Objective)  # engine.objectives; its keys mode, strategy, k
    rule: Literal["attnlrp", "cp-lrp"] = "attnlrp"  # = engine.lrp.context.RULES (a test keeps them equal)
    top_k: int = 10  # candidates recorded at each failure
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    ray: RaySpec = field(default_factory=RaySpec)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)

    def identity(self) -> dict[str, Any]:
        """What decides the results of a run (stored with it; resuming needs the same): everything but
        where the store is and how Ray places work."""
        out = {k: v for k, v in self.to_dict().items() if k not in ("store", "ray")}
        if not self.compute.checks.enabled:  # runs from before the checks keep their identity
            out["compute"].pop("checks")
        elif self.compute.checks.curves == "verdict":  # ... and from before the fast verdict (the same verdict)
            out["compute"]["checks"].pop("curves")
        return out


def config_dict(obj: Any) -> Any:
    """dataclasses.asdict without the fields a config cannot set (metadata `config: False`, e.g. an objective's
    target), so a run's identity is what its YAML said."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: config_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.metadata.get("config", True)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(config_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: config_dict(v) for k, v in obj.items()}
    return obj


# ---- parsing -------------------------------------------------------------------------------------------

class _Mismatch(Exception):
    pass


def _where(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the top level"


class _Builder:
    def __init__(self, source: str, lines: dict[tuple, int]):
        self.source, self.lines = source, lines

    def error(self, path: tuple, msg: str) -> FailureLensError:
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), 1)
        return FailureLensError(f"{self.source} line {line}: {msg}")

    def build(self, tp: Any, value: Any, path: tuple) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            for alt in (a for a in args if a is not type(None)):
                try:
                    return self.build(alt, value, path)
                except _Mismatch:
                    continue
            raise _Mismatch(" or ".join(_describe(a) for a in args))
        if origin is Literal:
            if value in args:
                return value
            raise _Mismatch("one of " + ", ".join(map(str, args)))
        if dataclasses.is_dataclass(tp):
            return self.build_dataclass(tp, value, path)
        if origin is tuple:
            if not isinstance(value, list):
                raise _Mismatch("a list")
            return tuple(self.value(args[0], v, path + (i,)) for i, v in enumerate(value))
        if origin is dict:
            if not isinstance(value, dict):
                raise _Mismatch("a mapping")
            return {str(k): self.value(args[1], v, path + (str(k),)) for k, v in value.items()}
        ok = {bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}[tp]
        if not ok(value):
            raise _Mismatch(_describe(tp))
        if tp is float and not math.isfinite(value):  # YAML's .nan / .inf
            raise _Mismatch("a finite number")
        return float(value) if tp is float else value

    def value(self, tp: Any, value: Any, path: tuple) -> Any:
        try:
            return self.build(tp, value, path)
        except _Mismatch as e:
            raise self.error(path, f"{_where(path)} must be {e}, not {value!r}.") from None

    def build_dataclass(self, cls: Any, value: Any, path: tuple) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("config", True)}
        if isinstance(value, bool) and "enabled" in fields:
            value = {"enabled": value}
        if cls is ChecksSpec and isinstance(value, dict) and value and "enabled" not in value:
            value = {**value, "enabled": True}  # `checks: {curves: full}` asks for checks
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _Mismatch("a mapping")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, v in value.items():
            key = str(key)
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(path + (key,), f"unknown key {key!r} in {_where(path)}{hint}; "
                                 f"allowed keys: {', '.join(fields)}.")
            kwargs[key] = self.value(fields[key].metadata.get("config_type", hints[key]), v, path + (key,))
            choices, span = fields[key].metadata.get("choices"), fields[key].metadata.get("range")
            if choices and kwargs[key] not in choices:
                raise self.error(path + (key,), f"{_where(path + (key,))} must be one of {', '.join(choices)}, "
                                 f"not {v!r}.")
            if span and not span[0] <= kwargs[key] <= span[1]:
                raise self.error(path + (key,), f"{_where(path + (key,))} is {v!r}, out of its range: it must be "
                                 f"from {span[0]} to {span[1]:,}.")
        for name, f in fields.items():
            if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(path, f"missing required key {name!r} in {_where(path)}.")
        try:
            return cls(**kwargs)
        except FailureLensError as e:  # the record's own checks across its keys (e.g. an objective's strategy)
            raise self.error(path, str(e)) from None


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) is tuple:
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def _key_lines(node: yaml.Node, source: str, path: tuple = ()) -> dict[tuple, int]:
    """Line (1-based) of every key and list item, by path; duplicate keys are errors."""
    out: dict[tuple, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, val in node.value:
            p = path + (str(key.value),)
            if p in seen:
                raise FailureLensError(f"{source} line {key.start_mark.line + 1}: duplicate key {key.value!r} "
                                       f"in {_where(path)}; keep one.")
            seen.add(p)
            out.update(_key_lines(val, source, p))
            out[p] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_key_lines(item, source, path + (i,)))
    return out


def parse_sweep_config(text: str, source: str = "<config>", base_dir: Optional[Path] = None) -> SweepConfig:
    """Parse YAML text; relative paths are resolved against base_dir when given."""
    try:
        node = yaml.compose(text)
        files.check_yaml_nodes(node, source)  # before anything walks it: alias bombs, self-reference, depth
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise FailureLensError(
            f"{source}{where}: not valid YAML ({getattr(e, 'problem', None) or e}); fix the syntax.") from None
    except RecursionError:  # deeper than PyYAML's recursive composer can go
        raise FailureLensError(
            f"{source}: nested more than {files.MAX_DEPTH} levels deep; flatten the config.") from None
    if not isinstance(data, dict) or node is None:
        raise FailureLensError(f"{source}: a sweep config must be a YAML mapping with models, benchmarks and store.")
    builder = _Builder(source, _key_lines(node, source))
    cfg = builder.build_dataclass(SweepConfig, data, ())
    return _finish(cfg, builder, base_dir)


def resolve_path(p: str, base_dir: Optional[Path]) -> str:
    """A path of a config: `~` is the home folder (as on the dashboard and for model folders); a relative path
    starts at `base_dir` (the YAML's folder; None: left relative). Sweep and study configs and the sweep form."""
    p = os.path.expanduser(p)
    if base_dir is None or Path(p).is_absolute():
        return p
    return str((base_dir / p).resolve())


def load_config_file(path: str | Path, what: str, example: str, parse: Callable[..., Any]) -> Any:
    """`parse(text, source, base_dir)` of a YAML file, read within the size limit; relative paths in it start at
    its folder. `what`: "sweep config" / "study config"; `example`: a hint for a path that is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FailureLensError(f"{what} not found: {path}; give the path of a YAML file{example}.")
    text = files.read_text(path, files.MAX_CONFIG_BYTES, what)
    return parse(text, str(path), path.parent)


def _finish(cfg: SweepConfig, b: _Builder, base_dir: Optional[Path]) -> SweepConfig:
    """Checks across keys, default labels, and relative paths made absolute."""
    if not cfg.models:
        raise b.error(("models",), "models is empty; list at least one model.")
    if not cfg.benchmarks:
        raise b.error(("benchmarks",), "benchmarks is empty; list at least one benchmark file.")
    models, labels = [], set()
    for i, m in enumerate(cfg.models):
        label = m.label or m.source.rstrip("/").split("/")[-1]
        if label in labels:
            raise b.error(("models", i), f"model label {label!r} is used twice; give each model its own label.")
        labels.add(label)
        models.append(dataclasses.replace(m, label=label))

    def resolve(p: Optional[str]) -> Optional[str]:
        return None if p is None else resolve_path(p, base_dir)

    benches = []
    for i, bench in enumerate(cfg.benchmarks):
        if bench.path is None and bench.kind != "zoo":
            raise b.error(("benchmarks", i), f"benchmark kind {bench.kind!r} needs a path.")
        f = bench.filters
        if (f.limit is not None and f.limit < 1) or (f.max_ref_rank is not None and f.max_ref_rank < 1):
            raise b.error(("benchmarks", i, "filters"), "filters limit and max_ref_rank must be at least 1.")
        benches.append(dataclasses.replace(bench, path=resolve(bench.path), references=resolve(bench.references)))
    for path, value, ok, allowed in _ranges(cfg):
        if value is not None and not ok(value):
            raise b.error(path, f"{_where(path)} is {value!r}, out of its range: it must be {allowed}.")
    c = cfg.compute.checks
    if c.enabled and (not 1 <= c.k <= 1000 or not c.seeds or not 0 <= c.nodes <= 500):
        raise b.error(("compute", "checks"), "checks need k in 1..1000, at least one seed and nodes in 0..500.")
    if c.enabled and not cfg.compute.heatmap:
        raise b.error(("compute", "checks"), "checks remove the heatmap's top tokens: turn on compute.heatmap too.")
    return dataclasses.replace(cfg, models=tuple(models), benchmarks=tuple(benches),
                               store=resolve(cfg.store) or cfg.store)


# MAX_K (engine.objectives): objective.k and top_k, candidates averaged / recorded per case
MAX_CHUNK = 4096  # faithfulness variants per forward pass


def _ranges(cfg: SweepConfig) -> list[tuple[tuple, Any, Any, str]]:
    """(path, value, test, allowed range in words) for every number with a domain; checked at parse time so a
    sweep never starts only to store the same error row for every case."""
    f, p, r = cfg.compute.faithfulness, cfg.compute.graph.pruning, cfg.ray
    at_least = lambda lo, hi=None: (lambda v: v >= lo and (hi is None or v <= hi),  # noqa: E731
                                    f"at least {lo}" if hi is None else f"from {lo} to {hi:,}")
    checks = [(("top_k",), cfg.top_k, *at_least(1, MAX_K)),  # objective.k: checked by its field's range
              (("compute", "faithfulness", "max_k"), f.max_k, *at_least(1)),
              (("compute", "faithfulness", "chunk"), f.chunk, *at_least(1, MAX_CHUNK)),
              (("compute", "faithfulness", "mask_id"), f.mask_id, *at_least(0)),
              (("compute", "graph", "pruning", "top_p"), p.top_p, lambda v: 0 < v <= 1, "above 0 and at most 1"),
              (("compute", "graph", "pruning", "edge_threshold"), p.edge_threshold, *at_least(0)),
              (("compute", "graph", "pruning", "node_threshold"), p.node_threshold, *at_least(0)),
              (("ray", "gpus_per_actor"), r.gpus_per_actor, *at_least(0)),
              (("ray", "cpus_per_actor"), r.cpus_per_actor, *at_least(0)),
              (("ray", "max_retries"), r.max_retries, *at_least(0))]
    checks += [(("compute", "faithfulness", "seeds", i), s, *at_least(0, 2**32 - 1)) for i, s in enumerate(f.seeds)]
    if isinstance(cfg.compute.graph.layers, tuple):
        checks += [(("compute", "graph", "layers", i), n, *at_least(0)) for i, n in enumerate(cfg.compute.graph.layers)]
    return checks


def load_sweep_config(path: str | Path) -> SweepConfig:
    return load_config_file(path, "sweep config", "", parse_sweep_config)
