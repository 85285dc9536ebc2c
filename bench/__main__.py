"""`python -m bench heatmap` / `python -m bench graph [--quick]` / `python -m bench check` / `python -m bench long`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", choices=["heatmap", "graph", "check", "long"])
    parser.add_argument("--quick", action="store_true", help="shorter prompts, fewer repeats (smoke run)")
    parser.add_argument("--model", default=None, help="model source (default: the largest zoo model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: idle OpenMP threads spin and inflate CPU time)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.which == "heatmap":
        from .heatmap import run
    elif args.which == "check":
        from .check import run
    elif args.which == "graph":
        from .graph import run
    else:
        from .long import run
    return run(args.model, args.quick)


if __name__ == "__main__":
    sys.exit(main())
