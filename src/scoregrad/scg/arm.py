"""ARM and DisARM nodes: antithetic pairs of Bernoulli samples, the core's pair and weight (no second ARM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from scoregrad.estimators.discrete import bernoulli_logits, pair_gradient, uniform_like
from scoregrad.scg.node import Node
from scoregrad.surrogate import inject_gradient

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["ARMNode"]


class ARMNode(Node):
    kind = "arm"

    def draw(self, num_samples: int | None) -> None:
        self.logits = bernoulli_logits(self.dist, self.config.name)
        if num_samples is None or num_samples < 2 or num_samples % 2:
            raise ValueError(
                f"node {self.name!r}: estimator {self.config.name!r} evaluates antithetic pairs: num_samples must "
                f"be even and >= 2, got {num_samples}"
            )
        self.pairs = num_samples // 2
        u = uniform_like((self.pairs, *self.logits.shape), self.logits)
        first, second, self.pair_weight = self.config.antithetic_pair(self.logits.detach(), u)
        self.value = torch.cat([first, second], 0)
        _, self.shape = self._sample_shape(num_samples)
        self.plate = "mean"

    def terms(self, credit: Credit) -> Tensor:
        batch_ndim = len(self.dist.batch_shape)
        gradient = pair_gradient(credit.values(self), self.pair_weight, self.logits.dim() - batch_ndim)
        return credit.finish(self, inject_gradient(self.logits, gradient, batch_ndim), own_plate=False)
