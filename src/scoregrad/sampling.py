"""Samplers: how the ``num_samples`` points of a Monte Carlo estimate are drawn.

Every sampler returns samples of shape ``(num_samples, *batch_shape, *event_shape)`` whose
marginal distribution is exactly the target's, so every estimator stays unbiased. They differ in
how the points are coupled:

* ``iid``: independent draws (``dist.sample`` / ``dist.rsample``).
* ``antithetic``: pairs ``(x, 2 m - x)`` reflected through the centre ``m`` of a symmetric
  distribution (Normal, Laplace, Uniform, StudentT, Cauchy, MultivariateNormal and ``Independent``
  products of them). Needs an even ``num_samples``.
* ``sobol``: randomised quasi-Monte-Carlo. A randomly shifted Sobol point set gives points that
  are each uniform on the unit cube, mapped through the inverse CDF (``icdf``); the shift comes
  from torch's generator, so ``torch.manual_seed`` makes it reproducible.

Baselines that use the other samples of the same call (leave-one-out, optimal) assume
independent samples and are refused with coupled samplers.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.distributions import (
    Cauchy,
    Distribution,
    Independent,
    Laplace,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    StudentT,
    Uniform,
)

__all__ = ["Sampler", "IID", "Antithetic", "Sobol", "resolve_sampler", "SAMPLERS", "call_method"]


def call_method(needed_by: str, dist: Distribution, method: str, *args: Any) -> Any:
    """``dist.method(*args)`` (or the property ``dist.method``), naming both when it is not implemented.

    ``torch.distributions`` raises a bare ``NotImplementedError`` for a method a family lacks; this
    turns it into a ``TypeError`` that says which method of which distribution ``needed_by`` needs.
    """
    try:
        value = getattr(dist, method)
        return value(*args) if callable(value) else value
    except NotImplementedError as error:
        name = type(dist).__name__
        raise TypeError(
            f"{needed_by} needs {method}; {name} has none ({name}.{method} is not implemented)"
        ) from error


@runtime_checkable
class Sampler(Protocol):
    """``sampler.sample(dist, num_samples, reparameterized) -> (num_samples, *batch, *event)``."""

    #: False when samples are coupled, so leave-one-out style baselines would be biased.
    independent: bool

    def sample(self, dist: Distribution, num_samples: int, reparameterized: bool) -> Tensor: ...


class IID:
    """Independent draws from the distribution."""

    independent = True

    def sample(self, dist: Distribution, num_samples: int, reparameterized: bool) -> Tensor:
        shape = torch.Size([num_samples])
        return call_method("sampling", dist, "rsample" if reparameterized else "sample", shape)

    def __repr__(self) -> str:
        return "IID()"


_SYMMETRIC = (Normal, Laplace, Uniform, StudentT, Cauchy, MultivariateNormal, LowRankMultivariateNormal)


def _centre(dist: Distribution) -> Tensor:
    """The point of symmetry of a symmetric distribution, or a TypeError naming the family."""
    if isinstance(dist, Independent):
        return _centre(dist.base_dist)
    if isinstance(dist, Uniform):
        return (dist.low + dist.high) / 2
    if isinstance(dist, _SYMMETRIC):
        return dist.loc
    raise TypeError(
        f"sampler 'antithetic' needs a distribution symmetric about its centre "
        f"({', '.join(c.__name__ for c in _SYMMETRIC)}, or Independent of them); got {type(dist).__name__}. "
        "Use sampler='iid', or 'sobol' for families with icdf"
    )


class Antithetic:
    """Antithetic pairs ``x`` and ``2 * centre - x`` for symmetric distributions."""

    independent = False

    def sample(self, dist: Distribution, num_samples: int, reparameterized: bool) -> Tensor:
        if num_samples % 2:
            raise ValueError(f"sampler 'antithetic' needs an even num_samples, got {num_samples}")
        centre = _centre(dist)
        half = IID().sample(dist, num_samples // 2, reparameterized)
        if not reparameterized:
            centre = centre.detach()
        return torch.cat([half, 2 * centre - half], dim=0)

    def __repr__(self) -> str:
        return "Antithetic()"


def _floating_parameter(dist: Distribution) -> Tensor | None:
    """A floating-point tensor the distribution holds (its dtype and device), searching wrapped ones."""
    for value in vars(dist).values():
        if isinstance(value, Tensor) and value.is_floating_point():
            return value
        if isinstance(value, Distribution):
            found = _floating_parameter(value)
            if found is not None:
                return found
    return None


class Sobol:
    """Randomised quasi-Monte-Carlo: a Sobol point set, randomly shifted, through the inverse CDF.

    The ``num_samples`` points of each batch element are the first points of a Sobol sequence of
    dimension ``prod(event_shape)``, shifted modulo 1 by a uniform vector drawn independently for
    every batch element (Cranley & Patterson, 1976). Each point is then exactly uniform, so the
    estimate is unbiased, and batch elements stay independent. Works for distributions with
    ``icdf`` (Normal, Laplace, Cauchy, Uniform, Exponential, ...) and ``Independent`` products.
    Powers of two for ``num_samples`` balance the point set best.
    """

    independent = False

    def sample(self, dist: Distribution, num_samples: int, reparameterized: bool) -> Tensor:
        base = dist.base_dist if isinstance(dist, Independent) else dist
        dimension = max(1, dist.event_shape.numel())
        if dimension > torch.quasirandom.SobolEngine.MAXDIM:
            raise ValueError(
                f"sampler 'sobol': event size {dimension} exceeds SobolEngine's maximum "
                f"{torch.quasirandom.SobolEngine.MAXDIM}; use sampler='iid'"
            )
        mean = _floating_parameter(base)  # for the dtype and device
        if mean is None:
            mean = torch.zeros(())
        dtype = mean.dtype if mean.is_floating_point() else torch.get_default_dtype()
        points = torch.quasirandom.SobolEngine(dimension, scramble=False).draw(
            num_samples, dtype=torch.float64
        )
        shift = torch.rand((*dist.batch_shape, dimension), dtype=torch.float64)
        u = torch.remainder(
            points.reshape(num_samples, *(1,) * len(dist.batch_shape), dimension) + shift, 1.0
        )
        # Keep away from 0 and 1, where icdf is infinite.
        tiny = torch.finfo(dtype).eps
        u = u.to(dtype=dtype, device=mean.device).clamp(tiny, 1 - tiny)
        u = u.reshape((num_samples, *dist.batch_shape, *dist.event_shape))
        x = call_method("sampler 'sobol'", base, "icdf", u)
        return x if reparameterized else x.detach()

    def __repr__(self) -> str:
        return "Sobol()"


SAMPLERS = {"iid": IID, "antithetic": Antithetic, "sobol": Sobol}


def resolve_sampler(sampler: str | Sampler | None) -> Sampler:
    """Turn a name (``"iid"``, ``"antithetic"``, ``"sobol"``) or object into a sampler."""
    if sampler is None:
        return IID()
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
        return SAMPLERS[sampler]()
    if isinstance(sampler, Sampler):
        return sampler
    raise TypeError(
        f"sampler must be a name or an object with .sample(dist, num_samples, reparameterized); got {sampler!r}"
    )
