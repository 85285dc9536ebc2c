"""Rows: variants of one prompt run through the model from the cached states of the unchanged prompt.

The causal checks re-run the model on many variants (rows) of one prompt. A row that changes nothing before
position t has the prompt's keys and values there, so it runs only positions t.. on a copy of the prompt's
cache cropped to t (`PrefixCache`). A row that also changes nothing before decoder layer l (node ablation)
starts at layer l from the prompt's input to that layer (`start_at`): the layers below are skipped.
A chain of rows that each differ from the previous one at one position p (the deletion curves: one more token
removed) runs each row from p on the previous row's cache (`run_after`). Everything uses the model's own cache
API, so every architecture keeps its own masks and positions; tested equal to full forwards on every one.

`MaskedRows` is the one masking engine: rows that replace some tokens of the prompt by a mask id, keyed by the
positions they change, each distinct row run once. `first_flip` walks an order of positions (mask the first k,
k = 0, 1, ...) until Δℓ = ℓ(target) − ℓ(contrast) turns negative: the deletion checks' verdict
(engine.cases.checks) and the sweeps' masking faithfulness (engine.cases.faithfulness) both run on it.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
from typing import Any, Iterator, Optional, Sequence

import torch

ACTIVATION_BYTES = 256 << 20  # per forward chunk


def chunk_rows(model: Any, n_tokens: int) -> int:
    """Rows per forward so that one chunk's float32 activations stay near ACTIVATION_BYTES."""
    cfg = getattr(model, "config", None)
    d = int(getattr(cfg, "hidden_size", 1024) or 1024)
    heads = int(getattr(cfg, "num_attention_heads", 16) or 16)
    per_row = 4 * n_tokens * (16 * d + heads * n_tokens)  # float32 activations of one row, roughly
    return max(1, ACTIVATION_BYTES // max(per_row, 1))


def forward(model: Any, ids: torch.Tensor, **kw: Any) -> Any:
    """model(input_ids=ids) keeping the last position's logits only where the model allows it."""
    try:
        return model(input_ids=ids, logits_to_keep=1, **kw)
    except TypeError:  # models without logits_to_keep / caches
        return model(input_ids=ids)


def _cache_of(out: Any) -> Any:
    return getattr(out, "cache", None) or getattr(out, "past_key_values", None)


class PrefixCache:
    """Keys and values of one unpatched forward over a prompt, to re-run rows from position t on.

    Rows that change nothing before position t run only positions t.. on a copy cropped to t and repeated
    over the rows. `ok` is False where the cache cannot roll back (sliding-window layers) or the model has
    none: every row then runs the whole prompt. `inputs[l]`: the prompt's input to decoder layer l [1, T, d],
    kept for the layers named in `keep` (`start_at`).
    """

    def __init__(self, model: Any, ids: torch.Tensor, layers: Sequence[torch.nn.Module] = (),
                 keep: Sequence[int] = ()):
        self.model, self.n = model, ids.shape[-1]
        self.name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.inputs: dict[int, torch.Tensor] = {}
        hooks = [layers[i].register_forward_pre_hook(self._keeper(i), with_kwargs=True) for i in set(keep)]
        try:
            out = forward(model, ids, use_cache=True)
        finally:
            for h in hooks:
                h.remove()
        self.logits = out.logits[:, -1].float()  # [1, V]
        cache = _cache_of(out)
        self.ok = (cache is not None and bool(getattr(cache, "is_croppable", False))
                   and not any(getattr(cache, "is_sliding", ())))
        self.cache = cache if self.ok else None

    def _keeper(self, i: int):
        def keep(_m, args, kwargs):
            self.inputs[i] = (args[0] if args else kwargs["hidden_states"]).detach()
        return keep

    def kwargs(self, t0: int, rows: int, cache: Any = None) -> dict[str, Any]:
        """Forward kwargs (besides the ids of positions t0..) for `rows` rows that start at t0 on `cache`
        (default: the prompt's), a copy cropped to t0."""
        if not t0 or not self.ok:
            return {}
        past = copy.deepcopy(self.cache if cache is None else cache)
        past.crop(t0 - past.get_seq_length())  # a negative crop keeps positions 0..t0-1
        if rows > 1:
            past.batch_repeat_interleave(rows)
        return {self.name: past, "use_cache": True}

    def run_after(self, row: torch.Tensor, t0: int, parent: Any) -> tuple[torch.Tensor, Any]:
        """Last-position logits [V] of `row` [T], which equals the row whose cache is `parent` (None: the
        prompt) at every position before t0; and the row's own cache, for the next row of a chain."""
        if not self.ok:
            return forward(self.model, row[None]).logits[0, -1].float(), None
        if t0 == 0:
            out = forward(self.model, row[None], use_cache=True)
        else:
            out = forward(self.model, row[None, t0:], **self.kwargs(t0, 1, parent))
        return out.logits[0, -1].float(), _cache_of(out)


@torch.inference_mode()
def last_logits(model: Any, batch: torch.Tensor, chunk: int, starts: Optional[list[int]] = None,
                prefix: Optional[PrefixCache] = None) -> torch.Tensor:
    """[B, V] last-position logits of every row of `batch` [B, T], `chunk` rows per forward.

    starts[i]: the first position where row i differs from the prompt; rows are grouped by it and run on the
    cached prefix (`prefix`, made here from row 0 when not given) where the model allows. Rows that change
    nothing (start T) take the prompt's own logits.
    """
    if starts is not None and prefix is None:
        prefix = PrefixCache(model, batch[:1])
    n = batch.shape[1]
    if starts is None or prefix is None or not prefix.ok:  # whole rows; an unchanged one is the prompt itself
        keep = starts is not None and prefix is not None
        starts = [n if keep and s >= n else 0 for s in starts or [0] * len(batch)]
    groups: dict[int, list[int]] = {}
    for row, t0 in enumerate(starts):
        groups.setdefault(t0, []).append(row)
    out: dict[int, torch.Tensor] = {}
    for t0, rows in groups.items():
        if t0 >= n:  # nothing changed: the prompt's own logits
            out.update((r, prefix.logits[0]) for r in rows)
            continue
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            extra = prefix.kwargs(t0, len(part)) if prefix is not None else {}
            out.update(zip(part, forward(model, batch[part, t0:], **extra).logits[:, -1].float()))
    return torch.stack([out[r] for r in range(batch.shape[0])])


@contextlib.contextmanager
def start_at(layers: Sequence[torch.nn.Module], first: int, state: Optional[torch.Tensor]) -> Iterator[None]:
    """Within the block, decoder layers below `first` pass their input through untouched and layer `first`
    receives `state` [rows, T', d] (the prompt's input to it) instead: rows that change nothing below
    layer `first` skip those layers. Instance attributes and a hook, restored in `finally`."""
    if first == 0 or state is None:
        yield
        return

    def passthrough(*args: Any, **kwargs: Any) -> torch.Tensor:
        return args[0] if args else kwargs["hidden_states"]

    def replace(_m, args, kwargs):
        if args:
            return (state, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": state}

    saved = [layer.__dict__.get("forward") for layer in layers[:first]]
    handle = layers[first].register_forward_pre_hook(replace, with_kwargs=True)
    try:
        for layer in layers[:first]:
            layer.forward = passthrough
        yield
    finally:
        handle.remove()
        for layer, old in zip(layers[:first], saved):
            if old is None:
                del layer.forward
            else:
                layer.forward = old


@dataclasses.dataclass
class MaskedRows:
    """One prompt's ids [T] and the rows that replace some of its tokens by `mask_id`: `values` maps a row's key
    (the sorted positions whose token it changes) to its last-position logits [V]; `runs` counts model runs.
    `chunk`: rows per forward; `prefix`: the prompt's cached states (None: every row runs the whole prompt)."""

    model: Any
    ids: torch.Tensor
    id_list: list[int]
    mask_id: int
    target_id: int
    contrast_id: int
    chunk: int
    prefix: Optional[PrefixCache]
    values: dict = dataclasses.field(default_factory=dict)
    runs: int = 0

    @classmethod
    def of(cls, model: Any, input_ids: Sequence[int], mask_id: int, target_id: int, contrast_id: int,
           chunk: Optional[int] = None, reuse_prefix: bool = True) -> "MaskedRows":
        ids = torch.tensor([int(i) for i in input_ids], device=next(model.parameters()).device)
        with torch.inference_mode():
            prefix = PrefixCache(model, ids[None]) if reuse_prefix else None
        return cls(model, ids, ids.tolist(), int(mask_id), int(target_id), int(contrast_id),
                   chunk or chunk_rows(model, len(ids)), prefix)

    def key(self, positions: Sequence[int]) -> tuple[int, ...]:
        return tuple(sorted(p for p in positions if self.id_list[p] != self.mask_id))

    def row(self, key: tuple[int, ...]) -> torch.Tensor:
        row = self.ids.clone()
        row[list(key)] = self.mask_id
        return row

    def delta(self, key: tuple[int, ...]) -> float:
        logits = self.values[key]
        return float(logits[self.target_id] - logits[self.contrast_id])

    def base(self) -> None:
        """The prompt's own row: the prefix forward's logits, else one forward."""
        if () not in self.values:
            self.values[()] = (self.prefix.logits[0] if self.prefix is not None
                               else forward(self.model, self.ids[None]).logits[0, -1].float())
            self.runs += 1

    def batch(self, keys: Sequence[tuple[int, ...]]) -> None:
        """Run the rows not yet known as one batch, each from its first changed position on the cached prefix."""
        todo = [key for key in dict.fromkeys(keys) if key not in self.values]
        if not todo:
            return
        batch = torch.stack([self.row(key) for key in todo])  # [rows, T]
        n = len(self.id_list)
        starts = [key[0] if key else n for key in todo] if self.prefix is not None else None
        self.values.update(zip(todo, last_logits(self.model, batch, self.chunk, starts, self.prefix)))
        self.runs += sum(1 for key in todo if key or self.prefix is None)

    @torch.inference_mode()
    def first_flip(self, order: Sequence[int], step: Optional[int] = None
                   ) -> tuple[Optional[int], list[float], tuple[int, ...]]:
        """(smallest k with Δℓ < 0 after masking order[:k], k = 0..len(order), or None; Δℓ for k = 0 up to it;
        the key of the last row). step None: one row after the other, each from the first position where it
        differs from the previous row run, on that row's cache (`PrefixCache.run_after`); step n: n values of k
        per batch, each row from its first masked position on the prompt's cache (`batch`)."""
        self.base()
        curve, last = [self.delta(())], ()
        if curve[0] < 0:
            return 0, curve, last
        parent_key, parent, k = (), None, 1
        while k <= len(order):
            ks = range(k, min(k + (step or 1), len(order) + 1))
            keys = [self.key(order[:j]) for j in ks]
            if step is not None:
                self.batch(keys)
            elif keys[0] not in self.values:  # (a masked token equal to the mask id changes nothing)
                row, t0 = self.row(keys[0]), min(set(keys[0]) ^ set(parent_key))
                if self.prefix is not None:
                    self.values[keys[0]], parent = self.prefix.run_after(row, t0, parent)
                else:
                    self.values[keys[0]] = forward(self.model, row[None]).logits[0, -1].float()
                self.runs += 1
                parent_key = keys[0]
            for j, key in zip(ks, keys):
                curve.append(self.delta(key))
                last = key
                if curve[-1] < 0:
                    return j, curve, last
            k = ks.stop
        return None, curve, last
