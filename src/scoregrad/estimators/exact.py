"""Exact expectation by enumerating a finite support.

``E[f(x)] = sum_x p(x) f(x)``: zero variance and exact derivatives of every order. Works for
distributions with ``enumerate_support`` (Bernoulli, Categorical, OneHotCategorical, Binomial) and
``Independent`` products of them, whose support is the Cartesian product of the factors'. ``f``
receives the support points in place of samples: ``(support_size, *batch_shape, *event_shape)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from scoregrad.estimators.base import CostFunction, evaluate_cost, sample_log_prob
from scoregrad.estimators.registry import require
from scoregrad.sampling import Sampler

__all__ = ["Exact", "enumerate_support"]


def enumerate_support(dist: Distribution, max_support: int) -> Tensor:
    """All support points of ``dist``, shape ``(support_size, *batch_shape, *event_shape)``.

    For ``Independent(base, k)`` the support is the product of the ``prod(event dims)`` factors of
    ``base``; its size is ``K ** prod(event dims)``.
    """
    name = type(dist).__name__
    require("exact", dist)
    if isinstance(dist, Independent):
        base = dist.base_dist
        k = dist.reinterpreted_batch_ndims
        batch_shape = dist.batch_shape
        factor_shape = base.batch_shape[len(base.batch_shape) - k :]
        num_factors = factor_shape.numel()
        values = base.enumerate_support(expand=False).reshape(-1, *base.event_shape)  # (K, *base_event)
        size = values.shape[0] ** num_factors
        if size > max_support:
            raise ValueError(
                f"estimator 'exact': {name} has {values.shape[0]}^{num_factors} = {size} support points, more than "
                f"max_support={max_support}; raise max_support or use 'score_function'"
            )
        grid = torch.cartesian_prod(*[torch.arange(values.shape[0])] * num_factors).reshape(size, num_factors)
        points = values[grid]  # (size, num_factors, *base_event)
        points = points.reshape(size, *factor_shape, *base.event_shape)
        view = (size,) + (1,) * len(batch_shape) + tuple(points.shape[1:])
        return points.reshape(view).expand((size,) + tuple(batch_shape) + tuple(points.shape[1:]))
    support = dist.enumerate_support(expand=True)
    if support.shape[0] > max_support:
        raise ValueError(
            f"estimator 'exact': {name} has {support.shape[0]} support points, more than max_support={max_support}; "
            "raise max_support or use 'score_function'"
        )
    return support


class Exact:
    """Sum over the support: ``sum_x p(x) f(x)``, exact in value and in every derivative.

    Args:
        max_support: refuse supports larger than this (each point costs one evaluation of ``f``).
    """

    name = "exact"

    def __init__(self, max_support: int = 4096) -> None:
        self.max_support = max_support

    def __repr__(self) -> str:
        return f"Exact(max_support={self.max_support})"

    def __call__(
        self,
        f: CostFunction,
        dist: Distribution,
        num_samples: int = 1,
        *,
        sampler: Sampler | None = None,
        context: Any = None,
    ) -> Tensor:
        support = enumerate_support(dist, self.max_support)
        log_prob = sample_log_prob(dist, support)
        values = evaluate_cost(f, support, log_prob.shape, log_prob.dtype)
        return (log_prob.exp() * values).sum(0)
