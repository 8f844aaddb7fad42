"""``expectation``: the two-line entry point (the module is not named ``expectation``, so that it can never shadow the function ``scoregrad.expectation``, which loads lazily)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.distributions import Distribution

from scoregrad.estimators import Estimator, registry, resolve_estimator
from scoregrad.estimators.base import CostFunction
from scoregrad.sampling import Sampler, resolve_sampler

__all__ = ["expectation"]


def expectation(
    f: CostFunction,
    dist: Distribution,
    num_samples: int = 1,
    *,
    estimator: str | Estimator = "score_function",
    baseline: Any = None,
    sampler: str | Sampler = "iid",
    context: Any = None,
) -> Tensor:
    """Estimate ``E_{x ~ dist}[f(x)]`` as a tensor whose gradient is the estimator's gradient.

    Args:
        f: the cost, ``(num_samples, *batch_shape, *event_shape) -> (num_samples, *batch_shape)``.
            For the score-function family (``score_function``, ``measure_valued``, ``arm``,
            ``disarm``, ``exact``) it is a black box that is never differentiated with respect to
            its input; boolean and integer outputs are cast to float. Non-finite outputs raise.
        dist: any ``torch.distributions.Distribution`` whose parameters depend on what you want the
            gradient for.
        num_samples: Monte Carlo samples per batch element (function evaluations for ``arm`` and
            ``disarm``; coupled pairs for ``measure_valued``; ignored by ``exact``).
        estimator: a name from ``sg.estimators.ESTIMATORS`` or an estimator object.
        baseline: for ``estimator="score_function"``: ``"none"``, a number, ``"moving_average"``,
            ``"leave_one_out"``, ``"optimal"``, an ``nn.Module``/callable (learned), or an object.
        sampler: ``"iid"``, ``"antithetic"``, ``"sobol"`` or a sampler object.
        context: passed to a learned baseline, ``baseline(context)``.

    Returns:
        A tensor of shape ``dist.batch_shape``: the estimate of ``E[f]`` for each batch element
        (exact for ``estimator="exact"``), with the estimator's gradient under ``backward()``.
        Batch elements are independent estimates.

    Example:
        >>> mu = torch.zeros(3, requires_grad=True)
        >>> value = expectation(lambda x: (x > 0.5).float(), Normal(mu, 1.0), num_samples=16,
        ...                     baseline="leave_one_out")
        >>> value.sum().backward()
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a torch.distributions.Distribution, got {type(dist).__name__}")
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    resolved = resolve_estimator(estimator, baseline)
    resolved_sampler = resolve_sampler(sampler)
    spec = registry.spec_of(resolved)
    if spec is not None:  # registered estimators: capability and ignored-argument errors, in one place
        registry.require(spec, dist)
        registry.check_sampler(spec, resolved_sampler)
    return resolved(f, dist, num_samples, sampler=resolved_sampler, context=context)
