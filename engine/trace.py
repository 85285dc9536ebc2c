"""One forward + one modified backward, keeping the residual stream and its gradients.

This is the single pass behind the heatmap and the graph's node relevance.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .lrp.context import Capture, lrp_rules
from .models import ModelHandle
from .objectives import OBJECTIVES

log = logging.getLogger(__name__)

MID_INPUT = {  # the layer submodule whose input is the residual stream between attention and MLP
    "Olmo2ForCausalLM": "mlp",
    "Olmo3ForCausalLM": "mlp",
    "Gemma3ForCausalLM": "pre_feedforward_layernorm",
    "GPT2LMHeadModel": "ln_2",
}


@dataclass
class Trace:
    """Tensors of one attribution pass (batch 1 squeezed). Shapes: T tokens, d hidden, V vocab."""

    emb: torch.Tensor  # [T, d]
    emb_grad: torch.Tensor  # [T, d]
    posts: list[torch.Tensor]  # per layer [T, d] residual after the layer
    post_grads: list[torch.Tensor]
    mids: list[torch.Tensor]  # per layer [T, d] between attention and MLP (empty unless asked)
    mid_grads: list[torch.Tensor]
    logits: torch.Tensor  # [V] at the last position (float32, detached)
    objective: float


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise RuntimeError(f"could not find the {n} decoder layers of {type(model).__name__}")


def mid_module(handle: ModelHandle, layer: torch.nn.Module) -> Optional[torch.nn.Module]:
    """None where the architecture has no mid-block residual (GPT-NeoX parallel residual)."""
    if handle.arch == "GPTNeoXForCausalLM":
        return None if handle.model.config.use_parallel_residual else layer.post_attention_layernorm
    return getattr(layer, MID_INPUT.get(handle.arch, "post_attention_layernorm"))


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
) -> tuple[Trace, int, Optional[int]]:
    """Forward on `ids`, choose (target, contrast) from the last-position logits via `pick`, backward.

    `rules=False` gives plain Input x Gradient (used by benchmarks and tests as the baseline).
    """
    model = handle.model
    layers = decoder_layers(model)
    posts: list[torch.Tensor] = []
    mids: list[torch.Tensor] = []
    checkpointing = handle.gradient_checkpointing
    forward_done = [False]  # checkpointed layers run again during backward: ignore those calls

    def keep_post(_m, _args, out):
        h = out[0] if isinstance(out, tuple) else out
        if h.requires_grad and not forward_done[0]:
            h.retain_grad()
            posts.append(h)

    def keep_mid(_m, args, kwargs):
        h = args[0] if args else next(iter(kwargs.values()))
        if h.requires_grad and torch.is_grad_enabled():
            h.retain_grad()
            mids.append(h)

    hooks = [layer.register_forward_hook(keep_post) for layer in layers]
    if capture_mid and not checkpointing:
        for layer in layers:
            m = mid_module(handle, layer)
            if m is not None:
                hooks.append(m.register_forward_pre_hook(keep_mid, with_kwargs=True))
    ctx = lrp_rules(model, handle.rule, attention_capture) if rules else contextlib.nullcontext()
    try:
        with ctx, torch.enable_grad():
            model.train(checkpointing)  # HF checkpointing runs only in train mode; dropout is off under the rules
            emb = embed(handle, ids)
            out = model(inputs_embeds=emb, logits_to_keep=1, use_cache=False)
            forward_done[0] = True
            logits = out.logits[0, -1].float()
            target, contrast = pick(logits.detach())
            value = OBJECTIVES[objective](logits, target, contrast, k)
            value.backward()
    finally:
        model.eval()
        for h in hooks:
            h.remove()
    trace = Trace(
        emb=emb.detach()[0], emb_grad=emb.grad.detach()[0],
        posts=[p.detach()[0] for p in posts], post_grads=[p.grad.detach()[0] for p in posts],
        mids=[m.detach()[0] for m in mids], mid_grads=[m.grad.detach()[0] for m in mids],
        logits=logits.detach(), objective=float(value.detach()),
    )
    return trace, target, contrast


def relevance(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-token relevance: (x * grad).sum over hidden, in float32. [T, d] -> [T]."""
    return (x.float() * g.float()).sum(-1)
