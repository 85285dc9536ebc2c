"""A small study on the zoo for the study tests: xs failures on instruction / math / code (short prompts, so the
causal checks take seconds), followed into s and three checkpoints of m."""
from __future__ import annotations

import json
from pathlib import Path

from engine import zoo

FAMILIES = ("instruction", "math", "code")
PER_FAMILY = 4


def write_study(folder: Path, name: str = "fx", store: str = "store", per_family: int = PER_FAMILY) -> Path:
    """The cases file and the study YAML in `folder`; returns the YAML's path."""
    with open(folder / "cases.jsonl", "w", encoding="utf-8") as f:
        for fam in FAMILIES:
            for c in zoo.load_benchmark("eval", fam)[:per_family]:
                f.write(json.dumps({"id": c.id, "benchmark": "zoo", "prompt": c.prompt, "reference": c.reference,
                                    "segments": {k: [list(s) for s in v] for k, v in c.segments.items()},
                                    "meta": {"family": fam}}) + "\n")
    cfg = folder / "study.yaml"
    cfg.write_text("\n".join([
        f"name: {name}",
        "reference: {source: 'zoo:xs', label: xs}",
        "sizes: [{source: 'zoo:s', label: s}]",
        "checkpoints:",
        *[f"  - {{source: 'zoo:{p}', label: {p}}}" for p in ("m-step00050", "m-step00500", "m-step06000")],
        "benchmarks: [{kind: cases, path: cases.jsonl}]",
        "failures_per_family: 3",
        "compute: {heatmap: true, graph: true, checks: {enabled: true, seeds: [0, 1], nodes: 6}}",
        f"store: {store}", ""]))
    return cfg
