"""Does a graph node matter? Ablate it and measure Δℓ, beside the change its relevance predicts.

A node is (stage, token) of `engine.graph.prune.stage_layout(n_layers, split)`: the residual stream entering
layer 0 ("emb"), between attention and MLP of a layer ("L3.mid", split graphs only), or after a layer ("L3").

For each node, with x its state [d] and g = ∂Δℓ/∂x under the model's LRP rules (so x·g is its relevance R,
the number the graph draws), and μ the mean state over the prompt's positions (the first token left out:
it is usually an attention sink with an outlying state):
- residual, zero ablation:  x := 0 at that position; predicted change of Δℓ: −x·g = −R;
- residual, mean ablation:  x := μ;                   predicted change:     (μ − x)·g;
- block output (split graphs): the attention block's output (mid rows) or the MLP block's output (layer rows)
  at that position := 0 or its mean over positions; predicted change −a·g_a or (μ_a − a)·g_a with g_a the
  rule gradient at that output. On post-norm models (Gemma 3, OLMo 2/3) the block output is taken before
  the block's output norm, and the residual state of a mid row cannot be set on its own (left out, noted).
Measured change: Δℓ of the patched forward minus Δℓ of the unpatched one (plain forward, no rules).

The predicted change is first order: it matches the measured one for a node that acts linearly on Δℓ;
the correlation over the top-N nodes says how far the attribution's ranking can be trusted causally.
Every node's variants are rows of one batch: one forward (per memory-sized chunk) patches a different
(row, position) in each row through scoped forward hooks, removed in `finally`. With `reuse_prefix`, a row
that patches token t at decoder layer l runs only layers l.. at positions t..: the layers below take the
prompt's input to layer l (kept from the prompt's own forward; `rows.start_at`), the positions before t
the prompt's cached keys and values (`rows.PrefixCache`). A residual state after layer l is set at the input
of layer l + 1. Tested equal to full forwards on every architecture.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from engine.cases.rows import PrefixCache, forward, start_at
from engine.graph.capture import attention_module
from engine.graph.prune import stage_layout
from engine.graph.states import stage_pass
from engine.hooks import scoped_hooks
from engine.lrp.architectures import architecture_of
from engine.records import FailureLensError
from engine.trace import decoder_layers

_ACTIVATION_BYTES = 256 << 20


@dataclass(frozen=True)
class NodeAblation:
    """Predicted and measured change of Δℓ when one node is removed (None: not available for this node)."""

    stage: int
    stage_name: str
    token: int
    token_text: str
    relevance: float  # R = x·g, as drawn in the graph
    predicted_zero: Optional[float]
    measured_zero: Optional[float]
    predicted_mean: Optional[float]
    measured_mean: Optional[float]
    block: Optional[str] = None  # "attention" | "mlp" for split rows
    block_predicted_zero: Optional[float] = None
    block_measured_zero: Optional[float] = None
    block_predicted_mean: Optional[float] = None
    block_measured_mean: Optional[float] = None


@dataclass(frozen=True)
class AblationReport:
    base_logit_diff: float
    nodes: tuple[NodeAblation, ...]
    r_zero: Optional[float]  # Pearson correlation of predicted and measured over the nodes (None: < 3 nodes)
    r_mean: Optional[float]
    r_block_zero: Optional[float]
    r_block_mean: Optional[float]
    split: bool
    forward_rows: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = [asdict(n) for n in self.nodes]
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AblationReport":
        d = dict(d)
        d["nodes"] = tuple(NodeAblation(**n) for n in d["nodes"])
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)


@dataclass(frozen=True)
class _Patch:
    """One row's change at position `token`: `module`'s input ("pre") or output ("out") := value; "mid": the
    attention output := value − the layer's input, so the residual after attention is exactly `value`."""

    module: torch.nn.Module
    where: str  # "pre" | "out" | "mid"
    token: int
    value: torch.Tensor  # [d]
    layer: Optional[torch.nn.Module] = None  # "mid": the decoder layer whose input is the residual
    start: int = 0  # the first decoder layer the row must run (the layers below are the prompt's)


