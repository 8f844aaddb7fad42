"""Pathwise nodes: reparameterised samples, differentiated through (no terms of their own)."""

from __future__ import annotations

from scoregrad.estimators.registry import require
from scoregrad.scg.node import Node

__all__ = ["PathwiseNode", "RelaxationNode"]


class PathwiseNode(Node):
    kind = "pathwise"

    def draw(self, num_samples: int | None) -> None:
        require("pathwise", self.dist, where=f"node {self.name!r}: ")
        plate, self.shape = self._sample_shape(num_samples)
        self.value = self.dist.rsample(plate)
        self.plate = "mean" if num_samples else None


class RelaxationNode(Node):
    """Straight-through / Gumbel-softmax: relaxed samples from the core's relaxation, biased."""

    def draw(self, num_samples: int | None) -> None:
        from scoregrad.estimators.discrete import relaxed_sample

        _, self.shape = self._sample_shape(num_samples)
        relaxed, hard = relaxed_sample(self.dist, num_samples or 1, self.config.temperature, self.config.name)
        value = self.config.relaxed_input(relaxed, hard)
        self.value = value if num_samples is not None else value.squeeze(0)
        self.plate = "mean" if num_samples else None
