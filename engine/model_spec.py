"""How to load one model: `ModelSpec`, the dashboard's model entry (`param()` is its URL / cache form, `parse` its
inverse) and a sweep or study config's `models:` entry (engine.runs.config reads it from YAML).

No torch import here: configs and the dashboard's state read it without loading the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from .records import FailureLensError


@dataclass(frozen=True)
class ModelSpec:
    """source: zoo:<name>, a local folder or a hub id. The Literal types are a config's choices (a test keeps
    dtype equal to engine.models.DTYPES and rule to engine.lrp.context.RULES)."""

    source: str
    label: str = ""  # a sweep's short name for the model (unique there; defaults to the last part of source)
    revision: Optional[str] = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    quantize: Optional[Literal["4bit"]] = None
    # the dashboard's per-model rule; a sweep config sets one `rule` for all its models, so not a models: key
    rule: Literal["attnlrp", "cp-lrp"] = field(default="attnlrp", metadata={"config": False})

    def param(self) -> str:
        opts = [("rev", self.revision), ("dtype", None if self.dtype == "auto" else self.dtype),
                ("q", self.quantize), ("rule", None if self.rule == "attnlrp" else self.rule)]
        return ";".join([self.source.strip()] + [f"{k}={v}" for k, v in opts if v])

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        source, *opts = str(text).split(";")
        if not source.strip():
            raise FailureLensError("A model entry is empty. Pick a zoo model, a local folder or a hub id.")
        kw: dict[str, Any] = {}
        names = {"rev": "revision", "dtype": "dtype", "q": "quantize", "rule": "rule"}
        for opt in opts:
            k, _, v = opt.partition("=")
            if k not in names or not v:
                raise FailureLensError(f"Unknown model option {opt!r} in {text!r}. Use rev=, dtype=, q=4bit or rule=.")
            kw[names[k]] = v
        return cls(source.strip(), **kw)

    @property
    def title(self) -> str:
        """For people: the source with its options, e.g. "zoo:l (bfloat16, CP-LRP)"."""
        extra = [x for x in (self.revision and f"@{self.revision}", self.dtype != "auto" and self.dtype,
                             self.quantize, self.rule != "attnlrp" and "CP-LRP") if x]
        return self.source + (f" ({', '.join(extra)})" if extra else "")

    @property
    def zoo_name(self) -> Optional[str]:
        return self.source[4:] if self.source.startswith("zoo:") else None
