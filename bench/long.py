"""Long prompts: the server's share of a pruning-slider move on a ~4k-token graph with supernodes, against the same
move on the token-level graph; the cost of grouping; what the browser is sent.

A slider move re-runs the Graph page's fragment: prune (with the 80-node cap) + the drawing's data (render.graph_data).
The graph itself and its grouping are cached, so they are timed separately (they run when the prompt or the grouping
changes, not on a slider move). Times are wall-clock medians in one process (single-threaded numpy).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace

from engine.cases.segments import assign_segments
from engine.graph.build import build_graph
from engine.graph.prune import prune
from engine.graph.supernodes import group_graph, node_cap_threshold
from engine.graph.types import PruneSettings
from engine.objectives import Objective
from engine.present.render import graph_data
from engine.token_groups import group_tokens, pieces, snippet
from engine.tokens import encode_prompt

from .common import default_model, machine, timed

CAP = 80


def _case(n_tokens: int):
    """The largest zoo model's failure whose prompt length is closest to n_tokens."""
    from engine import zoo

    name = zoo.zoo_sizes()[-1]
    handle = default_model(f"zoo:{name}")
    sized = [(len(handle.tokenizer(f.prompt)["input_ids"]), f) for f in zoo.load_failures(name)]
    return handle, min(sized, key=lambda x: abs(x[0] - n_tokens))[1]


def _move(graph, top_p: float, cap: bool):
    """One slider move: prune at top_p (node cap as the page applies it) and build the drawing's data."""
    stages = list(range(len(graph.stages)))
    settings = PruneSettings(top_p=top_p, edge_threshold=0.0, connected_to=(-1, -1), hide_first_token=True)
    if cap:
        settings = replace(settings, node_threshold=node_cap_threshold(graph, stages, CAP))
    return graph_data(graph, prune(graph, settings, stages))


def run(model: str | None, quick: bool) -> int:
    handle, case = _case(1000 if quick else 4096)
    print(f"model {handle.label}; case {case.case_id}; {machine()}")
    t0 = time.perf_counter()
    graph = build_graph(handle, case.prompt, Objective(target=f"#{case.target_id}", contrast=f"#{case.contrast_id}"))
    t_build = time.perf_counter() - t0
    enc = encode_prompt(handle.tokenizer, case.prompt)
    labels = assign_segments(enc.offsets, dict(case.segments), enc.special)
    piece = pieces(case.prompt, enc.offsets, enc.tokens)
    groups = group_tokens("segments", piece, enc.special, labels)
    groups = replace(groups, texts=tuple(snippet(t, 40) for t in groups.texts))
    repeats = 3 if quick else 7
    t_group = timed(lambda: group_graph(graph, groups), repeats, clock=time.perf_counter)
    grouped = group_graph(graph, groups)
    print(f"{graph.n_tokens} tokens; graph built in {t_build:.1f} s (once per prompt); "
          f"segment supernodes: {groups.n_groups} groups, grouping {t_group * 1000:.0f} ms (once per grouping)")
    print(f"{'view':<34} {'slider move (server) ms':>24} {'nodes':>6} {'edges':>6} {'payload KB':>11}")
    # the token-level graph without the cap is left out: at 4k tokens its drawing holds tens of thousands of edges,
    # and building them one by one (pyvis) takes minutes
    rows = [("token nodes, 80-node cap", graph, True), ("segment supernodes, no cap", grouped, False),
            ("segment supernodes, 80-node cap", grouped, True)]
    times = {}
    for label, g, cap in rows:
        t = timed(lambda: _move(g, 0.75, cap), repeats, clock=time.perf_counter)
        data = _move(g, 0.75, cap)
        nodes = sum(1 for n in data["nodes"] if not str(n["id"]).startswith("row:"))
        times[label] = t
        print(f"{label:<34} {t * 1000:>24.1f} {nodes:>6} {len(data['edges']):>6} "
              f"{len(json.dumps(data)) / 1024:>11.1f}")
    ratio = times["token nodes, 80-node cap"] / times["segment supernodes, 80-node cap"]
    print(f"token nodes / segment supernodes (both capped): {ratio:.1f}x the server time per slider move")
    return 0
