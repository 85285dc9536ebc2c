"""What one attribution pass records for graph construction (hooks, removed in `finally`).

Per layer: the attention function's q, k, v (post-RoPE, before grouped-query repetition), its mask
and scaling, the attention output (its gradient is U, the per-head gradient at the attention output),
the decoder layer's call arguments (to re-run blocks for the batch-packed method), and the MLP's inner
activation with its gradient (neuron drill-down).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch

from ..hooks import scoped_hooks
from ..lrp.architectures import architecture_of
from ..models import ModelHandle
from ..trace import decoder_layers


@dataclass
class LayerRecord:
    q: Optional[torch.Tensor] = None  # [H, T, hd]
    k: Optional[torch.Tensor] = None  # [Hkv, T, hd]
    v: Optional[torch.Tensor] = None  # [Hkv, T, hd]
    mask: Optional[torch.Tensor] = None  # as given to the attention function ([1, 1, T, T] or None)
    scaling: float = 1.0
    unsupported: Optional[str] = None  # why the closed form does not apply here
    out: Optional[torch.Tensor] = None  # [1, T, H, hd], grad retained
    layer_args: tuple = ()
    layer_kwargs: dict = field(default_factory=dict)
    attn_args: tuple = ()
    attn_kwargs: dict = field(default_factory=dict)
    mlp_in: Optional[torch.Tensor] = None  # [1, T, F], grad retained
    mid: Optional[torch.Tensor] = None  # [1, T, d] residual between attention and MLP (recompute path)
    u: Optional[torch.Tensor] = None  # [T, H, hd] gradient at the attention output, when `out` is not kept

    def release(self) -> None:
        """Drop the large per-layer tensors (the call arguments stay for later re-runs)."""
        self.q = self.k = self.v = self.out = self.mlp_in = self.mid = self.u = None


def unsupported_reason(module: torch.nn.Module, kwargs: dict) -> Optional[str]:
    """Why the closed form does not apply to this attention call (None: it applies)."""
    if kwargs.get("softcap") or getattr(module, "attn_logit_softcapping", None):
        return "attention logit soft-capping"
    if kwargs.get("s_aux") is not None or getattr(module, "sinks", None) is not None:
        return "attention sinks"
    return None


class Recorder:
    """Hooks for one forward pass. `attention` is passed to `lrp_rules(..., capture=...)`."""

    def __init__(self, handle: ModelHandle):
        self.handle = handle
        self.layers = decoder_layers(handle.model)
        self.index = {}
        for i, layer in enumerate(self.layers):
            for m in layer.modules():
                self.index[id(m)] = i
        self.records = [LayerRecord() for _ in self.layers]
        self.active = True

    def attention(self, module, q, k, v, mask, kwargs, out) -> None:
        if not self.active or not torch.is_grad_enabled():
            return
        rec = self.records[self.index[id(module)]]
        rec.q, rec.k, rec.v = q.detach()[0], k.detach()[0], v.detach()[0]
        rec.mask = mask
        scaling = kwargs.get("scaling")
        rec.scaling = float(scaling) if scaling is not None else q.shape[-1] ** -0.5
        rec.unsupported = unsupported_reason(module, kwargs) or rec.unsupported
        if out.requires_grad:
            out.retain_grad()
        rec.out = out

    @contextlib.contextmanager
    def hooks(self, calls: bool = True, inner: bool = True, mid: bool = False,
              attn_calls: bool = True) -> Iterator[None]:
        """calls: keep each layer's call arguments (and its attention module's, with attn_calls); inner: keep
        MLP inner activations; mid: keep mid residuals."""
        from ..trace import mid_module

        self.active = True
        try:
            with scoped_hooks() as hooks:
                for i, layer in enumerate(self.layers):
                    if calls:
                        hooks.add(layer.register_forward_pre_hook(self._keep_call(i, "layer"), with_kwargs=True))
                    if calls and attn_calls:
                        hooks.add(attention_module(layer).register_forward_pre_hook(self._keep_call(i, "attn"),
                                                                                    with_kwargs=True))
                    if inner:
                        down = getattr(layer.mlp, architecture_of(self.handle).mlp_down)
                        hooks.add(down.register_forward_pre_hook(self._keep_tensor(i, "mlp_in")))
                    m = mid_module(self.handle, layer) if mid else None
                    if m is not None:
                        hooks.add(m.register_forward_pre_hook(self._keep_tensor(i, "mid")))
                yield
        finally:
            self.active = False

    def _keep_call(self, i: int, what: str):
        def hook(_m, args, kwargs):
            if self.active and torch.is_grad_enabled():
                x = args[0] if args else kwargs.get("hidden_states")
                if what == "layer" and i == 0 and x is not None and x.requires_grad:
                    x.retain_grad()  # the residual entering layer 0 (embeddings + learned positions, if any)
                setattr(self.records[i], f"{what}_args", args)
                setattr(self.records[i], f"{what}_kwargs", dict(kwargs))

        return hook

    def _keep_tensor(self, i: int, name: str):
        def hook(_m, args):
            x = args[0]
            if self.active and x.requires_grad:
                x.retain_grad()
                setattr(self.records[i], name, x)

        return hook

    def recompute(self, i: int, h_in: torch.Tensor, g_out: torch.Tensor, mid: bool) -> LayerRecord:
        """Re-run layer i alone on its input [T, d] under the rules and seed its output with g_out [T, d].

        Because a layer's attention output, MLP input and mid residual at token t reach the rest of the
        model only through the layer output at t, their gradients here equal those of the full pass.
        """
        from ..lrp.context import lrp_rules

        rec = self.records[i]
        layer = self.layers[i]
        model = self.handle.model
        with self.hooks(calls=False, inner=True, mid=mid), lrp_rules(model, self.handle.rule, self.attention), \
                torch.enable_grad():
            x = h_in.unsqueeze(0).clone().requires_grad_(True)
            out = layer(x, *rec.layer_args[1:], **rec.layer_kwargs)
            h = out[0] if isinstance(out, tuple) else out
            torch.autograd.backward(h, g_out.unsqueeze(0).to(h.dtype))
        return rec


def attention_module(layer: torch.nn.Module) -> torch.nn.Module:
    for name in ("self_attn", "attn", "attention"):
        if hasattr(layer, name):
            return getattr(layer, name)
    raise RuntimeError(f"no attention module in {type(layer).__name__}")


def pre_attention_norm(handle: ModelHandle, layer: torch.nn.Module) -> Any:
    return getattr(layer, architecture_of(handle).pre_attn_norm, None)  # absent in post-norm models


def has_attention_bias(handle: ModelHandle, layer: torch.nn.Module) -> bool:
    """True when q, k or v carry a constant part (projection bias, or the pre-attention LayerNorm's bias)."""
    attn = attention_module(layer)
    norm = pre_attention_norm(handle, layer)
    biased = any(n.endswith("bias") for n, _ in attn.named_parameters())
    return biased or (norm is not None and getattr(norm, "bias", None) is not None)
