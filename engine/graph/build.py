"""`build_graph`: node relevance from one pass, edges per transition (closed form or batch-packed)."""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..heatmap import check_finite, prepare
from ..lrp.architectures import architecture_of
from ..lrp.context import lrp_rules
from ..memory import check_memory, chunk_elements
from ..models import ModelHandle
from ..objectives import Objective
from ..records import FailureLensError
from ..trace import decoder_layers, relevance
from .capture import LayerRecord, Recorder, attention_module, has_attention_bias, pre_attention_norm
from .closed_form import AttentionFactors, SparseEdges, TopK, attention_edges, diagonal_edges
from .packed import Progress, choose_batch, packed_rows
from .prune import stage_layout
from .states import stage_pass
from .stream import EdgeStream
from .types import AttributionGraph, EdgeSet, Stage

log = logging.getLogger(__name__)
TOP = 8  # drill-down entries kept per node
METHODS = ("auto", "closed_form", "batch_packed")


@dataclass
class _Pass:
    """Tensors of the single attribution pass, per stage. All [T, d] detached."""

    states: list[torch.Tensor]
    grads: list[torch.Tensor]
    records: list[LayerRecord]
    recorder: Recorder
    recompute: bool  # gradient checkpointing: per-layer tensors are rebuilt on demand, then released
    post_grads: list[torch.Tensor]
    posts: list[torch.Tensor]
    neurons: dict = field(default_factory=dict)  # layer -> (top idx [T, K], top values [T, K])
    streamed: dict = field(default_factory=dict)  # layer -> SparseEdges built during the backward (EdgeStream)


