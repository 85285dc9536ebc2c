"""Finding the failure token: where a model leaves the reference (or where a person says it went wrong).

Tokenisation at the prompt/continuation boundary: the prompt is tokenised on its own (with the tokenizer's
special tokens, e.g. BOS, unless the text already starts with the BOS string, as chat templates often
write it), the continuation separately without special tokens, and the two id lists are concatenated.
So a token never straddles the boundary, and the model is scored exactly as in generation, where its
tokens are appended after the prompt's tokens. (Tokenising the joined text could merge across the
boundary, e.g. "Answer:" + " 4" -> ": 4", and then no position would correspond to the first answer token.)

Teacher forcing: one forward pass over prompt + reference ids; the logits at position p-1 predict token p.
The failure is the first reference token whose logit is strictly below the maximum (a tie with the top-1
counts as correct): target = the model's top-1 token there, contrast = the reference token,
Δℓ = ℓ(target) − ℓ(contrast) ≥ 0, and the reference rank is 1 + the number of tokens with a larger logit.

A person-chosen failure in the model's own completion goes through `failure_at` (from the dashboard, or
from a JSONL failure-points file read by `read_failure_points`). Filters: `keep`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from engine.records import FailureLensError, TokenChoice, TopToken
from engine.tokens import display


@dataclass(frozen=True)
class Encoded:
    """ids of prompt + continuation; offsets are char spans in the joined text prompt + continuation."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    special_mask: list[bool]
    n_prompt: int  # tokens of the prompt
    prompt_chars: int  # characters of the prompt (where the continuation starts in the joined text)


@dataclass(frozen=True)
class Divergence:
    """A failure point. position: index of the failing token in prompt + continuation ids; the prediction
    comes from the logits at position - 1, and `prefix_ids` (= ids[:position]) is what the model read."""

    position: int
    ref_index: int  # index of the failing token within the continuation's tokens
    prefix: str  # continuation text before the failing token (the Answer segment)
    prefix_ids: list[int]
    offsets: list[tuple[int, int]]  # [len(prefix_ids)] char spans in prompt + prefix (for segments)
    special_mask: list[bool]  # [len(prefix_ids)] BOS / special tokens
    n_prompt_tokens: int
    target: TokenChoice  # what the model prefers (wrong)
    contrast: TokenChoice  # what it should have preferred
    logit_diff: float  # ℓ(target) − ℓ(contrast)
    ref_rank: int  # 1-based rank of the contrast token among all logits
    target_rank: int = 1  # 1 for a teacher-forced failure; may be > 1 for a person-chosen one
    topk: list[TopToken] = field(default_factory=list)
    source: str = "reference"  # "reference" (teacher forcing) | "person" | "pinned" (pinned_failure)


def _encode(tokenizer: Any, text: str, special: bool) -> tuple[list[int], Optional[list[tuple[int, int]]]]:
    try:
        enc = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, KeyError, ValueError):  # slow tokenizers have no offsets
        return list(tokenizer(text, add_special_tokens=special)["input_ids"]), None


def encode_pair(tokenizer: Any, prompt: str, continuation: str = "") -> Encoded:
    """Tokenise prompt and continuation separately and join them (see the module docstring)."""
    bos = getattr(tokenizer, "bos_token", None)
    p_ids, p_off = _encode(tokenizer, prompt, special=not (bos and prompt.startswith(bos)))
    c_ids, c_off = _encode(tokenizer, continuation, special=False) if continuation else ([], [])
    if p_off is None or c_off is None:
        raise FailureLensError("this tokenizer gives no character offsets; load the model's fast tokenizer "
                               "(tokenizer.json) so tokens can be mapped to text.")
    shift = len(prompt)
    offsets = list(p_off) + [(s + shift, e + shift) for s, e in c_off]
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    mask = [i in specials or e <= s for i, (s, e) in zip(p_ids + c_ids, offsets)]
    return Encoded(p_ids + c_ids, offsets, mask, len(p_ids), shift)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def _logits(model: Any, ids: Sequence[int], keep: int) -> torch.Tensor:
    """[keep, vocab] float32 logits of the last `keep` positions of one sequence (the LM head runs on
    those positions only, so a long context does not cost a [tokens, vocab] matrix)."""
    batch = torch.tensor([list(ids)], device=_device(model))
    try:
        logits = model(input_ids=batch, logits_to_keep=keep).logits
    except TypeError:  # models without logits_to_keep
        logits = model(input_ids=batch).logits
    return logits[0, -keep:].float()


