"""Exactly enumerated nodes: the support, weighted by ``p(x)`` (exact at every order)."""

from __future__ import annotations

from scoregrad.estimators.exact import enumerate_support
from scoregrad.scg.node import Node

__all__ = ["ExactNode"]


class ExactNode(Node):
    kind = "exact"

    def draw(self, num_samples: int | None) -> None:
        if num_samples is not None:
            raise ValueError(
                f"node {self.name!r}: 'exact' enumerates the support; leave num_samples=None (got {num_samples})"
            )
        self.value = enumerate_support(self.dist, self.config.max_support)
        self.log_prob = self.dist.log_prob(self.value)
        self.shape, self.plate, self.weight = self.log_prob.shape, "sum", self.log_prob.exp()
