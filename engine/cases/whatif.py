"""What if? Edit a prompt's tokens and see the answer change: before -> after in numbers and one sentence.

An edit names one token position of the prompt the heatmap was computed on:
- remove:  the token becomes the neutral replacement of the causal checks (engine.cases.checks.replacement_id,
           "neutral": unk, else pad, else a single space), so length and positions stay as they were;
- replace: the token becomes one vocabulary token, given as a word and checked like every other token input
           (engine.tokens.resolve_token: a word of several tokens or an unknown word is refused with the same
           message as the target / contrast boxes).
Edits stack in order (a later edit of the same position wins) and travel as short text specs: "rm:5",
"rp:5=word" (`Edit.spec` / `Edit.parse`), in links and case files.
- text:    the prompt's characters [start, end) become a new text ("tx:4-9=new text"; `text_edit` finds the one
           changed span between the prompt and its edited version). The edited prompt is tokenized anew, so its
           tokens need not line up with the original's: a text edit stands alone (no token edits with it), and
           `what_if_text` runs both prompts whole.

The numbers (top-1, p(target), p(contrast), Δℓ) of both prompts come from one batch of two rows: the unchanged
prompt's forward is cached (engine.cases.checks.PrefixCache) and the edited row runs only from its first edited
position on. `edited_attribution` adds the heatmap of the edited prompt (same target, contrast and objective).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from engine.cases.checks import replacement_id
from engine.cases.rows import chunk_rows, last_logits
from engine.objectives import Objective
from engine.records import Attribution, FailureLensError
from engine.tokens import display, resolve_token

KINDS = {"rm": "remove", "rp": "replace", "tx": "text"}
MAX_EDITS = 64  # a stack longer than this is not a "what if" any more; also bounds links and case files
MAX_WORD = 200  # characters of a replacement word
MAX_TEXT_EDIT = 4000  # characters of a text edit's new text
ALONE = "A text edit stands alone: undo the token edits first, or clear them, then edit the text."


@dataclass(frozen=True)
class Edit:
    kind: str  # "remove" | "replace" | "text"
    position: int  # token index in the prompt the heatmap was computed on (text: the first character)
    word: str = ""  # the replacement word ("replace"), the new text ("text")
    end: int = 0  # text: the character after the replaced ones

    def spec(self) -> str:
        if self.kind == "text":
            return f"tx:{self.position}-{self.end}={self.word}"
        return f"rm:{self.position}" if self.kind == "remove" else f"rp:{self.position}={self.word}"

    @classmethod
    def parse(cls, spec: Any) -> "Edit":
        """'rm:5', 'rp:5=word' or 'tx:4-9=text'; anything else is a FailureLensError that shows the forms."""
        how = "write 'rm:<token position>', 'rp:<token position>=<word>' or 'tx:<start>-<end>=<text>'"
        if not isinstance(spec, str) or len(spec) > MAX_TEXT_EDIT + 32:
            raise FailureLensError(f"The edit {str(spec)[:40]!r} is not an edit; {how}.")
        head, _, word = spec.partition("=")
        kind, _, pos = head.partition(":")
        if kind == "tx":
            a, _, b = pos.partition("-")
            if not all(x.isascii() and x.isdigit() and len(x) <= 8 for x in (a, b)) or int(a) > int(b) \
                    or "=" not in spec or len(word) > MAX_TEXT_EDIT:
                raise FailureLensError(f"The edit {spec[:40]!r} is not an edit; {how}.")
            return cls("text", int(a), word, int(b))
        if len(spec) > MAX_WORD + 16:
            raise FailureLensError(f"The edit {spec[:40]!r} is not an edit; {how}.")
        if kind not in KINDS or not pos.isascii() or not pos.isdigit() or len(pos) > 7:
            raise FailureLensError(f"The edit {spec[:40]!r} is not an edit; {how}.")
        if (kind == "rp") != bool(word) or (kind == "rm" and "=" in spec):
            raise FailureLensError(f"The edit {spec[:40]!r} is not an edit; {how}.")
        return cls(KINDS[kind], int(pos), word)


def remove(position: int) -> Edit:
    return Edit("remove", int(position))


def replace(position: int, word: str) -> Edit:
    if not isinstance(word, str) or not word or len(word) > MAX_WORD:
        raise FailureLensError(f"The replacement word must be 1..{MAX_WORD} characters; type one word.")
    return Edit("replace", int(position), word)


@dataclass(frozen=True)
class Side:
    """The model's answer on one prompt."""

    top1: str
    top1_id: int
    p_target: float
    p_contrast: float
    logit_diff: float  # ℓ(target) − ℓ(contrast)


