"""The graph's recompute path in one pass: each layer's attention edges are built inside the traced backward.

With per-layer checkpointing (engine.trace, recompute) the backward re-runs every decoder layer just before it
needs that layer's activations. `EdgeStream` takes what the closed form needs from that re-run (q, k, v, mask,
scaling, the MLP's inner activation) and, through gradient hooks on the first forward's tensors, the gradients
(U at the attention output, the MLP input's gradient, the layer output's and input's gradients). When a layer's
input gradient arrives, that layer's backward is complete: its edges are built at once and its tensors dropped,
so one layer's attention tensors are alive at a time, and no layer runs a third time after the backward.

The numbers are those of `Recorder.recompute` (the two-pass route it replaces): the same rules, the same
tensors, only caught at another moment. Tested equal to the kept path on every architecture.
With the Attn/MLP split the attention edges end at the mid residual, whose state and gradient are kept for the
graph's rows. Layers the closed form does not cover are left to the caller.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from functools import partial
from typing import Callable, Iterator, Optional

import torch
from torch.utils.checkpoint import set_checkpoint_early_stop

from ..hooks import scoped_hooks
from ..lrp.architectures import architecture_of
from ..models import ModelHandle
from ..trace import decoder_layers, mid_module, relevance
from .capture import LayerRecord, attention_module, unsupported_reason
from .closed_form import SparseEdges

# build(layer index, its record with q/k/v/u filled, input row [T], output row [T]) -> the layer's edges
Build = Callable[[int, LayerRecord, torch.Tensor, torch.Tensor], SparseEdges]
Neurons = Callable[[torch.Tensor, torch.Tensor], tuple]  # (MLP inner activation [T, F], its gradient) -> top


class EdgeStream:
    """Hooks for one checkpointed attribution pass; `attention` is the capture handed to the rules."""

    def __init__(self, handle: ModelHandle, records: list[LayerRecord], wanted: set[int], build: Build,
                 neurons: Neurons, split: bool = False):
        self.handle, self.records, self.wanted, self.build, self.top_neurons = handle, records, wanted, build, neurons
        self.split = split  # attention edges end at the mid residual (Attn/MLP split), whose state is kept
        self.mids: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> (mid residual [T, d], its gradient)
        self.mid_calls: Counter = Counter()
        self.layers = decoder_layers(handle.model)
        self.index = {id(m): i for i, layer in enumerate(self.layers) for m in layer.modules()}
        self.calls: Counter = Counter()  # attention calls per layer: 1 = the forward, 2 = the recompute
        self.mlp_calls: Counter = Counter()
        self.out_rel: dict[int, torch.Tensor] = {}  # layer -> relevance row of its output [T]
        self.edges: dict[int, SparseEdges] = {}
        self.neurons: dict[int, tuple] = {}
        self.const: Optional[dict] = None  # set while the constant parts of q, k, v are being computed

    # ------------------------------------------------------------------ capture (forward and recompute)
    def attention(self, module, q, k, v, mask, kwargs, out) -> None:
        if self.const is not None:
            self.const.update(q=q.detach()[0], k=k.detach()[0], v=v.detach()[0])
            return
        if not torch.is_grad_enabled():
            return
        i = self.index[id(module)]
        self.calls[i] += 1
        rec = self.records[i]
        if self.calls[i] == 1:  # the forward: nothing kept, a hook for U
            rec.unsupported = unsupported_reason(module, kwargs)
            if out.requires_grad:
                out.register_hook(partial(self._keep_u, i))
            return
        rec.q, rec.k, rec.v, rec.mask = q.detach()[0], k.detach()[0], v.detach()[0], mask
        scaling = kwargs.get("scaling")
        rec.scaling = float(scaling) if scaling is not None else q.shape[-1] ** -0.5

    def _attn_call(self, i: int, _module, args, kwargs) -> None:
        """The attention module's call arguments, from the recompute (for the constant parts of q, k, v)."""
        if torch.is_grad_enabled() and self.calls[i] == 1:
            self.records[i].attn_args, self.records[i].attn_kwargs = args, dict(kwargs)

    def _keep_u(self, i: int, g: torch.Tensor) -> None:
        self.records[i].u = g.detach()[0]

    def _catch(self, calls: Counter, i: int, name: str, on_grad: Callable, x: torch.Tensor) -> None:
        """A tensor seen twice per layer: in the forward, a hook for its gradient (`on_grad(i, g)`); in the
        recompute, its value, kept as `records[i].<name>` until the gradient arrives."""
        if not torch.is_grad_enabled() or not x.requires_grad:
            return
        calls[i] += 1
        if calls[i] == 1:
            x.register_hook(partial(on_grad, i))
        else:
            setattr(self.records[i], name, x.detach())

    def _mlp_in(self, i: int, _module, args) -> None:
        self._catch(self.mlp_calls, i, "mlp_in", self._keep_neurons, args[0])

    def _keep_neurons(self, i: int, g: torch.Tensor) -> None:
        rec = self.records[i]
        if rec.mlp_in is not None:
            self.neurons[i] = self.top_neurons(rec.mlp_in[0], g.detach()[0])
            rec.mlp_in = None

    def _mid(self, i: int, _module, args, kwargs) -> None:
        self._catch(self.mid_calls, i, "mid", self._keep_mid, args[0] if args else next(iter(kwargs.values())))

    def _keep_mid(self, i: int, g: torch.Tensor) -> None:
        rec = self.records[i]
        if rec.mid is not None:
            self.mids[i] = (rec.mid[0], g.detach()[0])

    def _layer_in(self, i: int, _module, args, kwargs) -> None:
        x = args[0] if args else kwargs.get("hidden_states")
        if torch.is_grad_enabled() and x is not None and x.requires_grad:
            x.register_hook(partial(self._finish, i, x.detach()))

    def _layer_out(self, i: int, _module, _args, out) -> None:
        h = out[0] if isinstance(out, tuple) else out
        if torch.is_grad_enabled() and h.requires_grad:
            h.register_hook(partial(self._keep_out_rel, i, h.detach()))

    def _keep_out_rel(self, i: int, h: torch.Tensor, g: torch.Tensor) -> None:
        self.out_rel[i] = relevance(h[0], g[0])

    # ------------------------------------------------------------------ the layer's backward is complete
    def _finish(self, i: int, x: torch.Tensor, g: torch.Tensor) -> None:
        rec = self.records[i]
        try:
            if i in self.wanted and rec.unsupported is None and rec.q is not None and rec.u is not None:
                r_dst = relevance(*self.mids[i]) if self.split else self.out_rel[i]
                self.edges[i] = self.build(i, rec, relevance(x[0], g[0]), r_dst)
                rec.attn_args, rec.attn_kwargs = (), {}
        except RuntimeError:
            pass  # no edges for this layer: the caller re-runs it after the backward and notes why it failed
        finally:
            rec.release()

    def constant_qkv(self, layer: torch.nn.Module, args: list, kwargs: dict) -> tuple:
        """q, k, v of the attention module on the given call (rules already active: caught, not recorded)."""
        self.const = {}
        try:
            with torch.no_grad():
                attention_module(layer)(*args, **kwargs)
            return self.const["q"], self.const["k"], self.const["v"]
        finally:
            self.const = None

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        with scoped_hooks() as hooks:
            for i, layer in enumerate(self.layers):
                hooks.add(layer.register_forward_pre_hook(partial(self._layer_in, i), with_kwargs=True))
                hooks.add(layer.register_forward_hook(partial(self._layer_out, i)))
                hooks.add(attention_module(layer).register_forward_pre_hook(partial(self._attn_call, i),
                                                                            with_kwargs=True))
                down = getattr(layer.mlp, architecture_of(self.handle).mlp_down)
                hooks.add(down.register_forward_pre_hook(partial(self._mlp_in, i)))
                mid = mid_module(self.handle, layer) if self.split else None
                if mid is not None:
                    hooks.add(mid.register_forward_pre_hook(partial(self._mid, i), with_kwargs=True))
            with set_checkpoint_early_stop(False):  # the recompute must reach the MLP's inner activation
                yield
