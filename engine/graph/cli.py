"""`python -m engine graph --model SRC --prompt TEXT ... --out graph.json`."""
from __future__ import annotations

from pathlib import Path

from .types import DEFAULT_TOP_P


def register(sub, commands, model_args, objective_args, load, token) -> None:
    p = sub.add_parser("graph", help="cross-layer attribution graph (JSON or GraphML)")
    model_args(p)
    objective_args(p)
    p.add_argument("--split", action="store_true", help="add attention/MLP mid-block nodes")
    p.add_argument("--stages", help="comma-separated stage indices (default: all)")
    p.add_argument("--method", default="auto", choices=["auto", "closed_form", "batch_packed"])
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P, help="cumulative-mass pruning applied to the export")
    p.add_argument("--no-prune", action="store_true")
    p.add_argument("--out", required=True, help="output file: .json or .graphml")

    def run(a) -> int:
        from ..files import check_target, write_atomic, write_atomic_text
        from ..objectives import Objective
        from ..records import FailureLensError
        from .build import build_graph
        from .export import to_graphml, write_json
        from .prune import prune
        from .types import PruneSettings

        if not 0.0 < a.top_p <= 1.0:
            raise FailureLensError(f"--top-p {a.top_p} is out of range: use a value in (0, 1].")
        try:
            stages = [int(s) for s in a.stages.split(",")] if a.stages else None
        except ValueError:
            raise FailureLensError(f"--stages {a.stages!r} is not a list of layer numbers; write them like "
                                   "0,3,6 (0 = the embeddings).") from None
        check_target(a.out, "graph")
        objective = Objective(token(a.target), token(a.contrast), a.mode, a.strategy, a.k, a.position)
        g = build_graph(load(a), a.prompt, objective, split=a.split, stages=stages, method=a.method)
        pruned = None if a.no_prune else prune(g, PruneSettings(mode="cum_mass", top_p=a.top_p), stages)
        out = Path(a.out)
        if out.suffix == ".graphml":
            write_atomic(out, to_graphml(g, pruned), "graph")
        else:  # streamed: an unpruned long-prompt graph never exists as one string
            write_atomic_text(out, lambda f: write_json(g, f, pruned), "graph")
        print(f"wrote {out} ({g.n_tokens} tokens, {len(g.transitions)} transitions)")
        for note in g.notes:
            print("note:", note)
        return 0

    commands["graph"] = run
