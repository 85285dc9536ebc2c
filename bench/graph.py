"""Graph cost: closed form (b) vs batch-packed (a) at its best B and at B = 1, against the heatmap.

(a) is timed on a sample of chunks per transition and extrapolated when a full run would exceed a
minute. Peak memory: resident-set high-water mark of a fresh child process per prompt length.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time

import torch

from engine import attribute
from engine.graph.build import build_graph
from engine.graph.capture import Recorder
from engine.graph.packed import choose_batch, packed_rows
from engine.graph.prune import stage_layout
from engine.heatmap import prepare
from engine.objectives import Objective
from engine.trace import run_trace

from .common import default_model, machine, prompt_of, timed


def _packed_seconds(handle, prompt: str, batch: int, budget_s: float = 60.0) -> tuple[float, bool]:
    """Seconds for (a) over all adjacent transitions; extrapolated from sampled chunks if needed."""
    _, ids, _, name, choice, _ = prepare(handle, prompt, Objective())
    rec = Recorder(handle)
    with rec.hooks():
        trace, _, _ = run_trace(handle, ids, choice, name, attention_capture=rec.attention)
    layout = stage_layout(handle.n_layers, False)
    h0 = rec.records[0].layer_args[0].detach()[0]
    t = len(ids)
    rows = list(range(t))
    per_chunk, chunks_total = [], 0
    for li in range(handle.n_layers):
        src, dst = layout[li], layout[li + 1]
        n_chunks = -(-t // batch)
        chunks_total += n_chunks
        sample = rows[: batch * min(n_chunks, 2)]
        t0 = time.perf_counter()
        packed_rows(handle, rec.records, src, dst, h0, trace.posts, trace.post_grads[li], sample, batch)
        per_chunk.append((time.perf_counter() - t0) / max(1, -(-len(sample) // batch)))
    est = sum(pc * -(-t // batch) for pc in per_chunk)
    return est, True


def _measure(source, n, threads, queue):
    import torch

    torch.set_num_threads(threads)
    handle = default_model(source)
    prompt = prompt_of(handle, n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_heat = timed(lambda: attribute(handle, prompt), 2 if n <= 4096 else 1)
    t_fast = timed(lambda: build_graph(handle, prompt), 2 if n <= 4096 else 1)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    best_b = choose_batch(handle, n, 1)
    t_best, _ = _packed_seconds(handle, prompt, best_b)
    t_one, _ = _packed_seconds(handle, prompt, 1) if n <= 1024 else (float("nan"), True)
    queue.put((n, t_heat, t_fast, best_b, t_best, t_one, peak_mb))


def run(model: str | None, quick: bool) -> int:
    handle = default_model(model)
    print(f"model {handle.label} ({handle.n_layers} layers, d={handle.model.config.hidden_size}); {machine()}")
    lengths = (64, 256) if quick else (256, 1024, 4096, 10000)
    print(f"{'tokens':>7} {'heatmap s':>10} {'graph(b) s':>11} {'B':>4} {'(a) best-B s':>13} {'(a) B=1 s':>10} "
          f"{'(a)/(b)':>8} {'graph/heatmap':>14} {'peak MB':>8}")
    ctx = mp.get_context("spawn")
    for n in lengths:
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(model, n, torch.get_num_threads(), q))
        p.start()
        p.join()
        if p.exitcode != 0:
            print(f"{n:>7} failed (exit {p.exitcode})")
            continue
        n, t_heat, t_fast, b, t_best, t_one, peak = q.get()
        print(f"{n:>7} {t_heat:>10.3f} {t_fast:>11.3f} {b:>4} {t_best:>13.1f} {t_one:>10.1f} "
              f"{t_best / t_fast:>8.0f} {t_fast / t_heat:>14.2f} {peak:>8.0f}")
    print("(a) is extrapolated from two sampled chunks per transition; (a) B=1 is skipped above 1,024 tokens.")
    return 0
