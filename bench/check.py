"""Causal-check cost: deletion curves (K = 10, 5 seeds) and top-20 node ablation against one heatmap.

Same prompt, same model, CPU time of this process, interleaved (bench/common.py). The curves are timed as
shipped (batched, each row from its first removed token on the cached prefix) and the plain way (every row a
whole forward pass of its own), which shows what the prefix re-use saves.
"""
from __future__ import annotations

from engine import attribute
from engine.cases.ablation import ablate_nodes
from engine.cases.checks import check_attribution, deletion_curves

from .common import default_model, interleaved, machine, prompt_of, timed


def run(model: str | None, quick: bool) -> int:
    handle = default_model(model)
    lengths = (128,) if quick else (128, 512)
    repeats = 2 if quick else 5
    print(f"model {handle.label} ({handle.n_layers} layers, d={handle.model.config.hidden_size}); {machine()}")
    print(f"{'tokens':>7} {'heatmap s':>10} {'curves s':>9} {'rows':>5} {'ratio':>6} {'plain s':>8} "
          f"{'nodes s':>8} {'rows':>5} {'ratio':>6} {'split s':>8} {'rows':>5} {'ratio':>6}   (median CPU seconds)")
    for n in lengths:
        prompt = prompt_of(handle, n)
        att = attribute(handle, prompt)
        t, c = att.target.token_id, att.contrast.token_id
        curves = check_attribution(handle, att, 10, range(5))
        nodes = ablate_nodes(handle, att.token_ids, t, c, top_n=20)
        split = ablate_nodes(handle, att.token_ids, t, c, top_n=20, split=True)
        t_heat, t_curves = interleaved(lambda: attribute(handle, prompt),
                                       lambda: check_attribution(handle, att, 10, range(5)), repeats)
        _, t_nodes = interleaved(lambda: attribute(handle, prompt),
                                 lambda: ablate_nodes(handle, att.token_ids, t, c, top_n=20), repeats)
        t_split = timed(lambda: ablate_nodes(handle, att.token_ids, t, c, top_n=20, split=True), repeats)
        t_one = timed(lambda: deletion_curves(handle.model, handle.tokenizer, att.token_ids, att.relevance, t, c,
                                              att.special_mask, 10, range(5), chunk=1, reuse_prefix=False),
                      max(1, repeats // 2))
        print(f"{len(att.token_ids):>7} {t_heat:>10.4f} {t_curves:>9.4f} {curves.forward_rows:>5} "
              f"{t_curves / t_heat:>6.2f} {t_one:>8.4f} {t_nodes:>8.4f} {nodes.forward_rows:>5} "
              f"{t_nodes / t_heat:>6.2f} {t_split:>8.4f} {split.forward_rows:>5} {t_split / t_heat:>6.2f}")
    print("goals: curves <= 3x the heatmap, top-20 node ablation <= 5x (at 512 tokens)")
    return 0