def _topk(tokenizer: Any, row: torch.Tensor, k: int) -> list[TopToken]:
    probs = torch.softmax(row, -1)
    values, ids = row.topk(min(k, row.numel()))
    return [TopToken(r + 1, display(tokenizer, int(i)), int(i), float(v), float(probs[i]))
            for r, (v, i) in enumerate(zip(values, ids))]


def _choice(tokenizer: Any, token_id: int) -> TokenChoice:
    return TokenChoice(int(token_id), display(tokenizer, token_id))


def _rank(row: torch.Tensor, token_id: int) -> int:
    return 1 + int((row > row[token_id]).sum())


def _divergence(tokenizer: Any, enc: Encoded, continuation: str, row: torch.Tensor, index: int,
                target_id: int, contrast_id: int, top_k: int, source: str) -> Divergence:
    pos = enc.n_prompt + index
    return Divergence(
        position=pos, ref_index=index,
        prefix=continuation[: max(0, enc.offsets[pos][0] - enc.prompt_chars)],
        prefix_ids=enc.ids[:pos], offsets=enc.offsets[:pos], special_mask=enc.special_mask[:pos],
        n_prompt_tokens=enc.n_prompt,
        target=_choice(tokenizer, target_id), contrast=_choice(tokenizer, contrast_id),
        logit_diff=float(row[target_id] - row[contrast_id]), ref_rank=_rank(row, contrast_id),
        target_rank=_rank(row, target_id), topk=_topk(tokenizer, row, top_k), source=source,
    )


def find_first_divergence(model: Any, tokenizer: Any, prompt: str, reference: str, top_k: int = 10,
                          context: Optional[int] = None) -> Optional[Divergence]:
    """The first reference token the model does not rank first, or None if it ranks every one first.

    context: the model's context length; reference tokens past it are not read (the search stops there), and
    a prompt that fills it alone is an error (a model would fail on positions it has no embedding for)."""
    if not reference:
        raise FailureLensError("the case has no reference continuation; add references to the benchmark "
                               "or choose the failure position by hand (failure_at).")
    enc = encode_pair(tokenizer, prompt, reference)
    if enc.n_prompt == 0:
        raise FailureLensError("the prompt is empty and the tokenizer adds no BOS, so nothing predicts the "
                               "first reference token; give a non-empty prompt.")
    if context is not None and enc.n_prompt >= context:
        raise FailureLensError(f"the prompt has {enc.n_prompt} tokens, and the model's context holds {context}: no "
                               "room for an answer. Shorten the case, or pick a model with a longer context.")
    n_ref = len(enc.ids) - enc.n_prompt if context is None else min(len(enc.ids), context) - enc.n_prompt
    # [reference tokens, vocab]: row i predicts token i
    logits = _logits(model, enc.ids[:enc.n_prompt + n_ref], n_ref + 1)[:-1]
    ref = torch.tensor(enc.ids[enc.n_prompt:enc.n_prompt + n_ref], device=logits.device)
    wrong = (logits.gather(1, ref[:, None])[:, 0] < logits.max(-1).values).nonzero()
    if len(wrong) == 0:
        return None
    i = int(wrong[0, 0])
    row = logits[i]
    return _divergence(tokenizer, enc, reference, row, i, int(row.argmax()), int(ref[i]), top_k, "reference")


def pinned_failure(model: Any, tokenizer: Any, prompt: str, prefix: str, target: str, contrast: str,
                   top_k: int = 10, context: Optional[int] = None) -> Divergence:
    """A failure whose token pair is given as text (another model's failure on the same case): the model reads
    prompt + prefix and Δℓ = ℓ(target) − ℓ(contrast) there, which may be negative (this model is right).

    The target and contrast texts are tokenised alone, first token used (the rule of engine.compare.deltas, where
    a longer text gets a note); a text that gives no token, or a pair sharing its first token, is an error."""
    from engine.compare.deltas import first_token

    enc = encode_pair(tokenizer, prompt, prefix)
    if enc.n_prompt == 0:
        raise FailureLensError("the prompt is empty and the tokenizer adds no BOS; give a non-empty prompt.")
    if context is not None and len(enc.ids) >= context:
        raise FailureLensError(f"the prompt and answer prefix have {len(enc.ids)} tokens, and the model's context "
                               f"holds {context}; pick a model with a longer context.")
    tgt, _ = first_token(tokenizer, target, "target")
    con, _ = first_token(tokenizer, contrast, "contrast")
    if tgt is None or con is None or tgt.token_id == con.token_id:
        raise FailureLensError(f"the token pair {target!r} / {contrast!r} cannot be scored in this tokenizer "
                               "(no token, or the same first token); this case is left out for this model.")
    row = _logits(model, enc.ids, 1)[-1]
    pos = len(enc.ids)
    return Divergence(
        position=pos, ref_index=pos - enc.n_prompt, prefix=prefix, prefix_ids=list(enc.ids),
        offsets=list(enc.offsets), special_mask=list(enc.special_mask), n_prompt_tokens=enc.n_prompt,
        target=_choice(tokenizer, tgt.token_id), contrast=_choice(tokenizer, con.token_id),
        logit_diff=float(row[tgt.token_id] - row[con.token_id]), ref_rank=_rank(row, con.token_id),
        target_rank=_rank(row, tgt.token_id), topk=_topk(tokenizer, row, top_k), source="pinned",
    )