@dataclass(frozen=True)
class WhatIf:
    """Before -> after of a stack of edits (typed, JSON-able through `to_dict`)."""

    edits: tuple[str, ...]  # Edit.spec of each edit, in order
    before: Side
    after: Side
    target: str
    contrast: str
    token_ids: tuple[int, ...]  # [tokens] the edited prompt
    tokens: tuple[str, ...]  # [tokens] display strings of the edited prompt
    changed: tuple[int, ...]  # positions whose token differs from the original
    first_changed: int  # the edited row ran from here on the cached prefix (len(tokens): nothing changed)
    prefix_reused: bool
    sentence: str

    @property
    def flipped(self) -> bool:
        return self.after.top1_id != self.before.top1_id

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["flipped"] = self.flipped
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def positions_of(tokens: Sequence[str], special: Sequence[bool], word: str) -> list[int]:
    """Positions of the ordinary tokens whose text (spaces stripped) is `word`; refused when there is none."""
    want = word.strip()
    found = [i for i, t in enumerate(tokens) if not special[i] and t.strip() == want and want]
    if not found:
        some = ", ".join(repr(t.strip()) for t, s in zip(tokens, special) if not s and t.strip())
        raise FailureLensError(f"No token {word!r} in this prompt; its tokens are: {some[:300]}. "
                               "Name one of them (spaces are ignored).")
    return found


def apply_edits(tokenizer: Any, token_ids: Sequence[int], special: Sequence[bool], edits: Sequence[Edit]
                ) -> list[int]:
    """The token ids after the edits (same length). Special tokens (BOS, template tokens) cannot be edited."""
    if len(edits) > MAX_EDITS:
        raise FailureLensError(f"{len(edits)} edits are more than the limit of {MAX_EDITS}; undo some.")
    ids = [int(i) for i in token_ids]
    neutral: Optional[int] = None
    if any(e.kind == "text" for e in edits):
        raise FailureLensError(ALONE if len(edits) > 1 else "A text edit changes the prompt's text, not its tokens: "
                               "it is computed with the prompt (engine.cases.whatif.what_if_text).")
    for e in edits:
        if not 0 <= e.position < len(ids):
            raise FailureLensError(f"The edit {e.spec()!r} names token {e.position}, but the prompt has {len(ids)} "
                                   "tokens; it belongs to another prompt. Undo it or pick a token of this prompt.")
        if special[e.position]:
            raise FailureLensError(f"Token {e.position} ({display(tokenizer, ids[e.position])!r}) is a special "
                                   "token (BOS or template); only ordinary tokens can be removed or replaced.")
        if e.kind == "remove":
            neutral = replacement_id(tokenizer, "neutral") if neutral is None else neutral
            ids[e.position] = neutral
        else:
            ids[e.position] = resolve_token(tokenizer, e.word, "replacement").token_id
    return ids


def _side(tokenizer: Any, logits: torch.Tensor, target_id: int, contrast_id: int) -> Side:
    p = torch.softmax(logits.float(), -1)
    top = int(logits.argmax())
    return Side(display(tokenizer, top), top, float(p[target_id]), float(p[contrast_id]),
                float(logits[target_id] - logits[contrast_id]))


