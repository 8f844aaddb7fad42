"""Diagnostics: how noisy is a gradient estimator, and is it right?

* :func:`gradient_statistics` runs any estimate repeatedly and reports the gradient's mean,
  variance, standard error, signal-to-noise ratio, bias against an exact gradient, and time.
* :func:`measure` does the same for ``sg.expectation`` on one problem, and :func:`compare` prints a
  table for several estimators side by side.
* :func:`auto_table` shows what ``estimator="auto"`` measured and chose.
* :func:`score_identities` checks by Monte Carlo the two facts the score-function estimator rests
  on: ``E[grad log p] = 0`` and ``Cov[grad log p] = Fisher information``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Categorical, Distribution, Normal

from scoregrad.estimators.score_function import given_parameters, parameter_scores
from scoregrad.monte_carlo import expectation

__all__ = [
    "GradientStats",
    "gradient_statistics",
    "summarize",
    "measure",
    "compare",
    "score_identities",
    "IdentityReport",
    "auto_table",
]


def auto_table(auto: Any, *, show: bool = True) -> str:
    """The table ``estimator="auto"`` chose from: variance, cost and their product per candidate.

    Args:
        auto: an :class:`scoregrad.estimators.Auto` that has been called at least once.
        show: print the table as well as returning it.
    """
    if not getattr(auto, "table", None):
        raise ValueError(
            "auto_table: this Auto has not chosen yet; call sg.expectation(..., estimator=auto) first"
        )
    cost = "evaluations" if auto.cost == "evaluations" else "seconds"
    lines = [f"{'estimator':<30} {'variance':>12} {'evals':>8} {'seconds':>10} {'var x ' + cost:>18}  note"]
    for i, row in enumerate(auto.table):
        mark = "*" if i == 0 else " "
        lines.append(
            f"{mark}{row.estimator:<29} {row.variance:>12.4g} {row.evaluations:>8.3g} {row.seconds:>10.3g} "
            f"{row.score:>18.4g}  {row.note}"
        )
    text = "\n".join(lines)
    if show:
        print(text)
    return text


@dataclass
class GradientStats:
    """Statistics of repeated gradient estimates, flattened over all parameters.

    Attributes:
        name: a label.
        mean, variance, standard_error, snr: per gradient coordinate, shape ``(P,)``.
        bias: ``mean - exact`` when an exact gradient was given, else ``None``.
        z_score: ``bias / standard_error``: |z| above ~4 means the estimator is biased (or the exact
            gradient is wrong).
        seconds_per_estimate: wall time of one estimate plus its backward pass.
        repeats: number of estimates.
        value_mean: mean of the estimates' forward values.
    """

    name: str
    mean: Tensor
    variance: Tensor
    standard_error: Tensor
    snr: Tensor
    bias: Tensor | None
    z_score: Tensor | None
    seconds_per_estimate: float
    repeats: int
    value_mean: float
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """Scalar summary: total variance, median SNR, largest |z|, time in microseconds."""
        return {
            "variance": float(self.variance.sum()),
            "snr_median": float(self.snr.median()),
            "max_abs_z": float(self.z_score.abs().max()) if self.z_score is not None else float("nan"),
            "microseconds": 1e6 * self.seconds_per_estimate,
        }


def gradient_statistics(
    estimate: Callable[[], Tensor],
    params: Sequence[Tensor],
    *,
    repeats: int = 1000,
    exact_gradient: Sequence[Tensor] | Tensor | None = None,
    name: str = "",
) -> GradientStats:
    """Call ``estimate()`` ``repeats`` times and summarise the gradients it gives ``params``.

    Args:
        estimate: returns a surrogate; its sum is differentiated.
        params: the tensors to differentiate with respect to.
        repeats: number of independent estimates (at least 2).
        exact_gradient: the true gradient (per parameter, or already flattened) for the bias.
        name: a label for tables.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2 to estimate a variance, got {repeats}")
    params = list(params)
    grads, values = [], []
    start = time.perf_counter()
    for _ in range(repeats):
        value = estimate()
        gradient = torch.autograd.grad(value.sum(), params, allow_unused=True)
        grads.append(
            torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1)
                    for p, g in zip(params, gradient, strict=True)
                ]
            )
        )
        values.append(float(value.detach().mean()))
    seconds = (time.perf_counter() - start) / repeats
    return summarize(torch.stack(grads), exact_gradient, name, seconds, sum(values) / repeats)


