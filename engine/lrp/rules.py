"""AttnLRP propagation rules in Input x Gradient form: tiny autograd Functions.

Relevance of a tensor x is x * d(objective)/dx, where the backward pass is modified by these
Functions. Every forward returns exactly what the unpatched op returns, so logits never change.
Reference: Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for
Transformers", ICML 2024 (identity rule eq. for element-wise functions, uniform rule for
bilinear products, softmax rule = plain gradient).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.autograd import Function


def _ratio(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x)/x, computed in float32 and stored in x's dtype. An exact zero x gives 0 (0/0 -> 0) instead of
    the limit f'(0): such entries carry no relevance (x * grad = 0) and are vanishingly rare in floats."""
    r = y.float() / x.float()
    return r.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).to(x.dtype)


class IdentityRule(Function):
    """Identity rule for an element-wise map y = f(x): backward dx = g * f(x) / x.

    Used for activations (SiLU, GELU) and for RMSNorm, whose rule (normalising factor constant)
    is exactly y/x element-wise. The ratio is kept in float32 for low-precision models.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        y = fn(x)
        ctx.save_for_backward(_ratio(y, x))
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (ratio,) = ctx.saved_tensors
        return g * ratio, None


class ScaleGrad(Function):
    """Identity forward, backward multiplies the gradient by a constant (uniform rule share)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g * ctx.factor, None


class UniformProduct(Function):
    """y = a * b for two live tensors; each factor receives half of the gradient (uniform rule)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, b = ctx.saved_tensors
        half = 0.5 * g
        return half * b, half * a


class LayerNormRule(Function):
    """LayerNorm with its standard deviation held constant: dx = (g w - mean(g w)) / std.

    The forward is torch's own layer_norm, so values are bit-identical to the unpatched module.
    """

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        xf = x.float()
        std = torch.sqrt(xf.var(-1, keepdim=True, unbiased=False) + eps)
        ctx.save_for_backward(std, weight)
        return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)

    @staticmethod
    def backward(ctx, g):
        std, weight = ctx.saved_tensors
        gw = g.float() * (weight.float() if weight is not None else 1.0)
        gx = (gw - gw.mean(-1, keepdim=True)) / std
        return gx.to(g.dtype), None, None, None, None


class NormRule(Function):
    """The identity rule of IdentityRule for a normalisation y = x * c(x) (RMSNorm): backward dx = g * y / x.

    Saves x, not the ratio: x is the residual stream, which is held anyway (the next layer's input and the
    heatmap's own row), so the rule adds no [T, d] tensor per norm. The ratio is recomputed in the backward
    with the same function on the same x, so it is bit-identical to IdentityRule's.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.fn = fn
        return fn(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        with torch.no_grad():
            ratio = _ratio(ctx.fn(x), x)
        return g * ratio, None


def identity_rule(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return IdentityRule.apply(x, fn)


def norm_rule(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return NormRule.apply(x, fn)


def scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    return ScaleGrad.apply(x, factor)


def uniform_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return UniformProduct.apply(a, b)