def describe_edits(tokenizer: Any, token_ids: Sequence[int], edits: Sequence[Edit]) -> str:
    """'Removing 'commas' and replacing 'a' with 'the'' (the first word capitalised)."""
    counts: dict[str, int] = {}
    for e in edits:
        old = display(tokenizer, int(token_ids[e.position])).strip() or display(tokenizer, int(token_ids[e.position]))
        part = f"removing {old!r}" if e.kind == "remove" else f"replacing {old!r} with {e.word!r}"
        counts[part] = counts.get(part, 0) + 1
    times = {1: "", 2: " (twice)"}
    parts = [p + times.get(n, f" ({n} times)") for p, n in counts.items()]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[:1].upper() + text[1:]


def sentence(what: str, before: Side, after: Side, target: str, contrast: str) -> str:
    """One plain sentence: does the answer flip, and how far does the wrong answer's lead move?"""
    lead = f"(Δℓ {before.logit_diff:+.2f} → {after.logit_diff:+.2f})"
    if not what:
        return f"No edits yet: the model answers {before.top1!r} {lead}."
    if after.top1_id != before.top1_id:
        right = " — the right answer" if after.top1 == contrast else ""
        return f"{what} flips the answer to {after.top1!r}{right} {lead}."
    if (before.logit_diff > 0) != (after.logit_diff > 0):
        now = contrast if after.logit_diff <= 0 else target
        return f"{what} makes the model prefer {now!r} between the two, but its answer stays {after.top1!r} {lead}."
    if abs(after.logit_diff - before.logit_diff) < 0.05:
        return f"{what} changes almost nothing: the answer stays {after.top1!r} {lead}."
    how = "shrinks" if abs(after.logit_diff) < abs(before.logit_diff) else "grows"
    return f"{what} {how} the lead of {target!r} over {contrast!r}; the answer stays {after.top1!r} {lead}."


def what_if(handle: Any, token_ids: Sequence[int], special: Sequence[bool], target_id: int, contrast_id: int,
            edits: Sequence[Edit], reuse_prefix: bool = True) -> WhatIf:
    """Before -> after of `edits` on the prompt `token_ids` [T] (the numbers only; see the module docstring)."""
    if contrast_id is None:
        raise FailureLensError("What if? compares the target with a contrast token: choose the logit difference "
                               "against a contrast (Objective) first.")
    tok = handle.tokenizer
    new = apply_edits(tok, token_ids, special, edits)
    changed = [i for i, (a, b) in enumerate(zip(token_ids, new)) if int(a) != b]
    n = len(new)
    t0 = changed[0] if changed else n
    device = next(handle.model.parameters()).device
    batch = torch.tensor([[int(i) for i in token_ids], new], device=device)  # [2, T]
    with handle.lock:
        logits = last_logits(handle.model, batch, chunk_rows(handle.model, n), [n, t0] if reuse_prefix else None)
    before, after = (_side(tok, logits[r], target_id, contrast_id) for r in (0, 1))
    target, contrast = display(tok, target_id), display(tok, contrast_id)
    what = describe_edits(tok, token_ids, edits) if edits else ""
    return WhatIf(tuple(e.spec() for e in edits), before, after, target, contrast, tuple(new),
                  tuple(display(tok, i) for i in new), tuple(changed), t0, bool(reuse_prefix and 0 < t0 < n),
                  sentence(what, before, after, target, contrast))


def edited_attribution(handle: Any, att: Attribution, result: WhatIf) -> Attribution:
    """The heatmap of the edited prompt: same objective, target and contrast, the original's character offsets
    (every edit keeps one token per position, so the columns line up with the original's)."""
    from engine.heatmap import attribute

    return attribute(handle, "", Objective.of(att), token_ids=list(result.token_ids), offsets=list(att.offsets))


