"""Stage states: one traced forward + backward under the LRP rules, every stage's state and rule gradient.

A stage is a row of `engine.graph.prune.stage_layout(n_layers, split)`: the residual entering layer 0 ("emb"),
between attention and MLP of a layer ("L3.mid", split only), after a layer ("L3"). `stage_pass` returns each
stage's state and gradient ([T, d] each, in that order); x·g summed over d is the stage's relevance row.
The graph (engine.graph.build) and node ablation (engine.cases.ablation) both read their nodes from it.

Mid states come from the trace (kept activations), from a per-layer recompute (gradient checkpointing: the
layer re-runs on its input and output gradient, its tensors released after), or from an `EdgeStream` that
built them inside the backward. `hooks`: more hooks for the same pass (a context manager entered around it).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Optional

import numpy as np
import torch

from ..models import ModelHandle
from ..trace import Trace, run_trace
from .capture import Recorder

NeuronTop = Callable[[torch.Tensor, torch.Tensor], tuple[np.ndarray, np.ndarray]]


@dataclass
class StagePass:
    """Per stage [T, d] states and rule gradients (stage_layout order), the trace and the pass's recorder."""

    states: list[torch.Tensor]
    grads: list[torch.Tensor]
    trace: Trace
    recorder: Recorder
    neurons: dict = field(default_factory=dict)  # layer -> neuron_top of the MLP inner activation (recompute path)


def stage_pass(handle: ModelHandle, ids: list[int], pick: Any, objective: str, k: int = 10, split: bool = False,
               recompute: bool = False, attention: bool = True, inner: bool = True, stream: Any = None,
               neuron_top: Optional[NeuronTop] = None, hooks: Optional[ContextManager] = None,
               recorder: Optional[Recorder] = None) -> StagePass:
    """One traced pass (`run_trace(handle, ids, pick, objective, k)`) and every stage's state and gradient.

    attention: record each layer's attention for the closed-form edges (`Recorder.attention`); inner: keep the
    MLP inner activations (neuron drill-down); stream: an `EdgeStream` that records attention and builds the
    mid states in the backward (recompute path), on `recorder`'s records. neuron_top(x, g): top neurons of a
    recomputed layer.
    """
    recorder = recorder or Recorder(handle)
    capture = stream.attention if stream else (recorder.attention if attention and not recompute else None)
    with recorder.hooks(inner=inner and not recompute, attn_calls=stream is None), \
            stream.hooks() if stream else contextlib.nullcontext(), hooks or contextlib.nullcontext():
        trace, _, _ = run_trace(handle, ids, pick, objective, k, capture_mid=split and not recompute,
                                attention_capture=capture, recompute=recompute)
    first = recorder.records[0]
    h0 = first.layer_args[0] if first.layer_args else first.layer_kwargs["hidden_states"]
    states, grads = [h0.detach()[0]], [h0.grad.detach()[0]]
    neurons: dict = {}
    for layer in range(handle.n_layers):
        if split:
            if stream is not None:
                h, g = stream.mids.pop(layer)
            elif recompute:
                rec = recorder.recompute(layer, states[-1], trace.post_grads[layer], mid=True)
                h, g = rec.mid.detach()[0], rec.mid.grad.detach()[0]
                if neuron_top is not None:
                    neurons[layer] = neuron_top(rec.mlp_in.detach()[0], rec.mlp_in.grad[0])
                rec.release()
            else:
                h, g = trace.mids[layer], trace.mid_grads[layer]
            states.append(h)
            grads.append(g)
        states.append(trace.posts[layer])
        grads.append(trace.post_grads[layer])
    return StagePass(states, grads, trace, recorder, neurons)
