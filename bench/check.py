"""Causal-check cost against one heatmap: `python -m bench check [--json] [--quick] [--model SOURCE]`.

Models: zoo:l and a random model with the layer shapes of Qwen3-0.6B (`random:qwen3-0.6b`, bench/memory.py:
vocabulary shrunk to the zoo tokenizer's), 512 tokens (128 with --quick). CPU time of this process; every
figure is a ratio to one heatmap (`attribute`) measured in the same run:

verdict_x  `check_attribution` (K = 10, 5 seeds) as shipped: only the rows the verdict reads
nodes_x    `ablate_nodes`, top 20 nodes by |R| (its rule pass, then zero and mean ablation, each row from its
           node's layer and token)
split_x    the same with the attention / MLP split (block-output rows too)
curves_x   `check_attribution(curves="full")`: every curve at every k (82 rows)

zoo:l: one warm-up call each, then the median of 3 interleaved rounds. The 0.6B shape: one call each (a
heatmap before and after the checks, averaged), as one heatmap takes ~20 CPU seconds there.
`--json` prints one JSON object per model and prompt length (tokens, verdict_x, nodes_x, split_x, curves_x,
and the seconds and model runs behind them).
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable

from engine import attribute
from engine.cases.ablation import ablate_nodes
from engine.cases.checks import check_attribution

from .common import default_model, machine, prompt_of

MODELS = ("zoo:l", "random:qwen3-0.6b")
JOBS = ("heatmap", "verdict", "nodes", "split", "curves")


def _handle(source: str):
    if source.startswith("random:"):
        from .memory import random_handle

        return random_handle(source.split(":", 1)[1])
    return default_model(source)


def _measure(jobs: dict[str, Callable[[], object]], repeats: int, warm: bool) -> tuple[dict, dict]:
    """Median CPU seconds per job over `repeats` interleaved rounds (after one warm-up call each when `warm`),
    and each job's last result."""
    results = {name: fn() for name, fn in jobs.items()} if warm else {}
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            t0 = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - t0)
    if not warm:  # one more heatmap after the checks: the machine's load moves over minutes
        t0 = time.process_time()
        jobs["heatmap"]()
        times["heatmap"].append(time.process_time() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, results


def run(model: str | None, quick: bool, as_json: bool = False) -> int:
    lengths = (128,) if quick else (512,)
    if not as_json:
        print(machine())
        print(f"{'model':<20} {'tokens':>6} {'heatmap s':>9} | {'verdict':>14} | {'nodes':>14} | {'split':>14} | "
              f"{'curves':>14} | verdict   (ratio x, model runs)")
    for source in [model] if model else MODELS:
        handle = _handle(source)
        big = int(handle.model.config.hidden_size) >= 512
        for n in lengths:
            prompt = prompt_of(handle, n)
            att = attribute(handle, prompt)
            t, c = att.target.token_id, att.contrast.token_id
            jobs = {"heatmap": lambda: attribute(handle, prompt),
                    "verdict": lambda: check_attribution(handle, att),
                    "nodes": lambda: ablate_nodes(handle, att.token_ids, t, c, top_n=20),
                    "split": lambda: ablate_nodes(handle, att.token_ids, t, c, top_n=20, split=True),
                    "curves": lambda: check_attribution(handle, att, curves="full")}
            secs, res = _measure(jobs, 1 if (big or quick) else 3, warm=not big)
            x = {name: secs[name] / secs["heatmap"] for name in JOBS}
            rows = {"verdict": res["verdict"].verdict_rows, "nodes": res["nodes"].forward_rows + 1,
                    "split": res["split"].forward_rows + 1, "curves": res["curves"].forward_rows}
            if as_json:
                print(json.dumps({"model": source, "tokens": len(att.token_ids),
                                  **{f"{name}_x": round(x[name], 3) for name in JOBS[1:]},
                                  **{f"{name}_s": round(secs[name], 4) for name in JOBS},
                                  **{f"{name}_runs": rows[name] for name in JOBS[1:]},
                                  "verdict": res["verdict"].verdict, "flip_k": res["verdict"].flip_k}), flush=True)
                continue
            cells = " | ".join(f"{x[name]:>6.2f}x {rows[name]:>5}" for name in JOBS[1:])
            print(f"{source:<20} {len(att.token_ids):>6} {secs['heatmap']:>9.3f} | {cells} | "
                  f"{res['verdict'].verdict} (flip k {res['verdict'].flip_k})", flush=True)
    if not as_json:
        print("goals at 512 tokens: verdict <= 3x, nodes <= 3x (split <= 4x), full curves <= 8x one heatmap")
    return 0
