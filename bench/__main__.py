"""`python -m bench heatmap` / `python -m bench graph [--quick]` / `python -m bench check [--json]` /
`python -m bench long` / `python -m bench memory [--lengths ...]` / `python -m bench dashboard`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", choices=["heatmap", "graph", "check", "long", "memory", "dashboard"])
    parser.add_argument("--quick", action="store_true", help="shorter prompts, fewer repeats (smoke run)")
    parser.add_argument("--json", action="store_true", help="check: one JSON object per model and prompt length")
    parser.add_argument("--model", default=None, help="model source (default: the largest zoo model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: idle OpenMP threads spin and inflate CPU time)")
    parser.add_argument("--shapes", default="qwen3-0.6b,llama-3.2-1b", help="memory: model shapes")
    parser.add_argument("--lengths", default="512,2048", help="memory: prompt lengths (8192: run by hand, slow)")
    parser.add_argument("--kinds", default="floor,heatmap,graph", help="memory: what to measure")
    parser.add_argument("--recompute", choices=["auto", "on", "off"], default="auto",
                        help="memory: the path (auto: the memory guard picks kept activations or recompute)")
    args = parser.parse_args(argv)
    if args.which == "memory":
        from .memory import run as run_memory

        return run_memory(args.shapes.split(","), [int(n) for n in args.lengths.split(",")], args.kinds.split(","),
                          {"auto": None, "on": True, "off": False}[args.recompute])
    import torch

    torch.set_num_threads(args.threads)
    if args.which == "heatmap":
        from .heatmap import run
    elif args.which == "check":
        from .check import run

        return run(args.model, args.quick, args.json)
    elif args.which == "graph":
        from .graph import run
    elif args.which == "dashboard":
        from .dashboard import run
    else:
        from .long import run
    return run(args.model, args.quick)


if __name__ == "__main__":
    sys.exit(main())
