"""Scoped PyTorch hooks: every handle registered inside the block is removed when it ends, whatever happens."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch.utils.hooks import RemovableHandle


class HookSet:
    """The handles of one `scoped_hooks` block; `add` returns the handle for chaining."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def add(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle


@contextlib.contextmanager
def scoped_hooks() -> Iterator[HookSet]:
    """`with scoped_hooks() as hooks: hooks.add(module.register_forward_hook(f)); ...` — removed in `finally`."""
    hooks = HookSet()
    try:
        yield hooks
    finally:
        for handle in reversed(hooks._handles):
            handle.remove()
