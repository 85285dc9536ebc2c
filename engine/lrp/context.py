"""Scoped application of the LRP rules to one model instance.

`with lrp_rules(model, "attnlrp"):` installs instance-level forwards from the architecture's patch
map, routes attention through a rule-applying wrapper, and restores everything in `finally`.
Nothing on torch or transformers classes changes, so models of different architectures (or a
patched and an unpatched one) coexist in one process.

Attention: transformers looks the attention function up by `config._attn_implementation`. We
register one extra name per base implementation ("failure_lens_sdpa", ...) in both the attention
registry and the mask registry (a name missing from the mask registry silently drops the causal
mask), and switch this model's config to it for the duration of the context.
"""
from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..records import FailureLensError
from .architectures import ARCHITECTURES, arch_key
from .rules import scale_grad

RULES = ("attnlrp", "cp-lrp")
_PREFIX = "failure_lens_"

# Called as capture(module, query, key, value, attention_mask, kwargs, output) after every attention call
# (tensors as the attention function sees them: [B, heads, T, head_dim] inputs, [B, T, heads, head_dim] output).
Capture = Callable[..., None]


@dataclass
class AttentionState:
    rule: str
    base: Callable[..., Any]
    capture: Optional[Capture] = None


def _rule_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention with the AttnLRP uniform rule on Q K^T and A V, or CP-LRP's constant weights.

    Half of the gradient at A V goes to A (then half of that at Q K^T to each of q, k) and half to
    v: so q and k get 1/4, v gets 1/2. Softmax, mask and scaling keep their ordinary gradient.
    """
    state: Optional[AttentionState] = getattr(module, "_failure_lens", None)
    if state is None:  # a module outside the patched model that shares the name: behave plainly
        base = ALL_ATTENTION_FUNCTIONS.get_interface("sdpa", None)
        return base(module, query, key, value, attention_mask, **kwargs)
    if state.rule == "attnlrp":
        query, key, value = scale_grad(query, 0.25), scale_grad(key, 0.25), scale_grad(value, 0.5)
    else:
        query, key = query.detach(), key.detach()
    kwargs["dropout"] = 0.0
    out = state.base(module, query, key, value, attention_mask, **kwargs)
    if state.capture is not None:
        state.capture(module, query, key, value, attention_mask, kwargs, out[0])
    return out


def _register(base_name: str) -> str:
    name = _PREFIX + base_name
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _rule_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base_name])
    return name


def _base_attention(module: torch.nn.Module, impl: str) -> Callable[..., Any]:
    if impl == "eager":  # each modeling file has its own eager function (softcapping, sinks, ...)
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[impl]


@contextlib.contextmanager
def lrp_rules(model: torch.nn.Module, rule: str = "attnlrp", capture: Optional[Capture] = None) -> Iterator[None]:
    """Apply the rules to `model` for the duration of the block. Not re-entrant; callers hold the model's lock."""
    if rule not in RULES:
        raise FailureLensError(f"Unknown rule {rule!r}. Use one of: {', '.join(RULES)}.")
    arch = ARCHITECTURES[arch_key(model)]
    config = model.config
    original_impl = config._attn_implementation
    impl = original_impl or "eager"
    if impl.startswith(_PREFIX):
        raise RuntimeError("LRP rules are already applied to this model (nested lrp_rules).")
    if impl not in ("eager", "sdpa"):
        raise FailureLensError(
            f"Attention implementation {impl!r} is not supported for attribution; load with 'sdpa' or 'eager'."
        )
    patched: list[tuple[torch.nn.Module, bool, Any]] = []
    attn_modules: list[torch.nn.Module] = []
    try:
        for module in model.modules():
            cls = type(module).__name__
            if cls == arch.attention:
                module._failure_lens = AttentionState(rule, _base_attention(module, impl), capture)
                attn_modules.append(module)
            make = arch.patches.get(cls)
            if make is None:
                continue
            had_own = "forward" in module.__dict__
            original = module.forward
            patched.append((module, had_own, module.__dict__.get("forward")))
            module.forward = types.MethodType(
                lambda self, *a, _f=make(module, original, rule), **k: _f(*a, **k), module)
        config._attn_implementation = _register(impl)
        yield
    finally:
        config._attn_implementation = original_impl
        for module in attn_modules:
            del module._failure_lens
        for module, had_own, own in reversed(patched):
            if had_own:
                module.forward = own
            else:
                del module.forward
