"""Failure Lens engine: contrastive LRP attribution for causal language models (no UI code here)."""
from __future__ import annotations

from .heatmap import attribute
from .models import ModelHandle, load_model
from .records import Attribution, FailureLensError, Fingerprint


def zoo_names() -> list[str]:
    """Names of the built-in zoo models, usable as load_model("zoo:<name>")."""
    from .zoo import zoo_names as names

    return names()


__all__ = ["attribute", "load_model", "ModelHandle", "Attribution", "FailureLensError", "Fingerprint", "zoo_names"]
