"""One forward + one modified backward, keeping the residual stream and its gradients.

This is the single pass behind the heatmap and the graph's node relevance. Two memory paths give the same
numbers (tested within 1e-6 on every architecture):
  kept       autograd keeps every layer's activations from the forward for the backward (the fastest);
  recompute  each decoder layer keeps only its input; the backward re-runs the layer, under the same rules,
             just before it needs the activations (activation checkpointing at decoder-layer boundaries):
             about one extra forward of time, and one layer's activations instead of all of them.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from torch.utils.checkpoint import checkpoint

from .hooks import scoped_hooks
from .lrp.architectures import architecture_of
from .lrp.context import Capture, lrp_rules
from .models import ModelHandle
from .objectives import OBJECTIVES

log = logging.getLogger(__name__)


@dataclass
class Trace:
    """Tensors of one attribution pass (batch 1 squeezed). Shapes: T tokens, d hidden, V vocab."""

    emb: torch.Tensor  # [T, d]
    emb_grad: torch.Tensor  # [T, d]
    posts: list[torch.Tensor]  # per layer [T, d] residual after the layer (empty when reduced)
    post_grads: list[torch.Tensor]
    post_rel: list[torch.Tensor]  # per layer [T] relevance of the residual after the layer (always)
    mids: list[torch.Tensor]  # per layer [T, d] between attention and MLP (empty unless asked)
    mid_grads: list[torch.Tensor]
    logits: torch.Tensor  # [V] at the last position (float32, detached)
    objective: float
    path: str = "kept"  # "kept" | "recompute"


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise RuntimeError(f"could not find the {n} decoder layers of {type(model).__name__}")


def mid_module(handle: ModelHandle, layer: torch.nn.Module) -> Optional[torch.nn.Module]:
    """None where the architecture has no mid-block residual (GPT-NeoX parallel residual)."""
    arch = architecture_of(handle)
    return None if arch.parallel_residual(handle.model.config) else getattr(layer, arch.mid_input)


@contextlib.contextmanager
def recomputed_layers(layers: torch.nn.ModuleList) -> Iterator[None]:
    """Checkpoint every decoder layer for the duration of the block (instance forwards, restored in `finally`).

    Non-reentrant checkpointing re-runs the layer's own forward during the backward, inside whatever context is
    active then: run_trace keeps `lrp_rules` open across the backward, so the recompute applies the same rules.
    """
    saved = []
    try:
        for layer in layers:
            saved.append((layer, layer.__dict__.get("forward")))
            # eval mode and no dropout (the rules set it to 0): no random state to restore, and the recompute is
            # checked against the kept path by the tests, so torch's per-call RNG stash and metadata check are
            # skipped (about 4 % of the recompute path's time at 512 tokens)
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False, preserve_rng_state=False,
                                              determinism_check="none")
        yield
    finally:
        for layer, own in saved:
            if own is None:
                del layer.forward
            else:
                layer.forward = own


def embed(handle: ModelHandle, ids: list[int]) -> torch.Tensor:
    """Input embeddings [1, T, d] as a leaf that requires grad (relevance is read here)."""
    table = handle.model.get_input_embeddings()
    with torch.no_grad():
        e = table(torch.tensor([ids], device=handle.device))
    return e.detach().requires_grad_(True)


def run_trace(
    handle: ModelHandle,
    ids: list[int],
    pick: Callable[[torch.Tensor], tuple[int, Optional[int]]],
    objective: str,
    k: int = 10,
    rules: bool = True,
    capture_mid: bool = False,
    attention_capture: Optional[Capture] = None,
    recompute: Optional[bool] = None,
    keep_grads: bool = True,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> tuple[Trace, int, Optional[int]]:
    """Forward on `ids`, choose (target, contrast) from the last-position logits via `pick`, backward.

    `rules=False` gives plain Input x Gradient (used by benchmarks and tests as the baseline).
    `recompute` (default: the handle's load option) re-runs each layer during the backward instead of keeping
    its activations. `keep_grads=False` keeps only each layer's relevance row [T]: the row is reduced from the
    residual and its gradient the moment the gradient exists, so no [T, d] gradient per layer is ever held.
    `progress(phase, done, total)` is told each layer's end: ("forward", i, layers), then ("backward", i, layers)
    where the backward reaches a layer's output (keep_grads=False only); on a GPU the backward's calls come from
    autograd's device thread.
    """
    model = handle.model
    layers = decoder_layers(model)
    recompute = handle.gradient_checkpointing if recompute is None else bool(recompute)
    posts: list[torch.Tensor] = []
    post_rel: dict[int, torch.Tensor] = {}
    mids: list[torch.Tensor] = []
    n_seen = [0]  # layers whose output has been seen in the forward
    step = progress or (lambda *a: None)

    def reduce_into(i: int, h: torch.Tensor):
        held = [h.detach()]  # released as soon as the row is reduced

        def hook(g: torch.Tensor) -> None:
            post_rel[i] = relevance(held.pop()[0], g[0])
            step("backward", len(post_rel), len(layers))

        return hook

    def keep_post(_m, _args, out):
        h = out[0] if isinstance(out, tuple) else out
        if not h.requires_grad:
            return
        if keep_grads:
            h.retain_grad()
            posts.append(h)
        else:
            h.register_hook(reduce_into(n_seen[0], h))
        n_seen[0] += 1
        step("forward", n_seen[0], len(layers))

    def keep_mid(_m, args, kwargs):
        h = args[0] if args else next(iter(kwargs.values()))
        if h.requires_grad and torch.is_grad_enabled():
            h.retain_grad()
            mids.append(h)

    ctx = lrp_rules(model, handle.rule, attention_capture) if rules else contextlib.nullcontext()
    with scoped_hooks() as hooks:
        for layer in layers:
            hooks.add(layer.register_forward_hook(keep_post))
            m = mid_module(handle, layer) if capture_mid and not recompute else None
            if m is not None:
                hooks.add(m.register_forward_pre_hook(keep_mid, with_kwargs=True))
        with ctx, recomputed_layers(layers) if recompute else contextlib.nullcontext(), torch.enable_grad():
            model.eval()
            emb = embed(handle, ids)
            out = model(inputs_embeds=emb, logits_to_keep=1, use_cache=False)
            logits = out.logits[0, -1].float()
            del out
            target, contrast = pick(logits.detach())
            value = OBJECTIVES[objective](logits, target, contrast, k)
            value.backward()
    if keep_grads:
        post_grads = [p.grad.detach()[0] for p in posts]
        posts = [p.detach()[0] for p in posts]
        rows = [relevance(h, g) for h, g in zip(posts, post_grads)]
    else:
        posts, post_grads, rows = [], [], [post_rel[i] for i in range(len(post_rel))]
    trace = Trace(
        emb=emb.detach()[0], emb_grad=emb.grad.detach()[0], posts=posts, post_grads=post_grads, post_rel=rows,
        mids=[m.detach()[0] for m in mids], mid_grads=[m.grad.detach()[0] for m in mids],
        logits=logits.detach(), objective=float(value.detach()), path="recompute" if recompute else "kept",
    )
    return trace, target, contrast


def relevance(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-token relevance: (x * grad).sum over hidden, in float32. [T, d] -> [T]."""
    return (x.float() * g.float()).sum(-1)
