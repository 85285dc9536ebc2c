"""Tiny random causal LMs, one per supported architecture, built from configs (no network).

`build_tiny(arch, root, **config_overrides)` writes a folder (safetensors + a fast byte-level BPE tokenizer that
adds no BOS) to `root/arch`, loadable offline by AutoModelForCausalLM / AutoTokenizer. All models: fp32, 2 layers,
hidden 64, 4 heads (2 KV heads where GQA exists), head_dim 16, intermediate 128, vocab 500, 512 positions, weights
re-drawn from a fixed seed with O(1) activations (logit std ~1). Extras: qwen2 q/k/v biases, qwen3 q/k norms,
mistral (all layers) and gemma3/olmo3 (layer 0) sliding window 16, gpt_neox parallel residual with
partial_rotary_factor 0.5, gpt2 dropout left at 0.1 (the code under test must neutralise it), phi3 fused qkv/gate_up.

Architecture table for patch maps (transformers 5.23; classes as instantiated). Every attention class below calls
`ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)`, where the eager
fallback is a module-level function in its modeling_<arch>.py; activations come from ACT2FN (transformers.activations).

arch     attention (projections)                         MLP (members; activation attr -> class)          norms
qwen3    Qwen3Attention (q/k/v_proj, o_proj; q_norm,      Qwen3MLP (gate_proj up_proj down_proj;          Qwen3RMSNorm
         k_norm = RMSNorm over head_dim, before RoPE)     act_fn -> SiLUActivation)
qwen2    Qwen2Attention (q/k/v_proj with bias, o_proj)    Qwen2MLP (same; act_fn -> SiLUActivation)       Qwen2RMSNorm
llama    LlamaAttention (q/k/v_proj, o_proj)              LlamaMLP (same; act_fn -> SiLUActivation)       LlamaRMSNorm
mistral  MistralAttention (q/k/v_proj, o_proj)            MistralMLP (same; act_fn -> SiLUActivation)     MistralRMSNorm
gemma3   Gemma3Attention (q/k/v_proj, o_proj; q_norm,     Gemma3MLP (same; act_fn -> GELUTanh)            Gemma3RMSNorm:
         k_norm per head; scaling query_pre_attn_scalar**-0.5)                                             x·r·(1+w)
olmo2    Olmo2Attention (q/k/v_proj, o_proj; q_norm,      Olmo2MLP (same; act_fn -> SiLUActivation)       Olmo2RMSNorm
         k_norm over ALL heads [H·hd], before reshape)
olmo3    Olmo3Attention (as olmo2)                        Olmo3MLP (same; act_fn -> SiLUActivation)       Olmo3RMSNorm
gpt2     GPT2Attention (c_attn fused qkv Conv1D, c_proj)  GPT2MLP (c_fc c_proj Conv1D;                    nn.LayerNorm
                                                          act -> NewGELUActivation)
gpt_neox GPTNeoXAttention (query_key_value, dense)        GPTNeoXMLP (dense_h_to_4h dense_4h_to_h;         nn.LayerNorm
                                                          act -> GELUActivation)
phi3     Phi3Attention (qkv_proj fused, o_proj)           Phi3MLP (gate_up_proj down_proj;                Phi3RMSNorm
                                                          activation_fn -> SiLUActivation)

Dropout: attention-probability dropout is inside each eager_attention_forward (nn.functional.dropout with
training=module.training; the attention passes p=0 unless training; GPT-2 passes attn_dropout.p). nn.Dropout modules:
gpt2 transformer.drop, attn.attn_dropout (used only by the reorder_and_upcast_attn path), attn.resid_dropout,
mlp.dropout (all p=0.1 here); gpt_neox gpt_neox.emb_dropout, layers.i.post_attention_dropout, .post_mlp_dropout;
phi3 layers.i.resid_attn_dropout, .resid_mlp_dropout. The Llama-family models have none.

Layouts and quirks:
- Decoder layers: <Arch>DecoderLayer (GPT2Block, GPTNeoXLayer). Llama family: pre-norm input_layernorm /
  post_attention_layernorm. Gemma3: four norms per layer (input, post_attention, pre_feedforward, post_feedforward).
  Olmo2/3: no input norm; post_attention_layernorm / post_feedforward_layernorm on the sublayer output, before
  the residual add. GPT-NeoX use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)).
- Fused projections: GPT-2 Conv1D weight is [in, out], c_attn output [q | k | v]. GPT-NeoX query_key_value output is
  viewed [T, H, 3·hd] then chunked, i.e. per-head interleaved. Phi3 qkv_proj is [q (H·hd) | k | v (Hkv·hd each)];
  gate_up_proj chunk(2) gives gate first, then up * act(gate).
- No GQA in gpt2 / gpt_neox (these two have num_attention_heads KV heads).
- Gemma3 embeddings: Gemma3TextScaledWordEmbedding multiplies by hidden_size**0.5 (buffer embed_scale); optional
  attn/final logit softcapping (None here). Gemma3 and GPT-2 tie lm_head to the input embedding.
- RoPE: config.rope_parameters = {"rope_type", "rope_theta", ...}; gemma3/olmo3 key it by layer type
  ("full_attention"/"sliding_attention") and call rotary_emb(x, pos, layer_type). GPT-NeoX rotary_pct is
  rope_parameters["partial_rotary_factor"] (only the first rotary_ndims of each head rotate).
- Sliding window: the mask keeps kv_idx > q_idx - sliding_window. Mistral applies config.sliding_window to every
  layer; gemma3/olmo3 follow config.layer_types (here [sliding, full], window 16); qwen2/qwen3 only with
  use_sliding_window=True.
- AutoTokenizer forces Qwen2Tokenizer for model_type "qwen2" (it rebuilds a byte-level BPE from vocab + merges), so
  the tokenizer here is a byte-level BPE with Qwen2's pre-tokenizer: every arch loads the same tokenization.
"""

