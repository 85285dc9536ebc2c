"""The zoo's word-level tokenizer: one readable token per word, digit and punctuation mark.

Digits are split one per token so carries in the math family are visible to the model (and in heatmaps).
Saved through `PreTrainedTokenizerFast` so `AutoTokenizer.from_pretrained(folder)` loads it offline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from engine.zoo.bench_gen import SPECIALS

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
_BASE = [PAD, BOS, EOS, UNK, *SPECIALS]


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Vocabulary = specials, digits, then every word seen in `texts` in sorted order (deterministic ids)."""
    pre = _pre_tokenizer()
    words: set[str] = set("0123456789")
    for text in texts:
        for chunk in text.split():
            if chunk not in SPECIALS:
                words.update(w for w, _ in pre.pre_tokenize_str(chunk))
    vocab = {t: i for i, t in enumerate(_BASE + sorted(words))}
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    tok.add_special_tokens(_BASE)  # matched before pre-tokenization, so "<q>" stays one token
    tok.post_processor = TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                            special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(SPECIALS),
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))