@dataclass
class _States:
    """Per stage [T, d] states and rule gradients; per layer block outputs (split only)."""

    states: list[torch.Tensor]
    grads: list[torch.Tensor]
    blocks: dict  # stage index -> (module, output [T, d], grad [T, d])
    base: float


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


def _capture(handle: Any, ids: list[int], target_id: int, contrast_id: int, split: bool) -> _States:
    """One forward + backward under the rules, keeping every stage's state and gradient (engine.graph.states,
    as the graph) and, split, each layer's attention and MLP block outputs with their gradients."""
    if handle.gradient_checkpointing:
        raise FailureLensError("Node ablation needs every layer's state: load the model without gradient "
                               "checkpointing to ablate nodes.")
    layers = decoder_layers(handle.model)
    kept: dict[Any, torch.Tensor] = {}

    def keep_output(key):
        def hook(_m, _args, out):
            a = _first(out)
            if a.requires_grad and key not in kept:
                a.retain_grad()
                kept[key] = a
        return hook

    with scoped_hooks() as hooks:
        if split:
            for i, layer in enumerate(layers):
                hooks.add(attention_module(layer).register_forward_hook(keep_output(("attention", i))))
                hooks.add(layer.mlp.register_forward_hook(keep_output(("mlp", i))))
        sp = stage_pass(handle, ids, lambda _l: (target_id, contrast_id), "logit_diff/by_ref_token", split=split,
                        attention=False, inner=False)
    blocks = {}
    if split:  # stage 1 + 2i: layer i's mid row (after attention); 2 + 2i: its output (after the MLP)
        for i, layer in enumerate(layers):
            a, m = kept[("attention", i)], kept[("mlp", i)]
            blocks[1 + 2 * i] = (attention_module(layer), a.detach()[0].reshape(len(ids), -1),
                                 a.grad.detach()[0].reshape(len(ids), -1))
            blocks[2 + 2 * i] = (layer.mlp, m.detach()[0], m.grad.detach()[0])
    base = float(sp.trace.logits[target_id] - sp.trace.logits[contrast_id])
    return _States(sp.states, sp.grads, blocks, base)


def _mean(x: torch.Tensor) -> torch.Tensor:
    """[T, d] -> [d]: mean over positions, the first one left out when there are others."""
    return (x[1:] if x.shape[0] > 1 else x).mean(0)


