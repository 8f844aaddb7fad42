"""Estimators for discrete (Bernoulli and categorical) variables, and the Gumbel machinery.

* ARM (Yin & Zhou, 2019, "ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks")
  and DisARM (Dong, Mnih & Tucker, 2020, "DisARM: An Antithetic Gradient Estimator for Binary
  Latent Variables"): unbiased, for Bernoulli logits, from antithetic pairs of uniforms.
  ``num_samples`` counts evaluations of ``f``; one pair is ``num_samples=2``.
* Gumbel-softmax / Concrete (Jang et al., 2017; Maddison et al., 2017) and straight-through
  (Bengio et al., 2013): **biased** relaxations, here for comparison. ``f`` must be
  differentiable and accept relaxed samples.

The noise functions at the top are the one implementation of the Gumbel/logistic reparameterisation
in scoregrad (REBAR and RELAX in the stochastic-graph code build on them).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, OneHotCategorical

from scoregrad.estimators.base import CostFunction, base_distribution, check_num_samples, evaluate_cost
from scoregrad.estimators.registry import require
from scoregrad.sampling import Sampler
from scoregrad.surrogate import inject_gradient

__all__ = [
    "ARM",
    "DisARM",
    "GumbelSoftmax",
    "StraightThrough",
    "uniform_like",
    "gumbel_noise",
    "logistic_logits",
    "conditional_logistic_logits",
    "gumbel_softmax_relaxation",
    "gumbel_top_k",
    "bernoulli_logits",
    "relaxed_sample",
]


def uniform_like(
    shape: torch.Size | tuple[int, ...], like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform(0, 1) noise of ``shape`` with ``like``'s dtype and device, strictly inside (0, 1).

    ``generator`` makes the draw reproducible and resumable (the RL rollout passes its own).
    """
    info = torch.finfo(like.dtype)
    # in place on the fresh tensor: this runs once per env step in the RL rollout
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device).clamp_(
        info.tiny, 1 - info.eps
    )


