"""Memory guard: estimate what a heavy run needs and refuse early with a concrete suggestion.

Estimates are coarse on purpose (tested within a factor of 2 of measured peaks on the zoo):
  heatmap  = weights + layers * T * (16 d + 8 ffn) * bytes   (+ eager attention: 3 H T^2 per layer)
  graph    = heatmap + layers * T * (6 d + 2 ffn) * 4 + min(H T^2, chunk) * 12 * 4 + kept edges
  packed   = graph + B * (layers run) * T * (16 d + 8 ffn) * bytes
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .models import ModelHandle
from .records import FailureLensError

CHUNK_ELEMENTS = 1 << 20  # heads x rows x keys per chunk of the closed form (bounds its working memory)


@dataclass(frozen=True)
class Estimate:
    kind: str
    tokens: int
    needed: int  # bytes beyond what is already allocated (weights are counted as already there)
    available: int

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info.get("MemAvailable", info.get("MemFree", 0))
    except OSError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate(handle: ModelHandle, tokens: int, kind: str = "heatmap", batch: int = 1, max_edges: int = 100_000,
             layers_run: int = 1) -> Estimate:
    cfg = handle.model.config
    d = cfg.hidden_size
    ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
    heads = cfg.num_attention_heads
    layers = handle.n_layers
    elt = torch.finfo(handle.dtype).bits // 8 if handle.dtype.is_floating_point else 4
    t = tokens
    need = layers * t * (16 * d + 8 * ffn) * elt
    if (cfg._attn_implementation or "eager") == "eager":
        need += layers * 3 * heads * t * t * elt
    if kind in ("graph", "packed"):
        need += layers * t * (6 * d + 2 * ffn) * 4
        need += min(heads * t * t, CHUNK_ELEMENTS) * 12 * 4
        need += 2 * layers * max_edges * (24 + 4 * heads)
    if kind == "packed":
        need += batch * layers_run * t * (16 * d + 8 * ffn) * elt
    return Estimate(kind, tokens, int(need), available_bytes(handle.device))


def check_memory(handle: ModelHandle, tokens: int, kind: str = "heatmap", **kw) -> Estimate:
    """Raise a FailureLensError with suggestions when the run will not fit; return the estimate otherwise."""
    est = estimate(handle, tokens, kind, **kw)
    if est.fits:
        return est
    gib = 2**30
    tips = []
    if handle.fingerprint.quantize is None and handle.dtype == torch.float32:
        tips.append("load the model in bfloat16 or 4-bit")
    if not handle.gradient_checkpointing and kind == "heatmap":
        tips.append("turn on gradient checkpointing")
    if kind != "heatmap":
        tips.append("select fewer layers")
    tips.append(f"shorten the prompt (it has {tokens} tokens)")
    raise FailureLensError(
        f"This {kind} needs about {est.needed / gib:.1f} GiB but only {est.available / gib:.1f} GiB is free. "
        f"Try: {'; '.join(tips)}."
    )
