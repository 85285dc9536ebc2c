"""Heatmap cost: `attribute` (rules on) vs a plain forward + backward (Input x Gradient, rules off)."""
from __future__ import annotations

from engine import attribute
from engine.trace import run_trace

from .common import default_model, interleaved, machine, prompt_of


def run(model: str | None, quick: bool) -> int:
    handle = default_model(model)
    lengths = (64, 128) if quick else (128, 512, 2048)
    repeats = 2 if quick else 5
    print(f"model {handle.label} ({handle.n_layers} layers, d={handle.model.config.hidden_size}); {machine()}")
    print(f"{'tokens':>7} {'plain s':>9} {'attribute s':>12} {'ratio':>6}   (median CPU seconds)")
    for n in lengths:
        prompt = prompt_of(handle, n)
        ids = handle.tokenizer(prompt)["input_ids"]

        def plain():
            run_trace(handle, ids, lambda logits: (int(logits.argmax()), None), "max_logit", rules=False)

        def lrp():
            attribute(handle, prompt)

        t_plain, t_lrp = interleaved(plain, lrp, repeats)
        print(f"{len(ids):>7} {t_plain:>9.4f} {t_lrp:>12.4f} {t_lrp / t_plain:>6.2f}")
    return 0