def what_if_attribution(handle: Any, att: Attribution, edits: Sequence[Edit], prompt: Optional[str] = None
                        ) -> tuple[WhatIf, Attribution]:
    """`what_if` on the prompt of a heatmap, and the edited prompt's heatmap (a text edit: `what_if_text`, which
    needs the prompt's text)."""
    if att.contrast is None:
        raise FailureLensError("What if? compares the target with a contrast token: choose the logit difference "
                               "against a contrast (Objective) first.")
    if len(edits) == 1 and edits[0].kind == "text":
        if prompt is None:
            raise FailureLensError("A text edit needs the prompt's text; open the case with its prompt.")
        return what_if_text(handle, att, prompt, edits[0])
    result = what_if(handle, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id, edits)
    return result, edited_attribution(handle, att, result)


# ---------------------------------------------------------------- text edits
def text_edit(before: str, after: str) -> Edit:
    """The one span of `before` that `after` changes (common start and end left out), as a text edit."""
    if before == after:
        raise FailureLensError("The edited text is the prompt as it is; change some of it first.")
    n = 0
    while n < min(len(before), len(after)) and before[n] == after[n]:
        n += 1
    m = 0
    while m < min(len(before), len(after)) - n and before[-1 - m] == after[-1 - m]:
        m += 1
    new = after[n:len(after) - m]
    if len(new) > MAX_TEXT_EDIT:
        raise FailureLensError(f"The edit changes {len(new):,} characters, more than {MAX_TEXT_EDIT:,}; edit a "
                               "shorter part, or open the edited text as a prompt of its own.")
    return Edit("text", n, new, len(before) - m)


def apply_text(prompt: str, e: Edit) -> str:
    if not 0 <= e.position <= e.end <= len(prompt):
        raise FailureLensError(f"The text edit {e.spec()[:40]!r} names characters {e.position}–{e.end}, but the "
                               f"prompt has {len(prompt)}; it belongs to another prompt. Undo it.")
    return prompt[:e.position] + e.word + prompt[e.end:]


def describe_text(prompt: str, e: Edit) -> str:
    """'Replacing 'two' with '2'', 'Deleting 'two'' or 'Inserting 'very''."""
    old = prompt[e.position:e.end]
    if not old:
        return f"Inserting {e.word!r}"
    return f"Deleting {old!r}" if not e.word else f"Replacing {old!r} with {e.word!r}"


def what_if_text(handle: Any, att: Attribution, prompt: str, e: Edit) -> tuple[WhatIf, Attribution]:
    """Before -> after of the text edit `e` of `prompt` (the heatmap `att` explains), and the edited prompt's
    heatmap (same target, contrast and objective; its own tokens). changed: [tokens of the edited prompt] the
    ones that overlap the new text (or touch the place of a deletion)."""
    from engine.heatmap import attribute

    new_prompt = apply_text(prompt, e)
    tok = handle.tokenizer
    # the same pair and objective, at the edited prompt's last token
    after = attribute(handle, new_prompt, dataclasses.replace(Objective.of(att), position=-1))
    device = next(handle.model.parameters()).device
    with handle.lock:
        logits = [last_logits(handle.model, torch.tensor([list(ids)], device=device), 1)[0]
                  for ids in (att.token_ids, after.token_ids)]
    before_side, after_side = (_side(tok, x, att.target.token_id, att.contrast.token_id) for x in logits)
    lo, hi = e.position, e.position + len(e.word)
    changed = [i for i, (a, b) in enumerate(after.offsets) if not after.special_mask[i] and a < max(hi, lo + 1)
               and b > lo - (hi == lo)]
    target, contrast = display(tok, att.target.token_id), display(tok, att.contrast.token_id)
    return WhatIf((e.spec(),), before_side, after_side, target, contrast, tuple(after.token_ids),
                  tuple(after.tokens), tuple(changed), changed[0] if changed else len(after.tokens), False,
                  sentence(describe_text(prompt, e), before_side, after_side, target, contrast)), after