def _neuron_top(x: torch.Tensor, g: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The MLP neurons of one layer with the largest |activation x gradient| per token. x, g: [T, F]."""
    return _top(x.float() * g.float(), TOP)


def _streamed_edges(handle: ModelHandle, stream: EdgeStream, max_edges: int, i: int, rec: LayerRecord,
                    r_src: torch.Tensor, r_dst: torch.Tensor) -> SparseEdges:
    """One layer's closed-form edges, inside the traced backward (see engine.graph.stream)."""
    f = _factors(handle, decoder_layers(handle.model)[i], rec, stream.constant_qkv)
    return attention_edges(f, r_src, r_dst, handle.rule, max_edges, chunk_elements(handle))


def _keep_neurons(p: "_Pass", i: int, rec: LayerRecord) -> None:
    if i not in p.neurons and rec.mlp_in is not None and rec.mlp_in.grad is not None:
        p.neurons[i] = _top(rec.mlp_in.detach()[0].float() * rec.mlp_in.grad[0].float(), TOP)


def _layer_record(p: "_Pass", layer: int) -> LayerRecord:
    """The layer's captured tensors, recomputed from its input and output gradient when checkpointing."""
    rec = p.records[layer]
    if p.recompute and rec.q is None:
        h_in = p.states[0] if layer == 0 else p.posts[layer - 1]
        p.recorder.recompute(layer, h_in, p.post_grads[layer], mid=False)
        _keep_neurons(p, layer, rec)
    return rec


def _constant_parts(handle: ModelHandle, layer: torch.nn.Module, rec: LayerRecord,
                    run: Optional[Callable] = None) -> Optional[tuple]:
    """q, k, v of the block's constant input (the pre-attention norm's bias, or zeros): their bias parts.

    `run(layer, args, kwargs) -> (q, k, v)` calls the attention module where the rules are already active
    (the single-pass stream, inside the traced backward); by default the rules are applied here."""
    if not has_attention_bias(handle, layer):
        return None
    norm = pre_attention_norm(handle, layer)
    hidden = (rec.attn_args[0] if rec.attn_args else rec.attn_kwargs["hidden_states"]).detach()
    bias = getattr(norm, "bias", None) if norm is not None else None
    const = torch.zeros_like(hidden) + (bias.to(hidden.dtype) if bias is not None else 0.0)
    got: dict[str, torch.Tensor] = {}

    def capture(module, q, k, v, mask, kwargs, out):
        got.update(q=q.detach()[0], k=k.detach()[0], v=v.detach()[0])

    args, kwargs = list(rec.attn_args), dict(rec.attn_kwargs)
    if args:
        args[0] = const
    else:
        kwargs["hidden_states"] = const
    if run is not None:
        return run(layer, args, kwargs)
    with lrp_rules(handle.model, handle.rule, capture), torch.no_grad():
        attention_module(layer)(*args, **kwargs)
    return got["q"], got["k"], got["v"]


def _factors(handle: ModelHandle, layer: torch.nn.Module, rec: LayerRecord,
             run: Optional[Callable] = None) -> AttentionFactors:
    if rec.u is not None:
        grad = rec.u
    elif rec.out is not None and rec.out.grad is not None:
        grad = rec.out.grad[0]
    else:
        raise RuntimeError("attention was not captured")
    if rec.q is None:
        raise RuntimeError("attention was not captured")
    heads = rec.q.shape[0]
    rep = heads // rec.k.shape[0]
    k, v = rec.k.repeat_interleave(rep, 0).float(), rec.v.repeat_interleave(rep, 0).float()
    k_lin, v_lin = k, v
    const = _constant_parts(handle, layer, rec, run)
    if const is not None:
        if getattr(attention_module(layer), "q_norm", None) is not None:
            raise RuntimeError("q/k norms together with biases")
        k_lin = k - const[1].repeat_interleave(rep, 0).float()
        v_lin = v - const[2].repeat_interleave(rep, 0).float()
    allowed = None
    if rec.mask is not None:
        m = rec.mask[0, 0]
        allowed = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    u = grad.permute(1, 0, 2).float()  # [T, H, hd] -> [H, T, hd]
    return AttentionFactors(rec.q.float(), k, v, k_lin, v_lin, u, allowed, rec.scaling)


def _edge_set(src: int, dst: int, e: SparseEdges, method: str) -> EdgeSet:
    heads = e.heads if e.heads.shape[1] else None
    return EdgeSet(src, dst, e.src, e.dst, e.weight, e.absorbed.astype(np.float32), method, heads, e.paths,
                   float(e.dropped_mass))


def _dense_to_sparse(rows: list[int], dense: np.ndarray, r_dst: np.ndarray, cap: int) -> SparseEdges:
    """Batch-packed rows -> kept edges (top `cap` by |w|); unexpanded rows absorb all their relevance."""
    top = TopK(cap)
    ri, rj = np.nonzero(dense)
    dst = np.asarray(rows, np.int32)[ri]
    w = dense[ri, rj]
    top.offer(dst, rj.astype(np.int32), w, np.zeros((len(w), 0), np.float32), np.zeros_like(w), np.zeros_like(w))
    d, s, kw, heads, _, _ = top.result(0)
    absorbed = r_dst.astype(np.float64).copy()
    absorbed[rows] -= dense.sum(1)
    paths = np.zeros((len(kw), 3), np.float32)
    return SparseEdges(s, d, kw, heads, paths, absorbed.astype(np.float32),
                       float(np.abs(dense).sum() - np.abs(kw).sum()))


def _top(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of x [T, n]: indices and signed values of the k largest |x|."""
    idx = x.abs().topk(min(k, x.shape[-1]), -1).indices
    return idx.numpy().astype(np.int32), x.gather(-1, idx).numpy().astype(np.float32)


def _check_settings(method: str, max_edges: int) -> None:
    if method not in METHODS:
        raise FailureLensError(f"Unknown edge method {method!r}. Use one of: {', '.join(METHODS)}.")
    if not 1 <= max_edges <= 50_000_000:
        raise FailureLensError(f"max_edges = {max_edges} is out of range (1 .. 50,000,000).")


@dataclass(frozen=True)
class GraphPlan:
    """What one graph computes, decided before any model run: stages, transitions and the memory path."""

    layout: list[Stage]  # every stage of the model (stage_layout)
    pairs: list[tuple[int, int]]  # transitions (src stage, dst stage) between the chosen stages
    split: bool  # Attn/MLP mid-block stages
    recompute: bool  # per-layer recompute (gradient checkpointing) instead of kept activations
    path: str  # "kept" | "recompute", as the memory guard named it
    streamed: bool  # recompute path with closed-form edges built inside the traced backward
    notes: tuple[str, ...]


def plan_graph(handle: ModelHandle, n_tokens: int, split: bool, stages: Optional[list[int]], method: str,
               max_edges: int, recompute: Optional[bool]) -> GraphPlan:
    """Check the settings and choose stages and the memory path (nothing runs the model)."""
    _check_settings(method, max_edges)
    memory = check_memory(handle, n_tokens, "graph", recompute=recompute, max_edges=max_edges, split=split)
    notes = [memory.note] if memory.note else []
    if split and architecture_of(handle).parallel_residual(handle.model.config):
        split = False
        notes.append("Attn/MLP split is not available: this model adds attention and MLP in parallel.")
    layout = stage_layout(handle.n_layers, split)
    chosen = sorted(set(range(len(layout)) if stages is None else stages))
    if not chosen or chosen[0] < 0 or chosen[-1] >= len(layout) or len(chosen) < 2:
        raise FailureLensError(f"Choose at least two stages among 0..{len(layout) - 1} (got {stages}).")
    if memory.recompute:
        notes.append("Gradient checkpointing: each layer's attention is recomputed one layer at a time"
                     + (" (edges built during the backward)." if method != "batch_packed" else "."))
    return GraphPlan(layout, list(zip(chosen[:-1], chosen[1:])), split, memory.recompute, memory.path,
                     memory.recompute and method != "batch_packed", tuple(notes))


def _stage_states(handle: ModelHandle, plan: GraphPlan, ids: list[int], choice, name: str, k: int,
                  max_edges: int, notes: list[str]) -> tuple[_Pass, float]:
    """One traced forward + backward (engine.graph.states.stage_pass): every stage's state and gradient ([T, d]
    each), the captured attention (or, on the streamed path, the edges built in the backward); returns the pass
    and the objective."""
    layout, split, recompute = plan.layout, plan.split, plan.recompute
    recorder = Recorder(handle)
    stream = None
    if plan.streamed:  # edges built inside the backward's own recompute
        wanted = {layout[t].layer for s, t in plan.pairs
                  if _adjacent_kind(layout[s], layout[t], split) == ("attention" if split else "layer")}
        stream = EdgeStream(handle, recorder.records, wanted, None, _neuron_top, split)
        stream.build = functools.partial(_streamed_edges, handle, stream, max_edges)
    sp = stage_pass(handle, ids, choice, name, k, split, recompute, stream=stream, neuron_top=_neuron_top,
                    recorder=recorder)
    trace, states, grads, neurons = sp.trace, sp.states, sp.grads, sp.neurons
    if not torch.equal(states[0], trace.emb):
        notes.append("The embedding row is the residual entering layer 0 (token + position embeddings); "
                     "the heatmap reads token embeddings only.")
    p = _Pass(states, grads, recorder.records, recorder, recompute, trace.post_grads, trace.posts,
              stream.neurons if stream else neurons, stream.edges if stream else {})
    for i, r in enumerate(recorder.records):
        _keep_neurons(p, i, r)
    return p, trace.objective


def build_graph(
    handle: ModelHandle,
    prompt: str,
    objective: Objective = Objective(),
    split: bool = False,
    stages: Optional[list[int]] = None,
    method: str = "auto",
    node_threshold: float = 0.0,
    max_edges: int = 100_000,
    batch: Optional[int] = None,
    progress: Progress = None,
    token_ids: Optional[list[int]] = None,
    recompute: Optional[bool] = None,
) -> AttributionGraph:
    """Attribution graph of the objective. `stages` indexes `stage_layout(n_layers, split)` (default: all).

    method "auto": the exact closed form for adjacent transitions, batch-packed for transitions that skip
    blocks or where the closed form does not apply (noted in `notes`); "batch_packed" forces the reference.
    `recompute`: None lets the memory guard choose between kept activations and per-layer recompute (same
    edges); True / False force a path. `AttributionGraph.path` says which one ran.
    Three steps: plan_graph (settings, stages, memory path), _stage_states (one traced pass), _transition per pair.
    """
    _check_settings(method, max_edges)  # named before the prompt is even tokenized
    enc, ids, pos, name, choice, warnings = prepare(handle, prompt, objective, token_ids)
    plan = plan_graph(handle, len(ids), split, stages, method, max_edges, recompute)
    notes = list(warnings) + list(plan.notes)
    step = progress or (lambda *a: None)
    t0 = time.perf_counter()
    with handle.lock:
        step("forward and backward", 0, 1)
        p, value = _stage_states(handle, plan, ids, choice, name, objective.k, max_edges, notes)
        node_rel = torch.stack([relevance(h, g) for h, g in zip(p.states, p.grads)])  # [S, T]
        check_finite("node relevance", node_rel, handle)
        transitions = []
        for n, (s, t) in enumerate(plan.pairs):
            step("edges", n, len(plan.pairs))
            transitions.append(_transition(handle, plan.layout, p, node_rel, s, t, method, node_threshold,
                                           max_edges, batch, notes, progress))
        dims = [_top((h.float() * g.float()), TOP) for h, g in zip(p.states, p.grads)]
        neurons = [p.neurons[i] for i in sorted(p.neurons)]
    log.info("graph: %d tokens, %d transitions in %.2fs", len(ids), len(transitions), time.perf_counter() - t0)
    step("done", 1, 1)
    return AttributionGraph(
        model=handle.key, tokens=enc.tokens[: pos + 1], token_ids=ids, stages=plan.layout,
        node_relevance=node_rel.numpy().astype(np.float32), transitions=transitions, objective=value,
        rule=handle.rule, notes=notes, target=choice.target.text,
        contrast=choice.contrast.text if choice.contrast else "",
        dims_idx=np.stack([d[0] for d in dims]), dims_val=np.stack([d[1] for d in dims]),
        neurons_idx=np.stack([n[0] for n in neurons]) if len(neurons) == handle.n_layers else None,
        neurons_val=np.stack([n[1] for n in neurons]) if len(neurons) == handle.n_layers else None,
        path=plan.path,
    )


def _adjacent_kind(src: Stage, dst: Stage, split: bool) -> Optional[str]:
    """'attention' / 'mlp' / 'layer' when dst directly follows src, else None (a skip)."""
    if dst.kind == "mid" and src.layer == dst.layer - 1 and src.kind in ("emb", "post"):
        return "attention"
    if dst.kind == "post" and src.kind == "mid" and src.layer == dst.layer:
        return "mlp"
    if dst.kind == "post" and not split and src.kind in ("emb", "post") and src.layer == dst.layer - 1:
        return "layer"
    return None


def _transition(handle, layout, p: _Pass, node_rel, s, t, method, node_threshold, max_edges, batch, notes,
                progress) -> EdgeSet:
    src, dst = layout[s], layout[t]
    split = any(st.kind == "mid" for st in layout)
    kind = _adjacent_kind(src, dst, split)
    if method != "batch_packed" and kind == "mlp":
        return _edge_set(s, t, diagonal_edges(node_rel[s], node_rel[t]), "closed_form")
    if method != "batch_packed" and kind in ("attention", "layer") and dst.layer in p.streamed:
        return _edge_set(s, t, p.streamed.pop(dst.layer), "closed_form")
    if method != "batch_packed" and kind in ("attention", "layer"):
        layer = decoder_layers(handle.model)[dst.layer]
        rec = _layer_record(p, dst.layer)
        why = rec.unsupported
        if why is None:
            try:
                f = _factors(handle, layer, rec)
                edges = attention_edges(f, node_rel[s], node_rel[t], handle.rule, max_edges, chunk_elements(handle))
                return _edge_set(s, t, edges, "closed_form")
            except RuntimeError as e:
                why = str(e)
            finally:
                if p.recompute:
                    rec.release()
        notes.append(f"{src.name} -> {dst.name}: closed form not applicable ({why}); used batch-packed backprop.")
    elif method == "closed_form":
        raise FailureLensError(f"{src.name} -> {dst.name} skips blocks: only batch-packed backprop can compute it.")
    r_dst = node_rel[t].numpy()
    rows = [int(i) for i in np.nonzero(np.abs(r_dst) > node_threshold)[0]]
    if len(rows) < len(r_dst):
        notes.append(f"{src.name} -> {dst.name}: expanded {len(rows)} of {len(r_dst)} targets "
                     f"(|R| > {node_threshold}).")
    n_run = dst.layer - max(src.layer, 0) + 1
    b = batch or choose_batch(handle, len(r_dst), n_run)
    emb, posts = p.states[0], p.posts
    dense = packed_rows(handle, p.records, src, dst, emb, posts, p.grads[t], rows, b, progress) if rows else \
        np.zeros((0, len(r_dst)), np.float32)
    return _edge_set(s, t, _dense_to_sparse(rows, dense, r_dst, max_edges), "batch_packed")