def summarize(
    draws: Tensor,
    exact_gradient: Sequence[Tensor] | Tensor | None = None,
    name: str = "",
    seconds_per_estimate: float = float("nan"),
    value_mean: float = float("nan"),
) -> GradientStats:
    """Statistics of gradient draws you already have: ``(repeats, P)`` (or ``(repeats,)``) estimates.

    The one place where the mean, variance, standard error, SNR, bias and z-score are computed; use it
    when the draws come from one batched call (``R`` identical batch elements give ``R`` independent
    estimates) rather than from :func:`gradient_statistics`'s loop.
    """
    stacked = draws.detach().double().reshape(draws.shape[0], -1)
    repeats = stacked.shape[0]
    if repeats < 2:
        raise ValueError(f"summarize needs at least 2 draws to estimate a variance, got {repeats}")
    mean = stacked.mean(0)
    variance = stacked.var(0)
    standard_error = (variance / repeats).sqrt()
    snr = mean.abs() / variance.sqrt().clamp_min(1e-300)
    bias = z_score = None
    if exact_gradient is not None:
        exact = (
            exact_gradient
            if isinstance(exact_gradient, Tensor)
            else torch.cat([torch.as_tensor(g).reshape(-1) for g in exact_gradient])
        )
        bias = mean - exact.reshape(-1).double()
        z_score = bias / standard_error.clamp_min(1e-300)
    return GradientStats(
        name, mean, variance, standard_error, snr, bias, z_score, seconds_per_estimate, repeats, value_mean
    )


def measure(
    f: Callable[[Tensor], Tensor],
    make_dist: Callable[[], Distribution],
    params: Sequence[Tensor],
    *,
    estimator: Any = "score_function",
    num_samples: int = 1,
    baseline: Any = None,
    sampler: Any = "iid",
    repeats: int = 1000,
    exact_gradient: Sequence[Tensor] | Tensor | None = None,
    name: str | None = None,
) -> GradientStats:
    """Gradient statistics of ``sg.expectation(f, make_dist(), ...)`` with respect to ``params``.

    ``make_dist`` is called for every estimate, so the distribution is rebuilt from ``params``
    each time (as in training).
    """

    def estimate() -> Tensor:
        return expectation(
            f, make_dist(), num_samples, estimator=estimator, baseline=baseline, sampler=sampler
        )

    label = name if name is not None else (estimator if isinstance(estimator, str) else repr(estimator))
    return gradient_statistics(estimate, params, repeats=repeats, exact_gradient=exact_gradient, name=label)


def compare(
    estimators: Mapping[str, Mapping[str, Any] | str] | Sequence[str],
    f: Callable[[Tensor], Tensor],
    make_dist: Callable[[], Distribution],
    params: Sequence[Tensor],
    *,
    repeats: int = 1000,
    exact_gradient: Sequence[Tensor] | Tensor | None = None,
    print_table: bool = True,
) -> list[GradientStats]:
    """Measure several estimators on one problem and print a table.

    Args:
        estimators: names, or a mapping from a label to an estimator name/object or to keyword
            arguments of :func:`measure` (``{"rloo": {"baseline": "leave_one_out", "num_samples": 4}}``).
        f, make_dist, params, repeats, exact_gradient: as in :func:`measure`.

    Returns:
        One :class:`GradientStats` per estimator, in order.
    """
    if not isinstance(estimators, Mapping):
        estimators = {name: name for name in estimators}
    results = []
    for label, spec in estimators.items():
        options = dict(spec) if isinstance(spec, Mapping) else {"estimator": spec}
        options.setdefault("estimator", "score_function")
        results.append(
            measure(
                f, make_dist, params, repeats=repeats, exact_gradient=exact_gradient, name=label, **options
            )
        )
    if print_table:
        print(format_table(results))
    return results


