"""Replacement forwards that apply the rules inside one module instance.

A patch is `make(module, original_forward, rule) -> forward`. The context manager in `context.py`
installs it on the instance (never on the class) and removes it afterwards.
Rules: "attnlrp" (AttnLRP) or "cp-lrp" (attention weights and the MLP gate held constant).
"""
from __future__ import annotations

from typing import Callable

import torch

from .rules import LayerNormRule, identity_rule, norm_rule, uniform_product

Forward = Callable[..., torch.Tensor]


def elementwise(module, original: Forward, rule: str) -> Forward:
    """Element-wise activations: identity rule y/x."""

    def forward(x, *args, **kwargs):
        return identity_rule(lambda t: original(t, *args, **kwargs), x)

    return forward


def rms_norm(module, original: Forward, rule: str) -> Forward:
    """RMSNorm variants: the identity rule y/x (normalising factor constant), saving the input, not the ratio."""

    def forward(x, *args, **kwargs):
        return norm_rule(lambda t: original(t, *args, **kwargs), x)

    return forward


def layer_norm(module, original: Forward, rule: str) -> Forward:
    """LayerNorm with constant standard deviation (mean subtraction keeps its gradient)."""

    def forward(x):
        return LayerNormRule.apply(x, module.normalized_shape, module.weight, module.bias, module.eps)

    return forward


def dropout_off(module, original: Forward, rule: str) -> Forward:
    """Dropout is the identity during attribution, also in train mode (gradient checkpointing)."""
    return lambda x, *a, **k: x


def _gate_times_up(act: Callable, gate: torch.Tensor, up: torch.Tensor, rule: str) -> torch.Tensor:
    if rule == "cp-lrp":  # the gate is a constant mask on the up path
        return act(gate).detach() * up
    return uniform_product(identity_rule(act, gate), up)


def gated_mlp(module, original: Forward, rule: str) -> Forward:
    """down(act(gate(x)) * up(x)) as in Llama, Qwen, Mistral, Gemma, OLMo."""

    def forward(x):
        return module.down_proj(_gate_times_up(module.act_fn, module.gate_proj(x), module.up_proj(x), rule))

    return forward


def fused_gated_mlp(module, original: Forward, rule: str) -> Forward:
    """Phi-3: gate and up come from one fused projection."""

    def forward(x):
        gate, up = module.gate_up_proj(x).chunk(2, dim=-1)
        return module.down_proj(_gate_times_up(module.activation_fn, gate, up, rule))

    return forward