def failure_at(model: Any, tokenizer: Any, prompt: str, completion: str, *, char: Optional[int] = None,
               token: Optional[int] = None, contrast: int | str, top_k: int = 10) -> Divergence:
    """A failure chosen by a person in the model's own completion.

    char / token (exactly one): the failing token is the completion token covering character `char`, or
    the completion token with index `token`. The model's own token there is the target.
    contrast: a token id, or a string tokenised alone without special tokens whose first token is used
    (include a leading space when the word follows a space).
    """
    if (char is None) == (token is None):
        raise FailureLensError("give the failure position either as a character index or as a token index, not both.")
    enc = encode_pair(tokenizer, prompt, completion)
    n_c = len(enc.ids) - enc.n_prompt
    if char is not None:
        at = char + len(prompt)
        hits = [i for i in range(n_c) if enc.offsets[enc.n_prompt + i][1] > at]
        if not 0 <= char < len(completion) or not hits:
            raise FailureLensError(f"character {char} is outside the completion ({len(completion)} characters).")
        token = hits[0]
    if not 0 <= token < n_c:
        raise FailureLensError(f"token {token} is outside the completion ({n_c} tokens).")
    if enc.n_prompt == 0:
        raise FailureLensError("the prompt is empty and the tokenizer adds no BOS; give a non-empty prompt.")
    if isinstance(contrast, str):
        ids = tokenizer(contrast, add_special_tokens=False)["input_ids"]
        if not ids:
            raise FailureLensError("the contrast string is empty after tokenisation; give a token or its id.")
        contrast = ids[0]
    pos = enc.n_prompt + token
    row = _logits(model, enc.ids[:pos], 1)[-1]
    if not 0 <= contrast < row.numel():
        raise FailureLensError(f"contrast id {contrast} is outside the vocabulary (size {row.numel()}).")
    return _divergence(tokenizer, enc, completion, row, token, enc.ids[pos], contrast, top_k, "person")


@dataclass(frozen=True)
class FailurePoint:
    """A person's choice of failure in a model's own completion (one line of a failure-points file)."""

    id: str
    prompt: str
    completion: str
    contrast: int | str
    char: Optional[int] = None
    token: Optional[int] = None
    model: Optional[str] = None  # the model label the completion came from, if given


def read_failure_points(path: str | Path) -> list[FailurePoint]:
    """JSONL, one object per line: {id, prompt, completion, contrast, char | token[, model]}.
    Feed each to
    `failure_at(model, tokenizer, p.prompt, p.completion, char=p.char, token=p.token, contrast=p.contrast)`."""
    from engine.cases.benchmarks import read_jsonl

    points = []
    allowed = {f.name for f in fields(FailurePoint)}
    for n, rec in read_jsonl(Path(path)):
        missing = {"id", "prompt", "completion", "contrast"} - set(rec)
        extra = set(rec) - allowed
        if missing or extra or ("char" in rec) == ("token" in rec):
            raise FailureLensError(
                f"{path} line {n}: a failure point needs id, prompt, completion, contrast and exactly one of char "
                f"or token (missing: {sorted(missing) or '-'}, unknown: {sorted(extra) or '-'}).")
        points.append(FailurePoint(**{**rec, "id": str(rec["id"])}))
    return points


def keep(div: Optional[Divergence], min_logit_diff: Optional[float] = None, max_ref_rank: Optional[int] = None) -> bool:
    """Filter: a failure exists, Δℓ > min_logit_diff (strictly), reference rank <= max_ref_rank."""
    if div is None:
        return False
    if min_logit_diff is not None and not div.logit_diff > min_logit_diff:
        return False
    return max_ref_rank is None or div.ref_rank <= max_ref_rank
