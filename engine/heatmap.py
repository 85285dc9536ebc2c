"""Contrastive per-token heatmaps: `attribute(handle, prompt, ...) -> Attribution`."""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional

import torch

from .memory import check_memory
from .models import ModelHandle
from .objectives import Objective, needs_contrast
from .records import Attribution, FailureLensError, TokenChoice, TopToken
from .tokens import EncodedPrompt, display, display_many, encode_prompt, resolve_token
from .trace import relevance, run_trace

log = logging.getLogger(__name__)


def top_tokens(tokenizer, logits: torch.Tensor, n: int) -> list[TopToken]:
    probs = torch.softmax(logits.float(), -1)
    values, ids = logits.topk(min(n, logits.shape[-1]))
    return [
        TopToken(r + 1, display(tokenizer, int(i)), int(i), float(v), float(probs[i]))
        for r, (v, i) in enumerate(zip(values.tolist(), ids.tolist()))
    ]


def _position(position: int, n: int) -> int:
    p = position + n if position < 0 else position
    if not 0 <= p < n:
        raise FailureLensError(f"Position {position} is outside the prompt ({n} tokens). Use -1 for the last token.")
    return p


def check_finite(name: str, values: torch.Tensor, handle: ModelHandle) -> None:
    if not torch.isfinite(values).all():
        raise FailureLensError(
            f"The {name} contains NaN or infinite values "
            f"(numeric overflow in {str(handle.dtype).replace('torch.', '')}). "
            "Reload the model in float32 or bfloat16 and try again."
        )


RUNNER_UP_NOTE = "No contrast given: using the runner-up token"  # the start of Picker's note (pages match it)


class Picker:
    """Chooses (target, contrast) once the logits are known: target defaults to the top-1 token; a
    required contrast defaults to the runner-up (noted in `warnings`); contrast == target is an error."""

    def __init__(self, tokenizer, objective: str, target: Optional[TokenChoice], contrast: Optional[TokenChoice],
                 warnings: list[str]):
        self.tokenizer, self.objective, self.warnings = tokenizer, objective, warnings
        self.target, self.contrast = target, contrast

    def __call__(self, logits: torch.Tensor) -> tuple[int, Optional[int]]:
        order = logits.topk(2).indices.tolist()
        if self.target is None:
            self.target = TokenChoice(order[0], display(self.tokenizer, order[0]))
        if self.contrast is None and needs_contrast(self.objective):
            runner_up = order[1] if order[0] == self.target.token_id else order[0]
            self.contrast = TokenChoice(runner_up, display(self.tokenizer, runner_up))
            self.warnings.append(f"{RUNNER_UP_NOTE} {self.contrast.text!r}.")
        if self.contrast is not None and self.contrast.token_id == self.target.token_id:
            raise FailureLensError(
                f"The contrast {self.contrast.text!r} is the same token as the target. Pick a different contrast token."
            )
        return self.target.token_id, self.contrast.token_id if self.contrast is not None else None


def _given_ids(handle: ModelHandle, token_ids: list[int], offsets: Optional[list]) -> EncodedPrompt:
    vocab = len(handle.tokenizer)
    if not token_ids:
        raise FailureLensError("The prompt is empty. Type a prompt or pick a failure case.")
    bad = [i for i in token_ids if not 0 <= int(i) < vocab]
    if bad:
        raise FailureLensError(f"Token id {bad[0]} is outside the vocabulary (0..{vocab - 1}).")
    special_ids = set(getattr(handle.tokenizer, "all_special_ids", []) or [])
    ids = [int(i) for i in token_ids]
    offs = [tuple(o) for o in offsets] if offsets is not None else [(0, 0)] * len(ids)
    return EncodedPrompt(ids, offs, [i in special_ids for i in ids], display_many(handle.tokenizer, ids))


def prepare(handle: ModelHandle, prompt: str, objective: Objective, token_ids: Optional[list[int]] = None,
            offsets: Optional[list] = None):
    """Validated request: (encoded prompt, ids up to position, position, objective name, picker, warnings).

    `token_ids` (with optional `offsets` into `prompt`) skips tokenisation, e.g. to attribute exactly the
    ids a failure was found on. The objective validated itself when it was built.
    """
    name, target, contrast, position = objective.name, objective.target, objective.contrast, objective.position
    if token_ids is not None:
        enc = _given_ids(handle, token_ids, offsets)
    else:
        enc = encode_prompt(handle.tokenizer, prompt)
    if len(enc.ids) > handle.context_length:
        raise FailureLensError(
            f"The prompt has {len(enc.ids)} tokens, more than the model's context of {handle.context_length}. "
            "Shorten the prompt or pick a model with a longer context."
        )
    pos = _position(position, len(enc.ids))
    tgt = resolve_token(handle.tokenizer, target, "target") if target is not None else None
    con = resolve_token(handle.tokenizer, contrast, "contrast") if contrast is not None else None
    warnings: list[str] = []
    return enc, enc.ids[: pos + 1], pos, name, Picker(handle.tokenizer, name, tgt, con, warnings), warnings


def attribute(
    handle: ModelHandle,
    prompt: str,
    objective: Objective = Objective(),
    top_k: int = 10,
    token_ids: Optional[list[int]] = None,
    offsets: Optional[list] = None,
    recompute: Optional[bool] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> Attribution:
    """Relevance of every prompt token for the objective at its `position` (default: the last token).

    The objective's target defaults to the model's top-1 token; for logit_diff/by_ref_token the contrast defaults to
    the runner-up (noted in `warnings`). Positive relevance supports the target, negative the contrast.
    `recompute`: None lets the memory guard choose (per-layer recompute only when kept activations do not
    fit); True / False force a path. `Attribution.path` says which one ran. `progress(phase, done, total)`: told
    each layer's end in the forward and the backward (engine.trace.run_trace).
    """
    enc, ids, pos, name, choice, warnings = prepare(handle, prompt, objective, token_ids, offsets)
    mode, strategy, k = objective.mode, objective.strategy, objective.k
    plan = check_memory(handle, len(ids), "heatmap", recompute=recompute)
    if plan.note:
        warnings.append(plan.note)
    with handle.lock:
        trace, _, _ = run_trace(handle, ids, choice, name, k, recompute=plan.recompute, keep_grads=False,
                                progress=progress)
    tgt, con = choice.target, choice.contrast
    rel = relevance(trace.emb, trace.emb_grad)
    check_finite("relevance", rel, handle)
    layer_rel = torch.stack([rel] + trace.post_rel)
    check_finite("layer relevance", layer_rel, handle)
    logits = trace.logits
    diff = float(logits[tgt.token_id] - logits[con.token_id]) if con is not None else None
    total = float(rel.sum())
    conservation = total / trace.objective if abs(trace.objective) > 1e-12 else math.nan
    return Attribution(
        model=handle.key,
        tokens=enc.tokens[: pos + 1],
        token_ids=ids,
        relevance=rel.tolist(),
        layer_relevance=layer_rel.tolist(),
        objective=trace.objective,
        mode=mode,
        strategy=strategy if mode == "logit_diff" else None,
        k=int(k),
        position=pos,
        target=tgt,
        contrast=con,
        logit_diff=diff,
        topk=top_tokens(handle.tokenizer, logits, top_k),
        conservation=conservation,
        rule=handle.rule,
        special_mask=enc.special[: pos + 1],
        offsets=enc.offsets[: pos + 1],
        warnings=warnings,
        path=trace.path,
    )
