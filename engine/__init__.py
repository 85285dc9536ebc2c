"""Failure Lens engine: contrastive LRP attribution for causal language models (no UI code here).

Heavy modules (torch, transformers) load lazily, so `import engine.runs.store` stays fast.
Importing `engine` tunes the C allocator to return freed tensor memory to the system (`allocator.py`).
"""
from __future__ import annotations

from typing import Any

from . import allocator
from .objectives import Objective
from .records import Attribution, FailureLensError, Fingerprint

allocator.tune()

_LAZY = {"attribute": ("heatmap", "attribute"), "load_model": ("models", "load_model"),
         "ModelHandle": ("models", "ModelHandle"), "build_graph": ("graph.build", "build_graph")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def zoo_names() -> list[str]:
    """Names of the built-in zoo models, usable as load_model("zoo:<name>")."""
    from .zoo import zoo_names as names

    return names()


__all__ = ["attribute", "load_model", "build_graph", "ModelHandle", "Attribution", "FailureLensError",
           "Fingerprint", "Objective", "zoo_names"]
