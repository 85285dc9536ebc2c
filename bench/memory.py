"""Long context at real model widths: floor vs heatmap vs graph, time and resident memory.

`python -m bench memory [--shapes qwen3-0.6b,llama-3.2-1b] [--lengths 512,2048,8192]`

Models are random (seed 0) with the layer shapes of Qwen3-0.6B and Llama-3.2-1B; the vocabulary is shrunk to the
zoo tokenizer's 303 tokens (a real 151k / 128k vocabulary adds only its embedding and one row of logits, since
the engine computes logits at the last position only). Every measurement runs in a fresh process: the model is
built, a 16-token run warms the kernels, the peak-RSS mark is reset (`/proc/self/clear_refs`), then one run.
memory = resident-set high-water mark minus the resident size just before the run; peak = the high-water mark
itself (weights, libraries and the run). time = CPU seconds of that process, one torch thread.

floor   = a plain forward + backward to the input embeddings (no rules, nothing kept): what any gradient costs.
heatmap = `engine.attribute` on the path the memory guard picks (kept activations, or per-layer recompute).
graph   = `engine.build_graph` (all layers, closed form, 100k edges per transition) plus its JSON export (binary
          columns, written to a file one transition at a time: `export.write_json`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

SHAPES = {  # name -> (config class, layer shape)
    "qwen3-0.6b": ("Qwen3Config", dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                                       num_key_value_heads=8, head_dim=128, intermediate_size=3072)),
    "llama-3.2-1b": ("LlamaConfig", dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                                         num_key_value_heads=8, head_dim=64, intermediate_size=8192)),
}
KINDS = ("floor", "heatmap", "graph")
GIB = 2**30


def random_handle(shape: str, dtype: str = "float32"):
    """A ModelHandle around a random model of `shape` with the zoo tokenizer (vocabulary shrunk to it)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.lrp.architectures import ARCHITECTURES
    from engine.models import DTYPES, ModelHandle
    from engine.records import Fingerprint
    from engine.zoo import zoo_path

    tokenizer = AutoTokenizer.from_pretrained(str(zoo_path("l")))
    cls, dims = SHAPES[shape]
    config = getattr(transformers, cls)(vocab_size=len(tokenizer), max_position_embeddings=40960,
                                        tie_word_embeddings=True, rms_norm_eps=1e-6, **dims)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype], attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    arch = type(model).__name__
    fp = Fingerprint(f"bench:{shape}", None, dtype, None, "attnlrp", "random-seed0")
    return ModelHandle(model, tokenizer, arch, ARCHITECTURES[arch].family, config.num_hidden_layers, fp,
                       torch.device("cpu"), DTYPES[dtype], "attnlrp", 40960, label=f"random {shape}")


def floor_pass(handle, ids: list[int]) -> None:
    """Forward + backward of the logit at the last position to the input embeddings; nothing else kept."""
    import torch

    from engine.trace import embed

    with torch.enable_grad():
        emb = embed(handle, ids)
        out = handle.model(inputs_embeds=emb, logits_to_keep=1, use_cache=False)
        logits = out.logits[0, -1]
        logits[int(logits.argmax())].backward()
    return emb.grad


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def _run(handle, kind: str, ids: list[int], recompute) -> str:
    from engine import attribute
    from engine.graph.build import build_graph
    from engine.graph.export import write_json

    if kind == "floor":
        floor_pass(handle, ids)
        return "floor"
    if kind == "heatmap":
        return attribute(handle, "", token_ids=ids, recompute=recompute).path
    g = build_graph(handle, "", token_ids=ids, recompute=recompute)
    with tempfile.TemporaryFile("w", encoding="utf-8") as f:
        write_json(g, f, binary=True)
    return g.path


def child(shape: str, kind: str, n: int, recompute) -> dict:
    """One measurement in this (fresh) process; returns the row as a dict."""
    import gc
    import random

    import torch

    from engine import allocator
    from engine.memory import estimate

    torch.set_num_threads(1)
    handle = random_handle(shape)
    rng = random.Random(0)
    ids = [rng.randrange(4, len(handle.tokenizer)) for _ in range(n)]
    _run(handle, kind, ids[:16], recompute)  # warm-up: lazy kernels, allocator pools
    gc.collect()
    allocator.trim()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark: the peak below is the run's
    base = _status("VmRSS:")
    t0 = time.process_time()
    path = _run(handle, kind, ids, recompute)
    seconds = time.process_time() - t0
    peak = _status("VmHWM:")
    est = None
    if kind != "floor":
        est = estimate(handle, n, kind, recompute=path == "recompute").needed
    return {"shape": shape, "kind": kind, "tokens": n, "seconds": seconds, "growth": peak - base, "peak": peak,
            "path": path, "estimate": est, "allocator": allocator.tune()}


