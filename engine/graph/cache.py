"""A thread-safe LRU cache of AttributionGraphs bounded by the bytes of their numpy arrays.

The key names everything that changes the numbers (model fingerprint, token ids, objective, rule, stages,
split), so a new prompt or model can never hit a stale graph. Pruning needs no key: it re-runs on the hit.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Optional

from engine.graph.types import AttributionGraph

KEY_VERSION = 1  # bump when the graph format changes, so old keys stop hitting


def nbytes(graph: AttributionGraph) -> int:
    """Sum of the numpy array sizes of a graph (node relevance and every transition's arrays)."""
    total = graph.node_relevance.nbytes
    for tr in graph.transitions:
        for a in (tr.src_tok, tr.dst_tok, tr.weight, tr.absorbed, tr.heads, tr.paths):
            total += 0 if a is None else a.nbytes
    return int(total)


def _canon(x):
    if dataclasses.is_dataclass(x):
        return dataclasses.asdict(x)
    if isinstance(x, (list, tuple)):
        return [_canon(v) for v in x]
    return int(x) if hasattr(x, "__index__") and not isinstance(x, bool) else x


def graph_key(model_fingerprint: str, token_ids: list[int], objective: str, rule: str, stages: tuple,
              split: bool) -> str:
    """sha256 hex of canonical JSON (sorted keys, no spaces) of the arguments. Stage order counts as given."""
    doc = {"v": KEY_VERSION, "model": model_fingerprint, "token_ids": _canon(list(token_ids)),
           "objective": objective, "rule": rule, "stages": _canon(list(stages)), "split": bool(split)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class GraphCache:
    """LRU by bytes: `put` evicts least recently used graphs until the total fits `max_bytes`.

    A graph larger than max_bytes on its own is not stored (put returns False). `get` returns the very
    object that was put (graphs are frozen records; callers must not mutate their arrays).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[AttributionGraph, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[AttributionGraph]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, graph: AttributionGraph) -> bool:
        size = nbytes(graph)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return False
            self._items[key] = (graph, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, freed) = self._items.popitem(last=False)
                self._bytes -= freed
            return True

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
