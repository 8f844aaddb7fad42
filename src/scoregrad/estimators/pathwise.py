"""Pathwise estimator (reparameterisation trick).

``x = g(eps; theta)`` with ``eps`` independent of ``theta``, so
``d/dtheta E[f(x)] = E[f'(x) dx/dtheta]`` (Kingma & Welling, 2014; Rezende et al., 2014). Needs
``rsample`` and a differentiable ``f``; usually far lower variance than the score function.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from scoregrad.estimators.base import CostFunction, check_num_samples, evaluate_cost
from scoregrad.estimators.registry import require
from scoregrad.sampling import Sampler

__all__ = ["Pathwise"]


class Pathwise:
    """Reparameterisation gradients: differentiate ``f`` through ``dist.rsample``."""

    name = "pathwise"

    def __repr__(self) -> str:
        return "Pathwise()"

    def __call__(
        self, f: CostFunction, dist: Distribution, num_samples: int, *, sampler: Sampler, context: Any = None
    ) -> Tensor:
        check_num_samples(num_samples, self.name)
        require(self.name, dist)
        samples = sampler.sample(dist, num_samples, reparameterized=True)
        values = evaluate_cost(f, samples, torch.Size([num_samples]) + dist.batch_shape, samples.dtype)
        if samples.requires_grad and not values.requires_grad:
            raise ValueError(
                "estimator 'pathwise' needs f to be differentiable in x, but f's output carries no gradient "
                "(a threshold, .item(), numpy or an integer cast?). Use estimator='score_function' for a black-box f"
            )
        return values.mean(0)
