"""Scratch memory reused from step to step, so the hot loops allocate nothing."""

from __future__ import annotations

import math

import numpy as np


class Workspace:
    """Named scratch arrays. get() hands out a view of a buffer at least as large as asked for
    (lines-mode batches vary in length): callers must not keep what it returns past the next
    call with the same name. child(prefix) is a workspace of its own for one layer."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}
        self._children: dict[str, Workspace] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)

    def child(self, prefix: str) -> Workspace:
        if prefix not in self._children:
            self._children[prefix] = Workspace()
        return self._children[prefix]


def scratch(workspace: Workspace | None, name: str, shape, dtype) -> np.ndarray:
    """A reusable buffer from workspace, or a fresh array when there is none."""
    return np.empty(shape, dtype=dtype) if workspace is None else workspace.get(name, shape, dtype)
