"""A sweep config from a few choices (the Sweeps page's form): `sweep_yaml(SweepForm) -> str`.

The YAML it writes is what a person would type (engine.runs.config reads it back); the form covers the common
case (zoo or hub models, the built-in benchmark or one benchmark file, a case limit, what to compute, the store),
the YAML text stays for everything else. Every value is written through yaml.safe_dump, so text from the form
cannot add keys or lines of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from engine.records import FailureLensError

COMPUTE = ("graph", "checks", "faithfulness")  # besides the heatmap, which is always on


@dataclass(frozen=True)
class SweepForm:
    name: str
    models: tuple[str, ...]  # "zoo:l", a hub id or a local folder
    benchmark: str = "zoo"  # a kind of engine.cases.benchmarks.BENCHMARK_KINDS
    path: str = ""  # the benchmark file (not for zoo)
    limit: Optional[int] = 12  # cases per benchmark (None: all)
    compute: tuple[str, ...] = ()  # from COMPUTE
    store: str = ""  # the results folder ("" -> runs/<name>)


def store_path(form: SweepForm, base: Path) -> Path:
    """Where the results land, as a full path (relative stores start at `base`, the dashboard's folder)."""
    from engine.runs.config import resolve_path

    return Path(resolve_path(form.store.strip() or f"runs/{form.name.strip() or 'sweep'}", base))


def sweep_yaml(form: SweepForm, base: Path) -> str:
    """The config text of the form; a clear error for an empty or impossible choice."""
    from engine.cases.benchmarks import BENCHMARK_KINDS

    if not form.models:
        raise FailureLensError("Pick at least one model for the sweep.")
    if form.benchmark not in BENCHMARK_KINDS:
        raise FailureLensError(f"Unknown benchmark kind {form.benchmark!r}: use one of {', '.join(BENCHMARK_KINDS)}.")
    if form.benchmark != "zoo" and not form.path.strip():
        raise FailureLensError(f"A {form.benchmark} benchmark needs its file: fill in the benchmark file.")
    if form.limit is not None and form.limit < 1:
        raise FailureLensError("The number of cases must be at least 1 (or leave it empty for all).")
    unknown = set(form.compute) - set(COMPUTE)
    if unknown:
        raise FailureLensError(f"Unknown computation {sorted(unknown)[0]!r}: use {', '.join(COMPUTE)}.")
    models = []
    for source in form.models:
        label = source[4:] if source.startswith("zoo:") else Path(source.rstrip("/")).name or source
        models.append({"source": source, "label": label})
    bench: dict[str, Any] = {"kind": form.benchmark}
    if form.benchmark != "zoo":
        bench["path"] = form.path.strip()
    if form.limit is not None:
        bench["filters"] = {"limit": int(form.limit)}
    compute: dict[str, Any] = {"heatmap": True, **{c: True for c in COMPUTE if c in form.compute}}
    config = {"name": form.name.strip() or "sweep", "models": models, "benchmarks": [bench], "compute": compute,
              "store": str(store_path(form, base))}
    head = "# Written by the Sweeps page's form; edit it here for anything the form does not offer.\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