def measure(shape: str, kind: str, n: int, recompute=None, timeout: float = 7200) -> dict:
    arg = {None: "auto", True: "on", False: "off"}[recompute]
    out = subprocess.run([sys.executable, "-m", "bench.memory", shape, kind, str(n), arg], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"shape": shape, "kind": kind, "tokens": n, "error": f"exit {out.returncode}: {tail}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def row_text(r: dict, floor: dict | None) -> str:
    if "error" in r:
        return f"{r['shape']:>13} {r['tokens']:>6} {r['kind']:>8}  failed: {r['error']}"
    t_ratio = r["seconds"] / floor["seconds"] if floor and "error" not in floor else float("nan")
    m_ratio = r["growth"] / floor["growth"] if floor and "error" not in floor else float("nan")
    est = f"{r['estimate'] / r['growth']:.2f}" if r.get("estimate") else "-"
    return (f"{r['shape']:>13} {r['tokens']:>6} {r['kind']:>8} {r['path']:>9} {r['seconds']:>9.1f} {t_ratio:>6.2f} "
            f"{r['growth'] / GIB:>9.2f} {m_ratio:>6.2f} {r['peak'] / GIB:>8.2f} {est:>8}")


def shape_handle(shape: str, dtype: str = "float32"):
    """Just enough of a ModelHandle for `engine.memory.estimate` (config, dtype, layers): no weights built."""
    from types import SimpleNamespace

    import torch
    import transformers

    from engine.models import DTYPES

    cls, dims = SHAPES[shape]
    config = getattr(transformers, cls)(vocab_size=303, **dims)
    config._attn_implementation = "sdpa"
    return SimpleNamespace(model=SimpleNamespace(config=config), dtype=DTYPES[dtype],
                           n_layers=dims["num_hidden_layers"],
                           device=torch.device("cpu"))


def longest_fit(shape: str, kind: str, recompute: bool, free: int, dtype: str = "bfloat16") -> int:
    """The longest prompt (tokens, multiple of 256) whose estimate fits in `free` bytes beyond the weights."""
    from engine.memory import estimate

    h = shape_handle(shape, dtype)
    lo, hi = 0, 1 << 20
    while hi - lo > 256:
        mid = (lo + hi) // 2 // 256 * 256 or 256
        lo, hi = (mid, hi) if estimate(h, mid, kind, recompute=recompute).needed <= free else (lo, mid)
    return lo


def gpu_estimates(shapes: list[str], gpus=(("H100 80 GB", 80), ("H200 141 GB", 141))) -> None:
    """Estimates, not measurements: the longest prompt that fits on a GPU, from the memory guard's formula.

    Weights: bfloat16 2 bytes / parameter, NF4 about 0.55; activations in bfloat16 either way (NF4 computes
    in bfloat16); 2 GB kept back for the CUDA context and allocator slack.
    """
    print("ESTIMATES from engine.memory (no GPU measured): longest prompt that fits, tokens")
    print(f"{'shape':>13} {'GPU':>12} {'weights':>8} {'heatmap kept':>13} {'heatmap recompute':>18} "
          f"{'graph kept':>11} {'graph recompute':>16}")
    params = {"qwen3-0.6b": 0.44e9, "llama-3.2-1b": 0.97e9}  # decoder layers only (vocabulary excluded)
    context = {"qwen3-0.6b": 40960, "llama-3.2-1b": 131072}  # the real models' context lengths
    for shape in shapes:
        for gpu, gb in gpus:
            for wname, bytes_per in (("bf16", 2.0), ("nf4", 0.55)):
                free = int((gb - 2) * 1e9 - params[shape] * bytes_per)
                fits = [longest_fit(shape, k, r, free) for k in ("heatmap", "graph") for r in (False, True)]
                cells = [f"{f:,}" if f < context[shape] else f"all {context[shape]:,}" for f in fits]
                print(f"{shape:>13} {gpu:>12} {wname:>8} "
                      + " ".join(f"{c:>{w}}" for c, w in zip(cells, (13, 18, 11, 16))))


def run(shapes: list[str], lengths: list[int], kinds: list[str], recompute=None) -> int:
    import platform

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch thread; "
          "random weights, vocabulary 303 (zoo tokenizer)")
    print(f"{'shape':>13} {'tokens':>6} {'kind':>8} {'path':>9} {'CPU s':>9} {'time×':>6} {'mem GiB':>9} "
          f"{'mem×':>6} {'peak GiB':>8} {'est/mem':>8}")
    for shape in shapes:
        for n in lengths:
            floor = None
            for kind in kinds:
                r = measure(shape, kind, n, recompute)
                if kind == "floor":
                    floor = r
                print(row_text(r, floor), flush=True)
    print("time× and mem× are ratios to the floor row above; est/mem = the memory guard's estimate / measured growth.")
    gpu_estimates(shapes)
    return 0


if __name__ == "__main__":
    shape_, kind_, n_, arg_ = sys.argv[1:5]
    print(json.dumps(child(shape_, kind_, int(n_), {"auto": None, "on": True, "off": False}[arg_])))
