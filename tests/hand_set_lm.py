"""Tiny tokenizer and hand-set Qwen3 models for tests (no network, built in a temp folder)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
QWEN_LIKE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def make_tokenizer(folder: Path, chat_template: str | None = QWEN_LIKE_TEMPLATE, merges: tuple[str, ...] = ()):
    """Byte-level tokenizer: one token per byte (256), optional merges of two characters ("ab" merges
    a+b), then 5 special tokens; saved to and reloaded from `folder`."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for m in merges:
        vocab[m] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[(m[0], m[1:]) for m in merges]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                  additional_special_tokens=SPECIALS[1:])
    if chat_template:
        tok.chat_template = chat_template
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tid(tok, ch: str) -> int:
    ids = tok(ch, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, ch
    return ids[0]


def bigram_model(tok, second: float = 0.5) -> Qwen3ForCausalLM:
    """A Qwen3 whose next-token logits depend only on the current token: after letter c the top-1 is the
    next letter (cyclic), the runner-up (logit * `second`) the letter after; after anything else, "a".

    All layers write zero into the residual stream; embeddings are one-hot, so the final RMSNorm gives
    about sqrt(hidden) * e_v and the top logit is TOP_LOGIT(model).
    """
    vocab = len(tok)
    hidden = vocab + (-vocab % 8)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=False,
                      max_position_embeddings=512)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, :vocab] = torch.eye(vocab)
        head = torch.zeros(vocab, hidden)
        letter_ids = [tid(tok, c) for c in LETTERS]
        for v in range(vocab):
            if v in letter_ids:
                i = letter_ids.index(v)
                head[letter_ids[(i + 1) % 26], v] = 1.0
                head[letter_ids[(i + 2) % 26], v] = second
            else:
                head[letter_ids[0], v] = 1.0
        model.lm_head.weight.copy_(head)
    return model


def TOP_LOGIT(model) -> float:
    """The top logit of `bigram_model`: RMSNorm of a one-hot vector is 1 / sqrt(1/hidden + eps)."""
    return 1.0 / math.sqrt(1.0 / model.config.hidden_size + model.config.rms_norm_eps)
