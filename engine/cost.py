"""What a heatmap will cost in seconds, said before it starts (long prompts).

The work is counted from the model's shape with the memory guard's choice of path (engine.memory.check_memory):
  forward of one layer over T tokens (causal attention)
      = 2 T d (a + 2 kv) + 2 T a d      q, k, v, o projections
      + 2 a T (T + 1)                   scores and weighted values over the causal half
      + 2 T d ffn * 3                   gate, up and down of the MLP
  attribution = FORWARD_BACKWARD forwards of the linear part, ATTENTION_PASSES of the attention part (the
  rules hold the attention weights constant, so the backward skips the scores), plus RECOMPUTE forwards of both
  with per-layer recompute.
Seconds = passes * layers * overhead + flop / rate. The rate and the per-layer overhead come from two timed
forwards on the loaded model (`calibrate`; a finished long heatmap's own speed afterwards, `observed`), or from a
stored constant per device kind (`stored_rate`) where timing a forward would itself be slow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from .memory import check_memory, model_shape
from .models import ModelHandle
from .records import FailureLensError

FORWARD_BACKWARD = 3.0  # an attribution: one forward and a backward through the rules (about two forwards)
ATTENTION_PASSES = 1.5  # the attention part: forward (scores, values) and the values' backward only
RECOMPUTE = 1.0  # per-layer recompute runs each layer's forward once more during the backward
STORED_FLOPS = {"cpu": 8e9, "cuda": 5e12, "mps": 1e12}  # flop/s of one forward (float32), measured by hand
STORED_OVERHEAD = {"cpu": 2e-3, "cuda": 2e-4, "mps": 1e-3}  # seconds per layer and pass that do not scale with T
CALIBRATION_TOKENS = (64, 128, 256, 512, 1024)  # the longest whose forward fits CALIBRATION_SECONDS is timed
CALIBRATION_SECONDS = 0.25
REPEATS = 2


@dataclass(frozen=True)
class Rate:
    """How fast this model runs: flop per second and a fixed cost per layer and pass; `source` in words."""
    flops: float
    overhead: float
    source: str


@dataclass(frozen=True)
class Cost:
    tokens: int
    layers: int
    path: str  # "kept" or "recompute" (the memory guard's choice)
    flop: float  # of the whole attribution
    seconds: float
    rate: Rate

    def sentence(self) -> str:
        """The estimate in words, with why (shown before a long heatmap starts)."""
        how = "per-layer recompute" if self.path == "recompute" else "kept activations"
        return (f"This prompt has {self.tokens:,} tokens: its heatmap takes about {_seconds(self.seconds)} "
                f"({self.tokens:,} tokens through {self.layers} layers, a forward and a backward pass, {how}; "
                f"attention grows with the square of the length). Speed {self.rate.source}.")


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def layer_flop(d: int, attn: int, kv: int, ffn: int, tokens: int) -> tuple[float, float]:
    """(linear, attention) flop of one layer's forward over `tokens` tokens (causal; see the module docstring)."""
    t = tokens
    return 2 * t * d * (attn + 2 * kv) + 2 * t * attn * d + 6 * t * d * ffn, 2 * attn * t * (t + 1)


def _shape(handle: ModelHandle) -> tuple[int, int, int, int]:
    return model_shape(handle.model.config)


def work(linear: float, attention: float, recompute: bool) -> tuple[float, float]:
    """(passes, flop) of an attribution whose forward is `linear` + `attention` flop."""
    extra = RECOMPUTE if recompute else 0.0
    return FORWARD_BACKWARD + extra, (FORWARD_BACKWARD + extra) * linear + (ATTENTION_PASSES + extra) * attention


def seconds(flop: float, layers: int, n_passes: float, rate: Rate) -> float:
    """passes * layers * overhead + flop / rate."""
    return n_passes * layers * rate.overhead + flop / rate.flops


def stored_rate(device: torch.device) -> Rate:
    kind = device.type if device.type in STORED_FLOPS else "cpu"
    return Rate(STORED_FLOPS[kind], STORED_OVERHEAD[kind], f"from the stored rate for {kind.upper()} (not measured)")


def _forward_flop(handle: ModelHandle, tokens: int) -> float:
    return handle.n_layers * sum(layer_flop(*_shape(handle), tokens))


def calibration_sizes(handle: ModelHandle) -> Optional[tuple[int, int]]:
    """Two prompt lengths whose forwards take at most CALIBRATION_SECONDS each by the stored rate (longer ones
    weigh the attention better); None when even the shortest would take longer (a large model on a CPU)."""
    rate = stored_rate(handle.device)
    fits = [n for n in CALIBRATION_TOKENS
            if seconds(_forward_flop(handle, n), handle.n_layers, 1.0, rate) <= CALIBRATION_SECONDS]
    return (fits[-1] // 8, fits[-1]) if fits else None


def calibrate(handle: ModelHandle, sizes: Optional[tuple[int, int]] = None) -> Rate:
    """Rate and per-layer overhead from two timed forwards (no gradients) of `sizes` tokens on the loaded model
    (default: `calibration_sizes`); the stored rate when timing would itself take too long."""
    sizes = sizes or calibration_sizes(handle)
    if sizes is None:
        return stored_rate(handle.device)
    ids = [int(handle.tokenizer.bos_token_id or 0)] * max(sizes)
    times = []
    with handle.lock, torch.no_grad():
        for n in sizes:
            x = torch.tensor([ids[:n]], device=handle.device)
            best = float("inf")
            for _ in range(REPEATS):  # the fastest of a few: a busy machine only ever adds time
                t0 = time.perf_counter()
                handle.model(input_ids=x, logits_to_keep=1, use_cache=False)
                if handle.device.type == "cuda":
                    torch.cuda.synchronize(handle.device)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
    flop = [_forward_flop(handle, n) for n in sizes]
    slope = (times[1] - times[0]) / (flop[1] - flop[0])
    if slope <= 0:  # noise on a tiny model: the larger forward alone
        slope = times[1] / flop[1]
    overhead = max(0.0, times[0] - flop[0] * slope) / handle.n_layers
    return Rate(1.0 / slope, overhead, f"measured on this model ({sizes[0]}- and {sizes[1]}-token forwards)")


def observed(cost: Cost, elapsed: float) -> Rate:
    """The speed a finished heatmap showed (its work over its time): the best estimate for the next one."""
    return Rate(cost.flop / max(elapsed, 1e-9), 0.0, f"measured on this model's last long heatmap "
                f"({cost.tokens:,} tokens in {elapsed:.0f} s)")


def estimate_seconds(handle: ModelHandle, tokens: int, rate: Optional[Rate] = None) -> Cost:
    """What a heatmap of `tokens` tokens costs on `handle`, on the path the memory guard will choose (when nothing
    fits, the recompute path: the run itself then says why it cannot run)."""
    try:
        recompute = check_memory(handle, tokens, "heatmap").recompute
    except FailureLensError:
        recompute = True
    rate = rate or stored_rate(handle.device)
    d, a, kv, ffn = _shape(handle)
    layers = handle.n_layers
    linear, attention = layer_flop(d, a, kv, ffn, tokens)
    n, flop = work(layers * linear, layers * attention, recompute)
    return Cost(tokens, layers, "recompute" if recompute else "kept", flop, seconds(flop, layers, n, rate), rate)
