"""Tokenisation helpers: prompts with offsets, readable token strings, single-token choices, unknown words."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from .records import FailureLensError, TokenChoice


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    offsets: list[tuple[int, int]]  # char span of each token in the prompt ((0, 0) for added specials)
    special: list[bool]
    tokens: list[str]  # display strings


def display(tokenizer: Any, token_id: int) -> str:
    """A readable string for one token (decoded, so byte-level BPE shows real characters)."""
    text = tokenizer.decode([int(token_id)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return text if text != "" else str(tokenizer.convert_ids_to_tokens(int(token_id)))


def display_many(tokenizer: Any, ids: list[int]) -> list[str]:
    """`display` for many ids at once (one call into a fast tokenizer's Rust backend when there is one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return [display(tokenizer, i) for i in ids]
    texts = backend.decode_batch([[int(i)] for i in ids], skip_special_tokens=False)
    return [t if t != "" else display(tokenizer, i) for t, i in zip(texts, ids)]


def encode_prompt(tokenizer: Any, prompt: str, add_special_tokens: bool = True) -> EncodedPrompt:
    if not isinstance(prompt, str) or not prompt.strip():
        raise FailureLensError("The prompt is empty. Type a prompt or pick a failure case.")
    try:
        enc = tokenizer(prompt, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        offsets = [tuple(map(int, o)) for o in enc["offset_mapping"]]
    except NotImplementedError:  # slow tokenizers have no offsets
        enc = tokenizer(prompt, add_special_tokens=add_special_tokens)
        offsets = [(0, 0)] * len(enc["input_ids"])
    ids = [int(i) for i in enc["input_ids"]]
    if not ids:
        raise FailureLensError("The prompt produced no tokens. Type some text.")
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    special = [i in special_ids for i in ids]
    return EncodedPrompt(ids, offsets, special, display_many(tokenizer, ids))


def token_id_of(value: Any, bare: bool = False) -> Optional[int]:
    """The id written as "#123" (or "123" when `bare`), else None. ASCII digits only: "#²" passes
    str.isdigit but int() refuses it."""
    m = (re.fullmatch(r"#?([0-9]{1,12})" if bare else r"#([0-9]{1,12})", value.strip())
         if isinstance(value, str) else None)
    return int(m.group(1)) if m else None


def resolve_token(tokenizer: Any, value: Union[int, str], what: str) -> TokenChoice:
    """An id or a text that must be exactly one token; never silently pick a piece of several."""
    vocab = len(tokenizer)
    if isinstance(value, bool):
        raise FailureLensError(f"The {what} must be a token id or a token text, not {value!r}.")
    if isinstance(value, int) or token_id_of(value) is not None:
        tid = value if isinstance(value, int) else token_id_of(value)
        if not 0 <= tid < vocab:
            raise FailureLensError(f"The {what} token id {tid} is outside the vocabulary (0..{vocab - 1}).")
        return TokenChoice(tid, display(tokenizer, tid))
    if not isinstance(value, str) or value == "":
        raise FailureLensError(f"The {what} is empty. Pick a token from the top-k table or type one token.")
    ids = tokenizer(value, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if len(ids) == 1 and unk is not None and ids[0] == unk and value.strip() != tokenizer.unk_token:
        raise FailureLensError(
            f"The {what} {value!r} is not in this model's vocabulary: it would become {tokenizer.unk_token}, which "
            "explains nothing. Pick a candidate from the top-k table, or type a word the model knows."
        )
    if len(ids) != 1:
        pieces = " | ".join(repr(display(tokenizer, i)) for i in ids) or "(nothing)"
        raise FailureLensError(
            f"The {what} {value!r} is {len(ids)} tokens, not one: {pieces}. "
            "Pick a single token from the top-k table, or type one of these pieces (or '#<id>')."
        )
    return TokenChoice(int(ids[0]), display(tokenizer, ids[0]))


@dataclass(frozen=True)
class UnknownWords:
    """The words of a prompt that a tokenizer cannot spell and maps to its unknown token."""

    words: tuple[str, ...]  # distinct, as typed, in order of first appearance
    count: int  # occurrences (a word typed twice counts twice)
    unk_token: str


def unknown_words(tokenizer: Any, prompt: str) -> UnknownWords:
    """Which words of `prompt` become the unknown token (word-level vocabularies such as the zoo's).

    Byte-level tokenizers spell every text and never produce it: their answer is empty. Without character offsets
    (slow tokenizers) the words cannot be named; `count` still says how many there are.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    name = str(getattr(tokenizer, "unk_token", None) or "<unk>")
    if unk is None or not isinstance(prompt, str) or not prompt.strip():
        return UnknownWords((), 0, name)
    try:
        enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        spans = [tuple(o) for i, o in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk]
    except NotImplementedError:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return UnknownWords((), sum(i == unk for i in ids), name)
    words = [prompt[a:b] for a, b in spans if b > a and prompt[a:b] != name]
    return UnknownWords(tuple(dict.fromkeys(words)), len(words), name)


def vocabulary(tokenizer: Any) -> list[str]:
    """Every token text of the vocabulary, specials first then sorted (for showing a small word-level vocabulary)."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    words = [str(t) for t in tokenizer.get_vocab()]
    return sorted(w for w in words if w in special) + sorted(w for w in words if w not in special)
