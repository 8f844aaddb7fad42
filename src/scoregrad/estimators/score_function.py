"""Score-function estimator (REINFORCE, likelihood ratio).

``d/dtheta E[f(x)] = E[f(x) d/dtheta log p(x; theta)]`` (Glynn, 1990; Williams, 1992). It needs only
``log_prob`` and treats ``f`` as a black box: samples are drawn without gradient, and ``f``'s output
may be boolean, integer, or non-differentiable. Variance is reduced with a baseline
(:mod:`scoregrad.baselines`) and a sampler (:mod:`scoregrad.sampling`). The surrogate is DiCE's, so
higher derivatives are unbiased too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, OneHotCategorical, TransformedDistribution

from scoregrad.baselines import Baseline, Optimal, check_baseline, resolve_baseline
from scoregrad.estimators.base import CostFunction, check_num_samples, evaluate_cost, sample_log_prob
from scoregrad.sampling import Sampler
from scoregrad.surrogate import inject_gradient, magic_box, score_function_surrogate, zero_forward

__all__ = ["ScoreFunction", "expand_parameters", "parameter_scores", "given_parameters"]

# Parameterisations torch keeps several of (one given, the others derived lazily): keep the given one.
_ALTERNATIVES = (("probs", "logits"), ("scale_tril", "covariance_matrix", "precision_matrix"))


def given_parameters(dist: Distribution) -> list[str]:
    """The names of the parameters ``dist`` was constructed from (one of ``probs``/``logits``, say)."""
    if isinstance(dist, OneHotCategorical):  # its parameters live in an inner Categorical
        return given_parameters(dist._categorical)
    names = [name for name in dist.arg_constraints if name in dist.__dict__]
    for group in _ALTERNATIVES:
        present = [name for name in group if name in names]
        if len(present) > 1:
            given = getattr(dist, "_param", None)
            keep = next((name for name in present if dist.__dict__[name] is given), present[0])
            names = [name for name in names if name not in present or name == keep]
    return names


def expand_parameters(dist: Distribution, sample_shape: torch.Size) -> tuple[Distribution, list[Tensor]]:
    """Rebuild ``dist`` with each parameter expanded to ``sample_shape + parameter.shape``.

    ``log_prob`` of the result for samples of shape ``(*sample_shape, *batch_shape, *event_shape)``
    depends on the expanded parameters elementwise, so one backward pass gives per-sample scores.
    The expanded tensors are views of the originals: gradients with respect to them flow upstream.
    ``Independent`` and ``TransformedDistribution`` are unwrapped (a transform's own parameters are
    left out).

    Returns:
        The rebuilt distribution and its floating-point parameters that require grad.
    """
    if isinstance(dist, Independent):
        base, params = expand_parameters(dist.base_dist, sample_shape)
        return Independent(base, dist.reinterpreted_batch_ndims, validate_args=False), params
    if isinstance(dist, TransformedDistribution):
        base, params = expand_parameters(dist.base_dist, sample_shape)
        return TransformedDistribution(base, dist.transforms, validate_args=False), params
    kwargs: dict[str, Any] = {}
    params: list[Tensor] = []
    for name in given_parameters(dist):
        value = getattr(dist, name)
        if isinstance(value, Tensor) and value.is_floating_point() and value.requires_grad:
            value = value.expand(sample_shape + value.shape)
            params.append(value)
        kwargs[name] = value
    try:
        rebuilt = type(dist)(**kwargs, validate_args=False)
    except TypeError as error:
        raise TypeError(
            f"{type(dist).__name__} cannot be rebuilt from its parameters {sorted(kwargs)} (its constructor must take "
            f"the names in arg_constraints): baseline 'optimal' and score diagnostics need that. "
            "Use baseline='leave_one_out' instead"
        ) from error
    return rebuilt, params


def parameter_scores(dist: Distribution, samples: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Per-sample scores ``d log p(x_i) / d theta`` for each parameter tensor of ``dist``.

    Args:
        dist: the distribution, batch shape ``B``.
        samples: ``(n, *B, *event_shape)``, without gradient.

    Returns:
        ``(log_prob, params, scores)``: ``log_prob`` of shape ``(n, *B)`` computed through the
        expanded parameters (so it still carries gradient upstream), the expanded parameter tensors
        ``(n, *param_shape)`` and the detached scores of the same shapes.
    """
    rebuilt, params = expand_parameters(dist, samples.shape[:1])
    log_prob = rebuilt.log_prob(samples)
    if not params:
        return log_prob, [], []
    scores = torch.autograd.grad(log_prob.sum(), params, retain_graph=True)
    return log_prob, params, [s.detach() for s in scores]


class ScoreFunction:
    """The score-function estimator with a baseline.

    Args:
        baseline: a name (``"none"``, ``"moving_average"``, ``"leave_one_out"``, ``"optimal"``), a
            number (constant baseline), an ``nn.Module`` or callable (learned baseline, NVIL), or a
            :class:`scoregrad.baselines.Baseline` object.

    Needs ``dist.log_prob``. Works for every distribution, discrete or continuous.
    """

    name = "score_function"

    def __init__(self, baseline: Any = None) -> None:
        self.baseline: Baseline = resolve_baseline(baseline)

    def __repr__(self) -> str:
        return f"ScoreFunction(baseline={self.baseline!r})"

    def __call__(
        self, f: CostFunction, dist: Distribution, num_samples: int, *, sampler: Sampler, context: Any = None
    ) -> Tensor:
        check_num_samples(num_samples, self.name, minimum=2 if self.baseline.uses_other_samples else 1)
        if self.baseline.uses_other_samples and not sampler.independent:
            raise ValueError(
                f"baseline {self.baseline!r} uses the other samples of the call and is biased when sampler "
                f"{sampler!r} couples them; use sampler='iid' or another baseline"
            )
        with torch.no_grad():
            samples = sampler.sample(dist, num_samples, reparameterized=False)
        leading = torch.Size([num_samples]) + dist.batch_shape
        if isinstance(self.baseline, Optimal):
            log_prob, params, scores = parameter_scores(dist, samples)
            values = evaluate_cost(f, samples, leading, log_prob.dtype)
            per_sample = magic_box(log_prob) * values
            batch_ndim = 1 + len(dist.batch_shape)
            for param, score in zip(params, scores, strict=True):
                coefficient = Optimal.coefficients(values, score.square())
                per_sample = per_sample + inject_gradient(param, -coefficient * score, batch_ndim)
            return per_sample.mean(0)
        log_prob = sample_log_prob(dist, samples)
        values = evaluate_cost(f, samples, leading, log_prob.dtype)
        baseline, fit_loss = self.baseline(values, context=context)
        baseline = check_baseline(baseline, values, source=self.baseline)
        estimate = score_function_surrogate(log_prob, values, baseline).mean(0)
        if fit_loss is not None:
            estimate = estimate + zero_forward(fit_loss)
        return estimate