def format_table(results: Sequence[GradientStats]) -> str:
    """A plain-text table of :meth:`GradientStats.row` for each result."""
    header = f"{'estimator':<28}{'variance':>14}{'median SNR':>12}{'max |z|':>10}{'us/estimate':>14}"
    lines = [header, "-" * len(header)]
    for result in results:
        row = result.row()
        lines.append(
            f"{result.name:<28}{row['variance']:>14.4g}{row['snr_median']:>12.3g}"
            f"{row['max_abs_z']:>10.2f}{row['microseconds']:>14.1f}"
        )
    return "\n".join(lines)


@dataclass
class IdentityReport:
    """Monte Carlo check of ``E[score] = 0`` and ``Cov[score] = Fisher`` (per batch element).

    Attributes:
        mean: empirical mean score, ``(*batch_shape, D)``.
        covariance: empirical covariance, ``(*batch_shape, D, D)``.
        fisher: closed-form Fisher information, ``(*batch_shape, D, D)``.
        max_z_mean, max_z_covariance: largest deviation from the identities in standard errors.
        ok: both below ``tolerance`` standard errors.
    """

    mean: Tensor
    covariance: Tensor
    fisher: Tensor
    max_z_mean: float
    max_z_covariance: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_z_mean < self.tolerance and self.max_z_covariance < self.tolerance


def _fisher(dist: Distribution, names: list[str]) -> Tensor:
    """Closed-form Fisher information for the parameters ``names`` as given to the constructor."""
    if isinstance(dist, Normal):
        variance = dist.scale.detach() ** 2
        diagonal = {"loc": 1 / variance, "scale": 2 / variance}
        return torch.diag_embed(torch.stack([diagonal[n] for n in names], -1))
    if isinstance(dist, Bernoulli):
        p = dist.probs.detach()
        return (p * (1 - p) if names == ["logits"] else 1 / (p * (1 - p)))[..., None, None]
    if isinstance(dist, Categorical):
        p = dist.probs.detach()
        if names == ["logits"]:
            return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
        return torch.diag_embed(1 / p) - 1.0
    raise TypeError(
        f"score_identities has closed forms for Normal, Bernoulli and Categorical; got {type(dist).__name__}"
    )


def score_identities(
    dist: Distribution, num_samples: int = 100_000, tolerance: float = 4.0
) -> IdentityReport:
    """Check ``E[score] = 0`` and ``Cov[score] = Fisher information`` by Monte Carlo.

    The score is taken with respect to the parameters the distribution was built from (``loc`` and
    ``scale``; ``probs`` or ``logits``), compared with closed forms for Normal, Bernoulli and
    Categorical. Each deviation is measured in its own Monte Carlo standard error.
    """
    names = given_parameters(dist)
    leaves = {name: getattr(dist, name).detach().clone().requires_grad_(True) for name in names}
    fresh = type(dist)(**leaves)
    with torch.no_grad():
        samples = fresh.sample(torch.Size([num_samples]))
    _, _, scores = parameter_scores(fresh, samples)
    # One score vector per sample and batch element: (n, *batch, D).
    score = torch.cat([s.reshape(num_samples, *dist.batch_shape, -1) for s in scores], -1).double()
    n = float(num_samples)
    mean = score.mean(0)
    mean_se = score.std(0) / math.sqrt(n)
    centred = score - mean
    products = centred[..., :, None] * centred[..., None, :]
    covariance = products.mean(0)
    covariance_se = products.std(0) / math.sqrt(n)
    fisher = _fisher(dist, names).double().expand_as(covariance)
    max_z_mean = float((mean.abs() / mean_se.clamp_min(1e-300)).max())
    max_z_cov = float(((covariance - fisher).abs() / covariance_se.clamp_min(1e-300)).max())
    return IdentityReport(mean, covariance, fisher, max_z_mean, max_z_cov, tolerance)
