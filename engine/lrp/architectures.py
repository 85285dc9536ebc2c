"""Per-architecture patch maps: module class name -> replacement-forward factory.

Adding an architecture = adding one entry. Attention needs no factory: every listed attention
class calls transformers' attention registry, which `context.lrp_rules` redirects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import patches as p


@dataclass(frozen=True)
class Architecture:
    family: str  # short name shown to users
    attention: str  # attention module class name
    patches: dict[str, Callable] = field(default_factory=dict)


def _rms_gated(prefix: str, family: str) -> Architecture:
    """Pre-norm or post-norm decoders with RMSNorm (incl. q/k norms) and a gated MLP."""
    return Architecture(
        family,
        f"{prefix}Attention",
        {f"{prefix}RMSNorm": p.rms_norm, f"{prefix}MLP": p.gated_mlp, "Dropout": p.dropout_off},
    )


ARCHITECTURES: dict[str, Architecture] = {
    "Qwen3ForCausalLM": _rms_gated("Qwen3", "Qwen3"),
    "Qwen2ForCausalLM": _rms_gated("Qwen2", "Qwen2"),
    "LlamaForCausalLM": _rms_gated("Llama", "Llama"),
    "MistralForCausalLM": _rms_gated("Mistral", "Mistral"),
    "Gemma3ForCausalLM": _rms_gated("Gemma3", "Gemma3"),  # RMSNorm (1 + w): y/x covers it
    "Olmo2ForCausalLM": _rms_gated("Olmo2", "OLMo-2"),
    "Olmo3ForCausalLM": _rms_gated("Olmo3", "OLMo-3"),
    "Phi3ForCausalLM": Architecture(
        "Phi-3",
        "Phi3Attention",
        {"Phi3RMSNorm": p.rms_norm, "Phi3MLP": p.fused_gated_mlp, "Dropout": p.dropout_off},
    ),
    "GPT2LMHeadModel": Architecture(
        "GPT-2",
        "GPT2Attention",
        {
            "LayerNorm": p.layer_norm,
            "NewGELUActivation": p.elementwise,
            "GELUActivation": p.elementwise,
            "GELUTanh": p.elementwise,
            "Dropout": p.dropout_off,
        },
    ),
    "GPTNeoXForCausalLM": Architecture(
        "GPT-NeoX / Pythia",
        "GPTNeoXAttention",
        {
            "LayerNorm": p.layer_norm,
            "GELUActivation": p.elementwise,
            "FastGELUActivation": p.elementwise,
            "NewGELUActivation": p.elementwise,
            "Dropout": p.dropout_off,
        },
    ),
}


def supported_names() -> list[str]:
    return sorted({a.family for a in ARCHITECTURES.values()})
