"""Dependency tracking: which stochastic nodes each tensor made inside ``with sg.graph()`` came from.

While the block is open a :class:`torch.overrides.TorchFunctionMode` sees every torch operation and
tags each output with the set of stochastic nodes its inputs came from (a bit mask), so integer
samples used as indices, thresholds, ``argmax`` and ``torch.where`` all keep their tags. A sample's
tag includes its ancestors' (found from its distribution's parameters), so dependence is transitive.
"""

from __future__ import annotations

import weakref
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = ["DependencyTracker", "distribution_mask"]


class DependencyTracker(TorchFunctionMode):
    """Tags every tensor produced by a torch op with the union of its inputs' node masks.

    Masks are ints (bit ``i`` = node ``i``), kept in a side table keyed by ``id`` with a weak
    reference to check identity, so samples stay plain tensors and nothing leaks after the graph.
    """

    def __init__(self) -> None:
        super().__init__()
        self._masks: dict[int, tuple[weakref.ref, int]] = {}

    def mask_of(self, obj: Any, depth: int = 0) -> int:
        if isinstance(obj, Tensor):
            entry = self._masks.get(id(obj))
            return entry[1] if entry is not None and entry[0]() is obj else 0
        if depth < 3 and isinstance(obj, (list, tuple)):
            mask = 0
            for item in obj:
                mask |= self.mask_of(item, depth + 1)
            return mask
        if depth < 3 and isinstance(obj, dict):
            return self.mask_of(list(obj.values()), depth + 1)
        return 0

    def mark(self, obj: Any, mask: int, depth: int = 0) -> None:
        if isinstance(obj, Tensor):
            self._masks[id(obj)] = (weakref.ref(obj), mask | self.mask_of(obj))
        elif depth < 3 and isinstance(obj, (list, tuple)):
            for item in obj:
                self.mark(item, mask, depth + 1)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._masks:
            mask = self.mask_of(args) | self.mask_of(kwargs)
            if mask:
                self.mark(out, mask)
                if getattr(func, "__name__", "") == "__setitem__" and args:
                    self.mark(args[0], mask)
                if "out" in kwargs:
                    self.mark(kwargs["out"], mask)
        return out


def distribution_mask(tracker: DependencyTracker, obj: Any, depth: int = 0) -> int:
    """Nodes that a distribution's parameters depend on.

    Walks the tensors in its ``__dict__`` and, a few levels deep, the objects it holds: the base of
    ``Independent`` and ``TransformedDistribution``, transforms and their parameters, mixtures.
    """
    if isinstance(obj, Tensor):
        return tracker.mask_of(obj)
    if depth > 4:
        return 0
    if isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, (nn.Module, type)):
        items = list(vars(obj).values())
    else:
        return 0
    mask = 0
    for item in items:
        mask |= distribution_mask(tracker, item, depth + 1)
    return mask
