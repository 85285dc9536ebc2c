"""Batch-packed multi-target backprop: the generic reference method for edges of any transition.

For a transition src -> dst, re-run only the decoder layers in between on the source hidden states
replicated B times along the batch; row b is seeded with dst's stored gradient at target token j_b
only; one autograd call per chunk yields B rows of the edge matrix: E[j_b, :] = (h_src * grad_b).sum(-1).
Valid for any architecture (the blocks run as the model's own modules, under the rules).
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np
import torch

from ..hooks import scoped_hooks
from ..lrp.context import lrp_rules
from ..models import ModelHandle
from ..trace import decoder_layers, mid_module
from .capture import LayerRecord
from .types import Stage

Progress = Optional[Callable[[str, int, int], None]]


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 4 << 30


def choose_batch(handle: ModelHandle, t: int, n_layers_run: int, cap: int = 64) -> int:
    """B from free memory: each packed row holds about a dozen [T, d] activations per layer run,
    plus the [T, T] attention of each head (eager worst case), with a safety factor of 4."""
    d = handle.model.config.hidden_size
    heads = handle.model.config.num_attention_heads
    per_row = 4 * t * (12 * d + 2 * heads * t) * max(1, n_layers_run)
    return int(max(1, min(cap, free_bytes(handle.device) // (4 * per_row))))


def packed_rows(
    handle: ModelHandle,
    records: list[LayerRecord],
    src: Stage,
    dst: Stage,
    emb: torch.Tensor,
    posts: list[torch.Tensor],
    dst_grad: torch.Tensor,
    rows: list[int],
    batch: int,
    progress: Progress = None,
) -> np.ndarray:
    """Dense edge rows [len(rows), T] for dst tokens `rows` (float32). Tensors are [T, d] detached."""
    layers = decoder_layers(handle.model)
    first = src.layer + 1 if src.kind in ("emb", "post") else src.layer
    last = dst.layer
    start = emb if src.kind == "emb" else posts[src.layer] if src.kind == "post" else (
        emb if src.layer == 0 else posts[src.layer - 1])
    t, d = start.shape
    out = np.zeros((len(rows), t), np.float32)
    for c0 in range(0, len(rows), batch):
        chunk = rows[c0:c0 + batch]
        b = len(chunk)
        x = start.unsqueeze(0).expand(b, t, d).clone().requires_grad_(True)
        grabbed: dict[str, torch.Tensor] = {}

        def grab(name):
            def hook(_m, args, kwargs):
                h = args[0] if args else next(iter(kwargs.values()))
                grabbed.setdefault(name, h)
            return hook

        with scoped_hooks() as hooks:
            for name, stage in (("src", src), ("dst", dst)):
                if stage.kind == "mid":
                    mid = mid_module(handle, layers[stage.layer])
                    hooks.add(mid.register_forward_pre_hook(grab(name), with_kwargs=True))
            with lrp_rules(handle.model, handle.rule), torch.enable_grad():
                h = x
                for li in range(first, last + 1):
                    rec = records[li]
                    args = (h,) + tuple(rec.layer_args[1:])
                    res = layers[li](*args, **rec.layer_kwargs)
                    h = res[0] if isinstance(res, tuple) else res
                    if dst.kind == "mid" and li == last:
                        break
                target = grabbed["dst"] if dst.kind == "mid" else h
                source = grabbed["src"] if src.kind == "mid" else x
                seed = torch.zeros_like(target)
                seed[torch.arange(b), torch.tensor(chunk)] = dst_grad[chunk].to(seed.dtype)
                (grad,) = torch.autograd.grad(target, source, seed)
        out[c0:c0 + b] = (source.detach().float() * grad.float()).sum(-1).numpy()
        if progress:
            progress("batch-packed rows", c0 + b, len(rows))
    return out
