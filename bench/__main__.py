"""`python -m bench heatmap` / `python -m bench graph [--quick]`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", choices=["heatmap", "graph"])
    parser.add_argument("--quick", action="store_true", help="shorter prompts, fewer repeats (smoke run)")
    parser.add_argument("--model", default=None, help="model source (default: the largest zoo model)")
    args = parser.parse_args(argv)
    if args.which == "heatmap":
        from .heatmap import run
    else:
        from .graph import run
    return run(args.model, args.quick)


if __name__ == "__main__":
    sys.exit(main())