def gumbel_noise(
    shape: torch.Size | tuple[int, ...], like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Standard Gumbel noise ``-log(-log u)`` of ``shape``: ``argmax(logits + g)`` is a Categorical sample."""
    return uniform_like(shape, like, generator).log_().neg_().log_().neg_()


def logistic_logits(logits: Tensor, u: Tensor) -> Tensor:
    """``z = logits + log u - log(1 - u)``: Bernoulli's reparameterisation, ``b = 1[z > 0]``."""
    return logits + torch.log(u) - torch.log1p(-u)


def conditional_logistic_logits(logits: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """``z ~ p(z | b)``: the logistic ``z`` conditioned on the sign that gave ``b`` (REBAR, Tucker et al., 2017).

    With ``theta = sigmoid(logits)``: ``u' = 1 - theta + v theta`` if ``b = 1`` else ``u' = v (1 - theta)``.
    """
    theta = torch.sigmoid(logits)
    u = torch.where(b > 0.5, 1 - theta + v * theta, v * (1 - theta))
    eps = torch.finfo(u.dtype).eps
    return logistic_logits(logits, u.clamp(eps, 1 - eps))


def gumbel_softmax_relaxation(
    logits: Tensor, temperature: float | Tensor, gumbel: Tensor | None = None
) -> Tensor:
    """``softmax((logits + g) / temperature)`` over the last dim, with Gumbel noise ``g``."""
    if gumbel is None:
        gumbel = gumbel_noise(logits.shape, logits)
    return F.softmax((logits + gumbel) / temperature, dim=-1)


def bernoulli_logits(dist: Distribution, estimator: str) -> Tensor:
    """The logits of a Bernoulli (or ``Independent(Bernoulli)``), or a TypeError naming ``estimator``."""
    require(estimator, dist)
    return base_distribution(dist)[0].logits


def _antithetic_pair_estimate(
    f: CostFunction, dist: Distribution, num_samples: int, estimator: str, pair_weight
) -> Tensor:
    """Shared body of ARM and DisARM: draw ``num_samples / 2`` uniforms, evaluate ``f`` on both
    members of each pair, and inject ``mean(pair_weight(...))`` as the gradient of the logits."""
    logits = bernoulli_logits(dist, estimator)
    check_num_samples(num_samples, estimator, minimum=2, even=True)
    pairs = num_samples // 2
    batch_ndim = len(dist.batch_shape)
    u = uniform_like((pairs, *logits.shape), logits)
    first, second, weight_of = pair_weight(logits.detach(), u)
    samples = torch.cat([first, second], 0)
    values = evaluate_cost(f, samples, torch.Size([num_samples]) + dist.batch_shape, logits.dtype)
    gradient = pair_gradient(values, weight_of, logits.dim() - batch_ndim)
    return values.mean(0) + inject_gradient(logits, gradient, batch_ndim)


def pair_gradient(values: Tensor, weight: Tensor, event_ndim: int) -> Tensor:
    """ARM/DisARM's logit gradient from the costs of ``P`` antithetic pairs (the one place it is written).

    Args:
        values: costs ``(2P, *batch_shape)``: the first members of the pairs, then the second ones.
        weight: the per-coordinate weight of ``f(first) - f(second)``, ``(P, *logits.shape)``.
        event_ndim: how many trailing logit dimensions are event dimensions (``Independent``).
    """
    pairs = values.shape[0] // 2
    difference = (values[:pairs] - values[pairs:]).detach()
    difference = difference.reshape(difference.shape + (1,) * event_ndim)
    return (difference * weight).mean(0)


class ARM:
    """Augment-REINFORCE-Merge for Bernoulli logits (Yin & Zhou, 2019): unbiased.

    ``g = (f(1[u > sigmoid(-phi)]) - f(1[u < sigmoid(phi)])) (u - 1/2)`` per pair.
    """

    name = "arm"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @staticmethod
    def antithetic_pair(logits: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(first, second, weight)``: the pair of samples from uniforms ``u`` and the per-coordinate
        weight of ``f(first) - f(second)`` in the gradient estimate."""
        first = (u > torch.sigmoid(-logits)).to(logits.dtype)
        second = (u < torch.sigmoid(logits)).to(logits.dtype)
        return first, second, u - 0.5

    def __call__(
        self,
        f: CostFunction,
        dist: Distribution,
        num_samples: int,
        *,
        sampler: Sampler | None = None,
        context: Any = None,
    ) -> Tensor:
        return _antithetic_pair_estimate(f, dist, num_samples, self.name, self.antithetic_pair)


class DisARM(ARM):
    """DisARM for Bernoulli logits (Dong, Mnih & Tucker, 2020): unbiased, never worse than ARM.

    With ``b = 1[u < sigmoid(phi)]`` and its antithetic ``b~ = 1[1 - u < sigmoid(phi)]``:
    ``g = 1/2 (f(b) - f(b~)) (-1)^{b~} 1[b != b~] sigmoid(|phi|)`` per pair. A single variable at
    ``phi = 0`` gets a zero-variance estimate. Shares ARM's body; only the pair differs.
    """

    name = "disarm"

    @staticmethod
    def antithetic_pair(logits: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        probability = torch.sigmoid(logits)
        first = (u < probability).to(logits.dtype)
        second = (1 - u < probability).to(logits.dtype)
        sign = 1 - 2 * second
        weight = 0.5 * sign * (first != second).to(logits.dtype) * torch.sigmoid(logits.abs())
        return first, second, weight


def relaxed_sample(
    dist: Distribution, num_samples: int, temperature: float, estimator: str
) -> tuple[Tensor, Tensor]:
    """(relaxed, hard) samples for Bernoulli or OneHotCategorical (and Independent of them)."""
    require(estimator, dist)
    base, _ = base_distribution(dist)
    if isinstance(base, Bernoulli):
        logits = base.logits
        z = logistic_logits(logits, uniform_like((num_samples, *logits.shape), logits))
        relaxed = torch.sigmoid(z / temperature)
        return relaxed, (z > 0).to(logits.dtype)
    if isinstance(base, OneHotCategorical):
        logits = base.logits
        relaxed = gumbel_softmax_relaxation(logits.expand(num_samples, *logits.shape), temperature)
        hard = F.one_hot(relaxed.argmax(-1), logits.shape[-1]).to(logits.dtype)
        return relaxed, hard
    raise AssertionError(f"unreachable: require() admits Bernoulli and OneHotCategorical, got {dist!r}")


class GumbelSoftmax:
    """Gumbel-softmax / binary Concrete relaxation: **biased**, low variance; ``f`` sees relaxed samples.

    Args:
        temperature: relaxation temperature; lower is less biased and noisier.
    """

    name = "gumbel_softmax"

    def __init__(self, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature})"

    def relaxed_input(self, relaxed: Tensor, hard: Tensor) -> Tensor:
        """What ``f`` sees, from the relaxed and the hard sample."""
        return relaxed

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
        samples = self.relaxed_input(*relaxed_sample(dist, num_samples, self.temperature, self.name))
        return evaluate_cost(f, samples, torch.Size([num_samples]) + dist.batch_shape, samples.dtype).mean(0)


class StraightThrough(GumbelSoftmax):
    """Straight-through Gumbel: hard samples forward, the relaxation's gradient backward. **Biased**.

    The forward value is ``f`` at exact samples, so the value (not the gradient) is unbiased.
    """

    name = "straight_through"

    def relaxed_input(self, relaxed: Tensor, hard: Tensor) -> Tensor:
        return hard + relaxed - relaxed.detach()


def gumbel_top_k(logits: Tensor, k: int) -> Tensor:
    """``k`` distinct categories drawn without replacement by the Gumbel-top-k trick.

    Kool, van Hoof & Welling (2019), "Stochastic Beams and Where to Find Them": the indices of the ``k``
    largest ``logits + Gumbel noise`` are a sample without replacement, in order.

    Args:
        logits: ``(*batch_shape, num_categories)``.
        k: number of distinct categories, ``1 <= k <= num_categories``.

    Returns:
        Long tensor ``(k, *batch_shape)``.
    """
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"gumbel_top_k: k must lie in [1, {logits.shape[-1]}], got {k}")
    return (logits.detach() + gumbel_noise(logits.shape, logits)).topk(k, dim=-1).indices.movedim(-1, 0)
