"""Memory guard: estimate what a heavy run needs and refuse early with a concrete suggestion.

Estimates (bytes beyond the weights; k = kept floats per token and layer, see `_kept_floats`), checked within
1.5x of measured peaks at real widths (bench/RESULTS.md) and a factor of 2 on the zoo (tests/test_memory.py):
  heatmap, kept       = layers * T * k * bytes   (+ eager attention: 3 H T^2 per layer)
  heatmap, recompute  = layers * T * d * bytes + 2 * T * k * bytes   (layer inputs + one layer at a time)
  graph, kept       = heatmap + min(H T^2, chunk) * 12 * 4 + kept edges + layers * T * (2 d + ffn)
  graph, recompute  = heatmap + layers * T * d * bytes (x3 with the split) + min(H T^2, chunk) * 6 * 4 + kept edges
  packed   = graph + B * (layers run) * T * k * bytes
The guard runs kept activations when they fit, else per-layer recompute, else refuses naming what would fit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional

import torch

from .models import ModelHandle
from .records import FailureLensError

CHUNK_ELEMENTS = 1 << 23  # heads x rows x keys per chunk of the closed form (at most; see chunk_elements)
KEPT_D, KEPT_FFN = 16, 8  # per token and layer: activations kept for the backward, in units of d and ffn


@dataclass(frozen=True)
class Estimate:
    kind: str
    tokens: int
    needed: int  # bytes beyond what is already allocated (weights are counted as already there)
    available: int
    recompute: bool = False  # the path this estimate is for: per-layer recompute, or kept activations
    note: str = ""  # set when the guard chose recompute by itself (shown to the user)

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    @property
    def path(self) -> str:
        return "recompute" if self.recompute else "kept"


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info.get("MemAvailable", info.get("MemFree", 0))
    except OSError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def model_shape(cfg) -> tuple[int, int, int, int]:
    """(d, attention width = heads * head_dim, key/value width, MLP width) of a decoder config (also engine.cost's)."""
    d = cfg.hidden_size
    heads = cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or d // heads
    kv = (getattr(cfg, "num_key_value_heads", None) or heads) * hd
    ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
    return d, heads * hd, kv, ffn


def _kept_floats(cfg, d: int, a: int, kv: int, ffn: int) -> float:
    """Floats per token one decoder layer keeps for the backward under the rules (attribution path).

    Counted from what autograd saves (residual in, normed inputs, q/k/v, attention output twice, q/k norm
    inputs, and gate ratio, act(gate), up, their product in the MLP), times 0.8 for the tensors that share
    storage; calibrated on the Qwen3-0.6B and Llama-3.2-1B shapes (bench/RESULTS.md, `python -m bench memory`).
    """
    norms = a + kv if getattr(cfg, "model_type", "") in ("qwen3", "gemma3", "olmo2", "olmo3") else 0
    return 0.8 * (4 * d + 3 * a + 3 * kv + 4 * ffn + norms)


def estimate(handle: ModelHandle, tokens: int, kind: str = "heatmap", batch: int = 1, max_edges: int = 100_000,
             layers_run: int = 1, recompute: bool = False, split: bool = False) -> Estimate:
    cfg = handle.model.config
    d, a, kv, ffn = model_shape(cfg)
    heads, layers = cfg.num_attention_heads, handle.n_layers
    elt = torch.finfo(handle.dtype).bits // 8 if handle.dtype.is_floating_point else 4
    t = tokens
    per_layer = t * _kept_floats(cfg, d, a, kv, ffn) * elt  # activations one layer keeps for its backward
    if (cfg._attn_implementation or "eager") == "eager":
        per_layer += 3 * heads * t * t * elt
    if recompute:  # layer inputs kept; one layer's activations and its backward temporaries live at a time
        need = layers * t * d * elt + 2 * per_layer
    else:
        need = layers * per_layer
    # kept edges per transition (at most every causal pair): ids, weight, per-head shares and paths
    edges = layers * min(max_edges, t * (t + 1) // 2) * (36 + 4 * heads)
    if kind in ("graph", "packed") and recompute:
        # edges are built inside the backward (engine.graph.stream): the residuals' gradients (and the mid
        # residuals with theirs, with the split) stay for the graph's rows; one layer's closed-form chunk is live
        # (about six float32 arrays of it at once)
        need += layers * t * d * elt * (3 if split else 1) + min(heads * t * t, chunk_elements(handle)) * 6 * 4 + edges
    elif kind in ("graph", "packed"):
        need += min(heads * t * t, chunk_elements(handle)) * 12 * 4 + edges
        # kept: retained gradients mostly replace activations the backward frees (measured +0.2x the floor)
        need += layers * t * (2 * d + ffn)
    if kind == "packed":
        need += batch * layers_run * per_layer
    return Estimate(kind, tokens, int(need), available_bytes(handle.device), recompute)


def chunk_elements(handle: ModelHandle) -> int:
    """Heads x rows x keys per chunk of the closed form: CHUNK_ELEMENTS, or less when memory is short.

    About twelve float32 arrays of this size live at once; they may take at most 1/16 of the free memory.
    """
    return int(max(1 << 18, min(CHUNK_ELEMENTS, available_bytes(handle.device) // (16 * 12 * 4))))


def check_memory(handle: ModelHandle, tokens: int, kind: str = "heatmap", recompute: Optional[bool] = None,
                 **kw) -> Estimate:
    """The path to run: kept activations when they fit, else per-layer recompute (recompute=None); a forced
    path when recompute is True / False. Raises a FailureLensError naming a way out when nothing fits."""
    forced = handle.gradient_checkpointing or recompute is True
    kept = None if forced else estimate(handle, tokens, kind, **kw)
    if kept is not None and (kept.fits or recompute is False):
        if kept.fits:
            return kept
        return _refuse(handle, tokens, kind, kept, estimate(handle, tokens, kind, recompute=True, **kw))
    lean = estimate(handle, tokens, kind, recompute=True, **kw)
    if not lean.fits:
        return _refuse(handle, tokens, kind, kept or lean, lean)
    if forced:
        return lean
    gib = 2**30
    note = (f"Memory: kept activations would need about {kept.needed / gib:.1f} GiB ({kept.available / gib:.1f} GiB "
            f"free), so each layer was recomputed during the backward instead (same numbers, about "
            f"{lean.needed / gib:.1f} GiB, somewhat slower).")
    return replace(lean, note=note)


def _refuse(handle: ModelHandle, tokens: int, kind: str, est: Estimate, lean: Estimate) -> Estimate:
    gib = 2**30
    tips = []
    if not est.recompute and lean.fits:
        tips.append(f"allow per-layer recompute (about {lean.needed / gib:.1f} GiB: it fits)")
    if handle.fingerprint.quantize is None and handle.dtype == torch.float32:
        tips.append("load the model in bfloat16 (on a GPU; 4-bit saves no memory on CPU)")
    if kind != "heatmap":
        tips.append("select fewer layers")
    tips.append(f"shorten the prompt (it has {tokens} tokens)")
    also = f" ({lean.needed / gib:.1f} GiB even with per-layer recompute)" if not lean.fits and est is not lean else ""
    raise FailureLensError(
        f"This {kind} needs about {est.needed / gib:.1f} GiB{also} but only {est.available / gib:.1f} GiB is free. "
        f"Try: {'; '.join(tips)}."
    )