from __future__ import annotations

import math
import pathlib

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast
from transformers.pytorch_utils import Conv1D

ARCHS: tuple[str, ...] = ("qwen3", "qwen2", "llama", "mistral", "gemma3", "olmo2", "olmo3", "gpt2", "gpt_neox", "phi3")

SEED = 0
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
_WORDS = """
the of and to in is was for on that with as by at from it his her their its an be are were this which or have
has had not but they he she we you i me my our your them him who what when where why how all any some one two three
four five six seven eight nine ten first second last new old big small good bad great little long short high low
man woman child people city country world year day night time place house home school water fire earth air sun moon
star sky sea river mountain tree forest flower animal dog cat bird fish horse cow king queen prince war peace
capital france paris germany berlin italy rome spain madrid england london japan tokyo china beijing russia moscow
europe asia africa america north south east west red blue green yellow black white brown color name word number
book story song music art game food bread apple milk coffee tea car road train ship plane door window table chair
bed room wall floor hand head eye face heart mind body life death love friend family mother father son daughter
brother sister doctor teacher student worker police army president government law money price market bank job
work play run walk go come see look find give take make know think say tell ask answer call write read speak
eat drink sleep live die open close start stop begin end yes no true false up down left right over under before
after again very more most less much many few other same such only also just then than so because if while
until about into through between during without against above below here there now today tomorrow yesterday
always never often sometimes question problem reason result fact idea example part side point case group area
system program language model token input output layer attention value key query
""".split()
# Qwen2's pre-tokenizer regex: with it (and NFC + byte-level BPE) the tokenizer.json is one that the Qwen2Tokenizer
# class, which AutoTokenizer forces for model_type "qwen2", rebuilds identically from vocab + merges.
_PRETOKENIZE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
VOCAB_SIZE = 500


def _tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 / Qwen style, no <unk> in practice) trained on the word list; adds no BOS."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PRETOKENIZE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    # frequent words repeated so they end up as whole tokens
    corpus = [" ".join(_WORDS)] * 3 + [" " + " ".join(_WORDS[:120])] * 5
    corpus.append(" ".join(w.capitalize() for w in _WORDS[:60]))
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
    )


def _config(arch: str, vocab: int, ids: dict[str, int], **overrides):
    """The tiny config of one architecture; `overrides` are passed to the config class last."""
    common = dict(
        vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=512, **ids,
    )
    kw: dict = {
        "qwen3": dict(common, head_dim=16),
        "qwen2": dict(common),
        "llama": dict(common),
        "mistral": dict(common, sliding_window=16),
        "gemma3": dict(common, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                       layer_types=["sliding_attention", "full_attention"]),
        "olmo2": dict(common),
        "olmo3": dict(common, sliding_window=16, layer_types=["sliding_attention", "full_attention"]),
        "gpt2": dict(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_inner=128, n_positions=512, **ids),
        "gpt_neox": dict(
            vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=512, use_parallel_residual=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}, **ids,
        ),
        "phi3": dict(common, original_max_position_embeddings=512),
    }[arch]
    kw.update(overrides)
    if arch == "gemma3":
        return Gemma3TextConfig(**kw)
    return AutoConfig.for_model(arch, **kw)


@torch.no_grad()
def _redraw(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Weights with O(1) activations: matrices ~ N(0, 1/fan_in); every 1-D parameter (norm weights, biases) gets
    +0.1·N(0,1), so ones/zeros-initialised norms (Gemma's 1+w, OLMo's post-norms) are not trivial."""
    seen: set[int] = set()
    for _, module in sorted(model.named_modules(), key=lambda kv: kv[0]):
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.nn.Parameter) or w.ndim != 2 or id(w) in seen:
            continue
        seen.add(id(w))
        fan_in = w.shape[0] if isinstance(module, Conv1D) else w.shape[1]
        w.copy_(torch.randn(w.shape, generator=gen) / math.sqrt(fan_in))
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.ndim == 1:
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def build_tiny(arch: str, root: pathlib.Path, **overrides) -> pathlib.Path:
    """Build, save and return `root/arch`: a tiny random `arch` model + tokenizer loadable offline."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; supported: {', '.join(ARCHS)}")
    out = pathlib.Path(root) / arch
    tokenizer = _tokenizer()
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = _config(arch, len(tokenizer), ids, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Gemma3ForCausalLM(config) if arch == "gemma3" else AutoModelForCausalLM.from_config(config)
        _redraw(model, torch.Generator().manual_seed(SEED))
    model.to(torch.float32).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
