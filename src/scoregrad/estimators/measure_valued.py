"""Measure-valued gradient estimator (weak derivatives).

The derivative of a density with respect to one parameter is written as a scaled difference of two
densities, ``d p(x; theta) / d theta = c (p+(x) - p-(x))``, so
``d/dtheta E_p[f] = c (E_{p+}[f] - E_{p-}[f])`` (Pflug, 1989; Heidergott & Vazquez-Abad, 2000;
Mohamed, Rosca, Figurnov & Mnih, 2020, §6). ``f`` is a black box, evaluated at the samples of both
measures; the two are coupled with common random numbers, which is what keeps the variance low.

Supported, per scalar coordinate (and ``Independent`` products, one coordinate at a time):

=============  =========  ==========================================  ===============================
family         parameter  positive / negative part                    coupling
=============  =========  ==========================================  ===============================
Normal         loc        mu + sigma W, mu - sigma W, W ~ Weibull(√2,2)  same W;  c = 1 / (sigma √(2π))
Normal         scale      mu + sigma M (double-sided Maxwell),         same M, U ~ Uniform;  c = 1 / sigma
                          mu + sigma M U  (= Normal)
Bernoulli      probs      x = 1, x = 0                                 the other coordinates shared; c = 1
Categorical    probs      x = k (for each class k)                     the other coordinates shared; c = 1
=============  =========  ==========================================  ===============================

``num_samples`` counts draws of the coupled pairs. Each draw evaluates ``f`` once at the plain sample
(for the value) and twice per coordinate and parameter (``K`` times per coordinate for Categorical).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from scoregrad.estimators.base import CostFunction, base_distribution, check_num_samples, evaluate_cost
from scoregrad.estimators.registry import require
from scoregrad.sampling import Sampler
from scoregrad.surrogate import inject_gradient

__all__ = ["MeasureValued", "double_sided_maxwell", "weibull_pair"]


def weibull_pair(shape: torch.Size, like: Tensor) -> Tensor:
    """``W ~ Weibull(scale=√2, concentration=2)``: ``|x - mu| / sigma`` under the loc derivative's parts."""
    u = torch.rand(shape, dtype=like.dtype, device=like.device)
    return torch.sqrt(-2.0 * torch.log1p(-u))


def double_sided_maxwell(shape: torch.Size, like: Tensor) -> Tensor:
    """Standard double-sided Maxwell: density ``x^2 exp(-x^2/2) / √(2π)``, a random sign times a chi(3)."""
    chi = torch.randn((3, *shape), dtype=like.dtype, device=like.device).norm(dim=0)
    sign = torch.where(torch.rand(shape, device=like.device) < 0.5, -1.0, 1.0).to(like.dtype)
    return sign * chi


class MeasureValued:
    """Measure-valued derivatives for Normal, Bernoulli and Categorical variables.

    Args:
        coupled: share the random numbers between the positive and negative parts (the default, and
            the reason the estimator has low variance). ``False`` draws them independently, for
            comparison; both are unbiased.
    """

    name = "measure_valued"

    def __init__(self, coupled: bool = True) -> None:
        self.coupled = coupled

    def __repr__(self) -> str:
        return f"MeasureValued(coupled={self.coupled})"

    def __call__(
        self,
        f: CostFunction,
        dist: Distribution,
        num_samples: int,
        *,
        sampler: Sampler | None = None,
        context: Any = None,
    ) -> Tensor:
        check_num_samples(num_samples, self.name)
        base, _ = base_distribution(dist)
        if isinstance(dist, Independent) and dist.reinterpreted_batch_ndims != len(dist.event_shape):
            raise TypeError(
                "estimator 'measure_valued' supports Independent wrappers of scalar-event families only"
            )
        require(self.name, dist)
        n = num_samples
        batch_shape, event_shape = dist.batch_shape, dist.event_shape
        coordinates = max(1, event_shape.numel())
        with torch.no_grad():
            sample = base.sample(torch.Size([n]))  # (n, *batch, *event)
        leading = torch.Size([n]) + batch_shape
        dtype = base.probs.dtype if not isinstance(base, Normal) else base.loc.dtype
        value = evaluate_cost(f, sample, leading, dtype).mean(0)

        # one_at_a_time[c] is True at coordinate c only: variant c replaces that coordinate alone.
        one_at_a_time = (
            torch.eye(coordinates, dtype=torch.bool, device=sample.device).reshape(
                coordinates, *(1 for _ in range(1 + len(batch_shape))), *event_shape
            )
            if event_shape
            else torch.ones((1,) + (1,) * (1 + len(batch_shape)), dtype=torch.bool, device=sample.device)
        )

        def mean_cost_with(replacement: Tensor) -> Tensor:
            """E over draws of f with each coordinate c in turn replaced: shape (*batch, *event)."""
            variants = torch.where(one_at_a_time, replacement.unsqueeze(0), sample.unsqueeze(0))
            flat = variants.reshape(coordinates * n, *batch_shape, *event_shape)
            costs = evaluate_cost(f, flat, torch.Size([coordinates * n]) + batch_shape, dtype)
            costs = costs.detach().reshape(coordinates, n, *batch_shape).mean(1)  # (C, *batch)
            return costs.reshape(coordinates, -1).T.reshape(batch_shape + event_shape)

        shape = sample.shape
        if isinstance(base, Normal):
            loc, scale = base.loc.detach().expand(shape), base.scale.detach().expand(shape)
            w = weibull_pair(shape, loc)
            w_negative = w if self.coupled else weibull_pair(shape, loc)
            loc_gradient = (mean_cost_with(loc + scale * w) - mean_cost_with(loc - scale * w_negative)) / (
                base.scale.detach() * math.sqrt(2 * math.pi)
            )
            m = double_sided_maxwell(shape, loc)
            u = torch.rand(shape, dtype=loc.dtype, device=loc.device)
            # M * U is standard Normal (the Maxwell-Gaussian coupling); uncoupled, a fresh Normal draw.
            gaussian = m * u if self.coupled else torch.randn_like(m)
            scale_gradient = (
                mean_cost_with(loc + scale * m) - mean_cost_with(loc + scale * gaussian)
            ) / base.scale.detach()
            return (
                value
                + inject_gradient(base.loc, loc_gradient.expand(base.loc.shape), len(batch_shape))
                + inject_gradient(base.scale, scale_gradient.expand(base.scale.shape), len(batch_shape))
            )
        if isinstance(base, Bernoulli):
            ones, zeros = torch.ones_like(sample), torch.zeros_like(sample)
            probs_gradient = mean_cost_with(ones) - mean_cost_with(zeros)
            return value + inject_gradient(base.probs, probs_gradient, len(batch_shape))
        num_classes = base.probs.shape[-1]
        per_class = [mean_cost_with(torch.full_like(sample, k)) for k in range(num_classes)]
        probs_gradient = torch.stack(per_class, dim=-1)
        return value + inject_gradient(base.probs, probs_gradient, len(batch_shape))
