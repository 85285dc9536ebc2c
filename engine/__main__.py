"""Command line: `python -m engine COMMAND ...`; `python -m engine --help` lists every command (the README's
"Command line" section lists the same ones, a test compares them)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .records import FailureLensError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _token(value: str | None):
    """'#123' or a bare integer is a token id; anything else is token text."""
    from .tokens import token_id_of

    if value is None:
        return None
    tid = token_id_of(value, bare=True)
    return value if tid is None else tid


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="zoo:<name>, a local folder, or a hub id")
    p.add_argument("--revision")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--4bit", dest="quantize", action="store_const", const="4bit")
    p.add_argument("--rule", default="attnlrp", choices=["attnlrp", "cp-lrp"])
    p.add_argument("--device", default="auto")
    p.add_argument("--trust-remote-code", action="store_true")


def _objective_args(p: argparse.ArgumentParser, prompt_required: bool = True) -> None:
    p.add_argument("--prompt", required=prompt_required)
    p.add_argument("--target")
    p.add_argument("--contrast")
    p.add_argument("--mode", default="logit_diff", choices=["logit_diff", "max_logit"])
    p.add_argument("--strategy", default="by_ref_token", choices=["by_ref_token", "by_topk_avg", "demean"])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--position", type=int, default=-1)


def _load(a: argparse.Namespace):
    from .models import load_model

    return load_model(a.model, revision=a.revision, dtype=a.dtype, quantize=a.quantize, rule=a.rule,
                      device=a.device, trust_remote_code=a.trust_remote_code)


def cmd_attribute(a: argparse.Namespace) -> int:
    from .heatmap import attribute
    from .objectives import Objective

    objective = Objective(_token(a.target), _token(a.contrast), a.mode, a.strategy, a.k, a.position)
    res = attribute(_load(a), a.prompt, objective)
    if a.json:
        print(res.to_json())
        return 0
    print(f"target {res.target.text!r}  contrast {res.contrast.text if res.contrast else '-'!r}  "
          f"objective {res.objective:.4f}  conservation {res.conservation:.3f}")
    for tok, r in zip(res.tokens, res.relevance):
        print(f"{r:+10.4f}  {tok!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Failure Lens engine")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("attribute", help="per-token contrastive relevance")
    _model_args(p)
    _objective_args(p)
    p.add_argument("--json", action="store_true")
    COMMANDS["attribute"] = cmd_attribute
    for register in _extensions():
        register(sub, COMMANDS, _model_args, _objective_args, _load, _token)
    return parser


def _extensions():
    """The `register` functions of the sub-commands that live beside their modules (each wing's cli.py)."""
    import importlib

    found = []
    for name in ("engine.graph.cli", "engine.runs.cli", "engine.runs.study_cli", "engine.cases.cli",
                 "engine.cases.case_cli", "engine.compare.cli", "engine.present.cli"):
        try:
            found.append(importlib.import_module(name).register)
        except ModuleNotFoundError:
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return COMMANDS[args.command](args)
    except FailureLensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
