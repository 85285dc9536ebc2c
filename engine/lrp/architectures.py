"""Everything the engine knows about an architecture, in one record per family.

Adding an architecture = adding one entry to ARCHITECTURES (tests/test_lrp_architectures.py registers a copy of an
existing one under a new name and runs a heatmap and a graph through it). The record holds the LRP patch map (module
class name -> replacement-forward factory) and the names of the few submodules the graph, the recompute path and the
node ablation reach for. Attention needs no factory: every listed attention class calls transformers' attention
registry, which `context.lrp_rules` redirects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..records import FailureLensError
from . import patches as p


@dataclass(frozen=True)
class Architecture:
    family: str  # short name shown to users
    attention: str  # attention module class name
    patches: dict[str, Callable] = field(default_factory=dict)
    mid_input: str = "post_attention_layernorm"  # layer submodule whose input is the residual between attn and MLP
    mlp_down: str = "down_proj"  # the MLP's output projection (inside layer.mlp)
    pre_attn_norm: str = "input_layernorm"  # the norm in front of attention (absent in post-norm models)
    post_norm: bool = False  # block outputs are normed before the residual add (OLMo-2/3, Gemma 3)
    parallel_flag: Optional[str] = None  # config flag that, when true, adds attention and MLP in parallel

    def parallel_residual(self, config: Any) -> bool:
        """True when attention and MLP read the same residual (no mid-block state: no Attn/MLP split)."""
        return bool(self.parallel_flag and getattr(config, self.parallel_flag, False))


def _rms_gated(prefix: str, family: str, **layout: Any) -> Architecture:
    """Pre-norm or post-norm decoders with RMSNorm (incl. q/k norms) and a gated MLP."""
    return Architecture(
        family,
        f"{prefix}Attention",
        {f"{prefix}RMSNorm": p.rms_norm, f"{prefix}MLP": p.gated_mlp, "Dropout": p.dropout_off},
        **layout,
    )


ARCHITECTURES: dict[str, Architecture] = {
    "Qwen3ForCausalLM": _rms_gated("Qwen3", "Qwen3"),
    "Qwen2ForCausalLM": _rms_gated("Qwen2", "Qwen2"),
    "LlamaForCausalLM": _rms_gated("Llama", "Llama"),
    "MistralForCausalLM": _rms_gated("Mistral", "Mistral"),
    "Gemma3ForCausalLM": _rms_gated("Gemma3", "Gemma3", mid_input="pre_feedforward_layernorm",
                                    post_norm=True),  # RMSNorm (1 + w): y/x covers it
    "Olmo2ForCausalLM": _rms_gated("Olmo2", "OLMo-2", mid_input="mlp", post_norm=True),
    "Olmo3ForCausalLM": _rms_gated("Olmo3", "OLMo-3", mid_input="mlp", post_norm=True),
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
        mid_input="ln_2",
        mlp_down="c_proj",
        pre_attn_norm="ln_1",
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
        mlp_down="dense_4h_to_h",
        parallel_flag="use_parallel_residual",
    ),
}


def supported_names() -> list[str]:
    return sorted({a.family for a in ARCHITECTURES.values()})


def arch_key(model: Any) -> str:
    """The ARCHITECTURES key of a model: the name its config records (as the loader checks), else its class name."""
    names = [*(getattr(model.config, "architectures", None) or []), type(model).__name__]
    for name in names:
        if name in ARCHITECTURES:
            return name
    raise FailureLensError(f"Architecture {type(model).__name__} is not supported. Supported: "
                           f"{', '.join(supported_names())}. Choose a model of a supported family.")


def architecture_of(handle: Any) -> Architecture:
    """The record of a loaded model (handle.arch is checked against ARCHITECTURES when the model loads)."""
    return ARCHITECTURES[handle.arch]