def top_nodes(relevance: np.ndarray, n: int, skip_first: bool = False) -> list[tuple[int, int]]:
    """The n nodes (stage, token) of relevance [stages, tokens] with the largest |R|, largest first."""
    r = np.abs(np.asarray(relevance, dtype=np.float64))
    if skip_first and r.shape[1] > 1:
        r[:, 0] = -1.0
    order = np.argsort(-r, axis=None, kind="stable")[: max(0, int(n))]
    return [(int(i // r.shape[1]), int(i % r.shape[1])) for i in order if r.flat[i] >= 0]


@contextlib.contextmanager
def _patched(patches: Sequence[_Patch]) -> Iterator[None]:
    """Row i of the batch gets patches[i] (None: no patch), through hooks removed in `finally`."""
    groups: dict[tuple[int, str], list[tuple[int, _Patch]]] = {}
    for row, p in enumerate(patches):
        if p is not None:
            groups.setdefault((id(p.module), p.where), []).append((row, p))
    handles = []

    inputs: dict[int, torch.Tensor] = {}  # id(layer) -> its input in this forward ("mid" patches)

    def apply(h: torch.Tensor, items: list[tuple[int, _Patch]]) -> torch.Tensor:
        h = h.clone()
        for row, p in items:
            v = p.value.to(h.dtype).reshape(h[row, p.token].shape)
            if p.where == "mid":  # residual + (v - residual) is exactly v for v = 0
                v = v - inputs[id(p.layer)][row, p.token].reshape(v.shape)
            h[row, p.token] = v
        return h

    def keep_input(_m, args, kwargs):
        inputs[id(_m)] = args[0] if args else kwargs["hidden_states"]

    try:
        for layer in {id(p.layer): p.layer for p in patches if p is not None and p.where == "mid"}.values():
            handles.append(layer.register_forward_pre_hook(keep_input, with_kwargs=True))
        for (_, where), items in groups.items():
            module = items[0][1].module
            if where == "pre":
                def pre(_m, args, kwargs, items=items):
                    if args:
                        return (apply(args[0], items), *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": apply(kwargs["hidden_states"], items)}
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            else:
                def post(_m, _args, out, items=items):
                    if isinstance(out, tuple):
                        return (apply(out[0], items), *out[1:])
                    return apply(out, items)
                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def _run(handle: Any, ids: list[int], patches: list[Optional[_Patch]], target_id: int, contrast_id: int,
         chunk: int, reuse_prefix: bool = True) -> list[float]:
    """Δℓ of each row: the same ids, row i patched by patches[i]; `chunk` rows per forward.

    A patch at token t leaves every position before t unchanged, so with `reuse_prefix` the rows that patch
    token t run only positions t.. on the cached keys and values of the prompt before t (checks.PrefixCache).
    """
    model = handle.model
    x = torch.tensor([ids], device=handle.device)
    layers = decoder_layers(model)
    prefix = None
    if reuse_prefix:
        prefix = PrefixCache(model, x, layers, {p.start for p in patches if p is not None and p.start})
    use = prefix is not None and prefix.ok
    groups: dict[tuple[int, int], list[int]] = {}
    out: dict[int, float] = {}
    for row, p in enumerate(patches):
        if p is None and prefix is not None:  # the unpatched prompt: its own forward's logits
            out[row] = float(prefix.logits[0, target_id] - prefix.logits[0, contrast_id])
        else:
            key = (p.token if use else 0, p.start if prefix is not None else 0) if p is not None else (0, 0)
            groups.setdefault(key, []).append(row)
    for (t0, first), rows in sorted(groups.items()):
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            local = [None if patches[r] is None else dataclasses.replace(patches[r], token=patches[r].token - t0)
                     for r in part]
            extra = prefix.kwargs(t0, len(part)) if use else {}
            state = prefix.inputs[first][:, t0:].expand(len(part), -1, -1) if first else None
            with start_at(layers, first, state), _patched(local):
                last = forward(model, x[:, t0:].expand(len(part), -1), **extra).logits[:, -1]
            out.update(zip(part, (last[:, target_id].float() - last[:, contrast_id].float()).tolist()))
    return [out[r] for r in range(len(patches))]


def _pearson(a: list[Optional[float]], b: list[Optional[float]]) -> Optional[float]:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 3:
        return None
    x, y = np.array(pairs, dtype=np.float64).T
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def node_states(handle: Any, token_ids: Sequence[int], target_id: int, contrast_id: int,
                split: bool = False) -> _States:
    """Every node's state and rule gradient of the case (one forward + backward under the rules). They depend on
    the case only: pass them to `ablate_nodes(states=...)` to ablate another node without running this again."""
    with handle.lock:
        return _capture(handle, [int(i) for i in token_ids], target_id, contrast_id, split)


def ablate_nodes(handle: Any, token_ids: Sequence[int], target_id: int, contrast_id: int,
                 nodes: Optional[Sequence[tuple[int, int]]] = None, top_n: int = 20, split: bool = False,
                 skip_first: bool = False, chunk: Optional[int] = None, reuse_prefix: bool = True,
                 states: Optional[_States] = None) -> AblationReport:
    """Ablate `nodes` (default: the top_n by |R|) of the case; see the module docstring. `states`: the case's
    `node_states` (same ids, target, contrast and split), else they are captured here."""
    from engine.tokens import display_many

    ids = [int(i) for i in token_ids]
    if not ids:
        raise FailureLensError("The prompt is empty: there are no nodes to ablate.")
    if split and architecture_of(handle).parallel_residual(handle.model.config):
        raise FailureLensError("This model adds attention and MLP in parallel: there are no mid-block nodes. "
                               "Ablate the nodes of the graph without the Attn/MLP split.")
    layout = stage_layout(handle.n_layers, split)
    notes: list[str] = []
    with handle.lock:
        st = states if states is not None else _capture(handle, ids, target_id, contrast_id, split)
        rel = torch.stack([(x.float() * g.float()).sum(-1) for x, g in zip(st.states, st.grads)])  # [S, T]
        chosen = list(nodes) if nodes is not None else top_nodes(rel.numpy(), top_n, skip_first)
        bad = [n for n in chosen if not (0 <= n[0] < len(layout) and 0 <= n[1] < len(ids))]
        if bad:
            raise FailureLensError(f"Node {bad[0]} is outside the graph ({len(layout)} stages x {len(ids)} tokens).")
        layers = decoder_layers(handle.model)
        rows: list[Optional[_Patch]] = [None]  # row 0: the unpatched case
        plan = []  # per node: row index (or None) of residual zero, residual mean, block zero, block mean
        residual_mid = not architecture_of(handle).post_norm  # post-norm: the block output is normed before the add
        if split and not residual_mid:
            notes.append("Post-norm model: the residual state of a mid row cannot be set alone; mid rows show the "
                         "attention block's output only.")

        def add(p: Optional[_Patch]) -> Optional[int]:
            if p is None:
                return None
            rows.append(p)
            return len(rows) - 1

        for s, t in chosen:
            stage, x = layout[s], st.states[s]
            mu = _mean(x)
            if stage.kind == "emb":
                res = [_Patch(layers[0], "pre", t, torch.zeros_like(x[t])), _Patch(layers[0], "pre", t, mu)]
            elif stage.kind == "post" and stage.layer + 1 < len(layers):  # = the next layer's input
                nxt = stage.layer + 1
                res = [_Patch(layers[nxt], "pre", t, torch.zeros_like(x[t]), start=nxt),
                       _Patch(layers[nxt], "pre", t, mu, start=nxt)]
            elif stage.kind == "post":
                layer = layers[stage.layer]
                res = [_Patch(layer, "out", t, torch.zeros_like(x[t]), start=stage.layer),
                       _Patch(layer, "out", t, mu, start=stage.layer)]
            elif residual_mid:  # mid = h_in + attention output: set the attention output to (value - h_in)
                layer = layers[stage.layer]
                attn = attention_module(layer)
                res = [_Patch(attn, "mid", t, torch.zeros_like(x[t]), layer, stage.layer),
                       _Patch(attn, "mid", t, mu, layer, stage.layer)]
            else:
                res = [None, None]
            blk = [None, None]
            if s in st.blocks:
                module, a, _ = st.blocks[s]
                blk = [_Patch(module, "out", t, torch.zeros_like(a[t]), start=stage.layer),
                       _Patch(module, "out", t, _mean(a), start=stage.layer)]
            plan.append([add(p) for p in res + blk])
        size = chunk or max(1, _ACTIVATION_BYTES // (4 * len(ids) * 16 * int(handle.model.config.hidden_size)))
        measured = _run(handle, ids, rows, target_id, contrast_id, size, reuse_prefix)
    base = measured[0]
    out = []
    tokens = display_many(handle.tokenizer, ids)
    for (s, t), idx in zip(chosen, plan):
        x, g = st.states[s][t].float(), st.grads[s][t].float()
        mu = _mean(st.states[s]).float()
        change = [None if i is None else measured[i] - base for i in idx]
        pred = [float(-(x @ g)), float((mu - x) @ g)]
        if idx[0] is None:
            pred = [None, None]
        block, bpred = None, [None, None]
        if s in st.blocks:
            module, a, ga = st.blocks[s]
            block = "attention" if layout[s].kind == "mid" else "mlp"
            a_t, g_t = a[t].float(), ga[t].float()
            bpred = [float(-(a_t @ g_t)), float((_mean(a).float() - a_t) @ g_t)]
        out.append(NodeAblation(s, layout[s].name, t, tokens[t], float(rel[s, t]), pred[0], change[0], pred[1],
                                change[1], block, bpred[0], change[2], bpred[1], change[3]))
    col = lambda name: [getattr(n, name) for n in out]  # noqa: E731
    return AblationReport(
        base_logit_diff=base, nodes=tuple(out),
        r_zero=_pearson(col("predicted_zero"), col("measured_zero")),
        r_mean=_pearson(col("predicted_mean"), col("measured_mean")),
        r_block_zero=_pearson(col("block_predicted_zero"), col("block_measured_zero")),
        r_block_mean=_pearson(col("block_predicted_mean"), col("block_measured_mean")),
        split=split, forward_rows=len(rows) - 1, notes=tuple(notes))
