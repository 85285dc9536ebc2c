"""Independent reference for AttnLRP / CP-LRP token relevance on Llama-family decoders (tests only).

A hand-written float64 forward over `model.state_dict()` + `model.config` (no HF module forward is called), with
each LRP rule written as a value-preserving gradient trick, so relevance is plain Input×Gradient:

    R_t = sum_d e_td · ∂f/∂e_td,   f = logit[T-1, target] - logit[T-1, contrast]

Rules (Achtibat et al. 2024, "AttnLRP", ICML):
- RMSNorm: rsqrt(mean(x²)+eps) is a constant (identity rule on the normaliser); weight multiplies normally.
  This includes Qwen3's per-head q_norm / k_norm.
- SiLU (attnlrp): identity rule, gradient × f(x)/x.
- Products of two live tensors (Q·Kᵀ, A·V, act(gate)·up), attnlrp: uniform rule, half the gradient to each factor.
- Softmax, linear maps, residual adds, RoPE, the causal mask and scaling keep their ordinary gradient.
- cp-lrp (Ali et al. 2022): attention weights and the gate path act(gate(x)) are constants; v and up take the
  whole gradient. The network is then linear in the embeddings, so relevance sums to f on bias-free models.

Supported: llama, mistral, qwen2, qwen3 (GQA, q/k/v biases, q/k norms, tied embeddings, sliding windows,
default RoPE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")
EPS = 1e-10  # identity-rule stabiliser


@dataclass(frozen=True)
class _Rule:
    qk: float  # gradient share of q and of k in Q·Kᵀ
    av: float  # gradient share of A and of V in A·V
    mlp: float  # gradient share of act(gate) and of up in act(gate)·up
    act: str  # gate path: "plain" | "identity" (× f(x)/x) | "const"
    norm_const: bool  # detach the RMSNorm normaliser


_RULES = {
    None: _Rule(qk=1.0, av=1.0, mlp=1.0, act="plain", norm_const=False),
    "attnlrp": _Rule(qk=0.5, av=0.5, mlp=0.5, act="identity", norm_const=True),
    "cp-lrp": _Rule(qk=0.0, av=1.0, mlp=1.0, act="const", norm_const=True),
}


def _grad_scale(x: torch.Tensor, s: float) -> torch.Tensor:
    """Value x, gradient s·g (s=0: constant)."""
    return x if s == 1.0 else x * s + (x * (1.0 - s)).detach()


def _silu(x: torch.Tensor, rule: _Rule) -> torch.Tensor:
    y = F.silu(x)
    if rule.act == "plain":
        return y
    if rule.act == "const":
        return y.detach()
    ratio = (y / torch.where(x >= 0, x + EPS, x - EPS)).detach()
    return _grad_scale(y.detach() + (x - x.detach()) * ratio, rule.mlp)


def _rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float, rule: _Rule) -> torch.Tensor:
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * (r.detach() if rule.norm_const else r) * w


def _linear(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [H, T, hd]; rotate-half (non-interleaved) RoPE as in HF Llama."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _window(config, layer: int) -> int | None:
    if config.model_type == "mistral":
        return config.sliding_window
    types = getattr(config, "layer_types", None)
    return config.sliding_window if types and types[layer] == "sliding_attention" else None


def _forward(model, input_ids: torch.Tensor, rule: _Rule, last_only: bool):
    """Returns (embeddings [T, D] leaf, logits [T or 1, V]) in float64."""
    config = model.config
    if config.model_type not in SUPPORTED:
        raise NotImplementedError(f"reference supports {SUPPORTED}, not {config.model_type!r}")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise NotImplementedError(f"only default RoPE, got {rope}")
    sd = {k: v.detach().to(torch.float64) for k, v in model.state_dict().items()}
    n_heads, n_kv = config.num_attention_heads, config.num_key_value_heads
    hd = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    eps = config.rms_norm_eps
    input_ids = input_ids.reshape(-1)
    T = input_ids.shape[0]

    pos = torch.arange(T, dtype=torch.float64)
    inv_freq = 1.0 / rope["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angles = torch.cat([pos[:, None] * inv_freq] * 2, dim=-1)  # [T, hd]
    cos, sin = angles.cos(), angles.sin()
    q_idx, k_idx = pos[:, None], pos[None, :]

    emb = sd["model.embed_tokens.weight"][input_ids].clone().requires_grad_(True)  # [T, D]
    h = emb
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        x = _rmsnorm(h, sd[f"{p}.input_layernorm.weight"], eps, rule)
        q = _linear(sd, f"{p}.self_attn.q_proj", x).view(T, n_heads, hd)
        k = _linear(sd, f"{p}.self_attn.k_proj", x).view(T, n_kv, hd)
        v = _linear(sd, f"{p}.self_attn.v_proj", x).view(T, n_kv, hd)
        if f"{p}.self_attn.q_norm.weight" in sd:  # qwen3: per head, before RoPE
            q = _rmsnorm(q, sd[f"{p}.self_attn.q_norm.weight"], eps, rule)
            k = _rmsnorm(k, sd[f"{p}.self_attn.k_norm.weight"], eps, rule)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [H, T, hd]
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        k, v = (t.repeat_interleave(n_heads // n_kv, dim=0) for t in (k, v))

        scores = _grad_scale(q, rule.qk) @ _grad_scale(k, rule.qk).transpose(1, 2) * hd**-0.5  # [H, T, T]
        masked = k_idx > q_idx
        if (w := _window(config, i)) is not None:
            masked = masked | (k_idx <= q_idx - w)
        a = torch.softmax(scores.masked_fill(masked, float("-inf")), dim=-1)
        o = (_grad_scale(a, rule.av) @ _grad_scale(v, rule.av)).transpose(0, 1).reshape(T, n_heads * hd)
        h = h + _linear(sd, f"{p}.self_attn.o_proj", o)

        x = _rmsnorm(h, sd[f"{p}.post_attention_layernorm.weight"], eps, rule)
        gate = _silu(_linear(sd, f"{p}.mlp.gate_proj", x), rule)
        up = _grad_scale(_linear(sd, f"{p}.mlp.up_proj", x), rule.mlp)
        h = h + _linear(sd, f"{p}.mlp.down_proj", gate * up)

    h = _rmsnorm(h[-1:] if last_only else h, sd["model.norm.weight"], eps, rule)
    w_out = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])  # tied embeddings may omit lm_head
    return emb, h @ w_out.T


def reference_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Plain float64 logits [T, V] of the hand-written forward, for checking it against HF."""
    with torch.no_grad():
        return _forward(model, input_ids, _RULES[None], last_only=False)[1]


def reference_relevance(
    model, input_ids: torch.Tensor, target_id: int, contrast_id: int | None, rule: str = "attnlrp"
) -> torch.Tensor:
    """Per-token relevance [T] float64 of logit[T-1, target] (minus logit[T-1, contrast]) under `rule`."""
    if rule not in ("attnlrp", "cp-lrp"):
        raise ValueError(f"rule must be 'attnlrp' or 'cp-lrp', got {rule!r}")
    with torch.enable_grad():
        emb, logits = _forward(model, input_ids, _RULES[rule], last_only=True)
        objective = logits[0, target_id] - (logits[0, contrast_id] if contrast_id is not None else 0.0)
        (grad,) = torch.autograd.grad(objective, emb)
    return (emb * grad).sum(-1).detach()
