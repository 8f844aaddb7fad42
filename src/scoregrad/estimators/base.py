"""The estimator protocol and the checks every estimator shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution

from scoregrad.sampling import Sampler, call_method

__all__ = [
    "Estimator",
    "CostFunction",
    "evaluate_cost",
    "check_num_samples",
    "check_finite",
    "base_distribution",
    "sample_log_prob",
]

#: ``f(samples) -> costs``: samples ``(n, *batch_shape, *event_shape)`` to costs ``(n, *batch_shape)``.
CostFunction = Callable[[Tensor], Tensor]


@runtime_checkable
class Estimator(Protocol):
    """``estimator(f, dist, num_samples, sampler=..., context=...) -> surrogate``.

    The surrogate has the distribution's batch shape. Its value estimates ``E[f(x)]`` for each batch
    element and its gradient estimates ``d E[f(x)] / d theta`` for every tensor ``theta`` that the
    distribution's parameters (or ``f``'s own differentiable inputs) depend on.
    """

    name: str

    def __call__(
        self, f: CostFunction, dist: Distribution, num_samples: int, *, sampler: Sampler, context: Any = None
    ) -> Tensor: ...


def check_num_samples(num_samples: int, estimator: str, *, minimum: int = 1, even: bool = False) -> None:
    """Validate ``num_samples``: an int of at least ``minimum`` (and even, for pair-based estimators)."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be an int, got {type(num_samples).__name__}")
    if num_samples < minimum:
        raise ValueError(f"estimator {estimator!r} needs num_samples >= {minimum}, got {num_samples}")
    if even and num_samples % 2:
        raise ValueError(
            f"estimator {estimator!r} counts function evaluations in antithetic pairs: num_samples must be even, "
            f"got {num_samples}"
        )


def evaluate_cost(f: CostFunction, samples: Tensor, leading_shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """Call ``f`` and check what it returns.

    Args:
        f: the cost function.
        samples: its input, ``(*leading_shape, *event_shape)``.
        leading_shape: the shape ``f`` must return, ``(n, *batch_shape)``.
        dtype: floating dtype to cast integer or boolean costs to.

    Raises:
        TypeError: ``f`` returned something that is not a tensor or number.
        ValueError: wrong shape, or non-finite values (naming how many and where).
    """
    values = f(samples)
    if not isinstance(values, Tensor):
        try:
            values = torch.as_tensor(values, device=samples.device)
        except (TypeError, RuntimeError, ValueError) as error:
            raise TypeError(
                f"f must return a tensor of shape {tuple(leading_shape)}, got {type(values).__name__}"
            ) from error
    if tuple(values.shape) != tuple(leading_shape):
        raise ValueError(
            f"f returned shape {tuple(values.shape)}, expected {tuple(leading_shape)} = (num_samples, *batch_shape) "
            f"for samples of shape {tuple(samples.shape)}; reduce the event dimensions inside f"
        )
    if not values.is_floating_point():
        values = values.to(dtype)
    check_finite(values, "f returned", " (sample, *batch)")
    return values


def check_finite(values: Tensor, what: str, index_names: str = "") -> None:
    """Raise ``ValueError("<what> N non-finite value(s) of M; first at index (...) with value v")``.

    The one finiteness check for costs, used by ``expectation`` (``what="f returned"``) and by the
    stochastic graph's ``g.cost`` (``what="cost 'name' has"``).
    """
    finite = torch.isfinite(values.detach())
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        first = tuple(bad[0].tolist())
        raise ValueError(
            f"{what} {bad.shape[0]} non-finite value(s) of {values.numel()}; first at index {first}{index_names} "
            f"with value {values.detach()[first].item()}"
        )


def base_distribution(dist: Distribution) -> tuple[Distribution, int]:
    """Unwrap ``Independent``: the base distribution and how many batch dims it reinterprets."""
    from torch.distributions import Independent

    reinterpreted = 0
    while isinstance(dist, Independent):
        reinterpreted += dist.reinterpreted_batch_ndims
        dist = dist.base_dist
    return dist, reinterpreted


def sample_log_prob(dist: Distribution, samples: Tensor) -> Tensor:
    """``dist.log_prob(samples)`` for samples ``(n, *batch_shape, *event_shape)``, with a fast path.

    ``Categorical.log_prob`` broadcasts the ``(*batch, K)`` logits to ``(n, *batch, K)`` before
    gathering, so its backward pass fills an ``n``-times larger gradient buffer. Gathering along a
    trailing sample dimension instead gives the same values and gradients at ``K``-independent cost.
    """
    if (
        type(dist) is Categorical
        and samples.dim() == 1 + len(dist.batch_shape)
        and not samples.is_floating_point()
    ):
        return dist.logits.gather(-1, samples.movedim(0, -1)).movedim(-1, 0)
    return call_method("the score-function estimator", dist, "log_prob", samples)
