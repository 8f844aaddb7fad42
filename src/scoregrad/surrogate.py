"""Surrogate losses: the one place where scoregrad turns samples into gradients.

A *surrogate* is a tensor whose forward value is an estimate of an expectation and whose
gradient (of any order, where stated) is an estimate of the expectation's gradient. Every
estimator, the stochastic-graph code and the policy-gradient losses build their surrogates from
the functions here, so the formula for the log-derivative trick exists once.

The central device is DiCE's *magic box* (Foerster et al., 2018, "DiCE: The Infinitely
Differentiable Monte Carlo Estimator"): ``box(l) = exp(l - stop_gradient(l))`` evaluates to 1 but
has derivative ``box(l) * dl``. Multiplying a cost by ``box(log p(x))`` therefore leaves its value
alone and produces ``cost * grad log p`` under differentiation, and keeps doing so for second and
higher derivatives. Baselines enter as ``(1 - box(l)) * b`` (Mao et al., 2019, "A Baseline for
Any Order Gradient Estimation in Stochastic Computation Graphs"), which has value 0 and, for ``b``
independent of the sample, zero-mean derivatives of every order.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "magic_box",
    "likelihood_ratio",
    "score_function_surrogate",
    "inject_gradient",
    "zero_forward",
]


def magic_box(log_prob: Tensor) -> Tensor:
    """DiCE's magic box: value 1, derivative ``magic_box(log_prob) * d log_prob``.

    Args:
        log_prob: log-probabilities of samples (any shape); gradients flow to their parameters.

    Returns:
        A tensor of ones with the shape of ``log_prob`` that carries the score under autograd.
    """
    return torch.exp(log_prob - log_prob.detach())


def likelihood_ratio(log_prob: Tensor, behaviour_log_prob: Tensor | None = None) -> Tensor:
    """The importance ratio ``p(x) / q(x)`` computed in log space.

    With ``behaviour_log_prob=None`` the sampling distribution is the current one and the ratio is
    the magic box (value 1, gradient equal to the score). PPO's clipped objective uses the same
    ratio against the log-probabilities recorded when the data was collected.

    Args:
        log_prob: log p(x) under the distribution being optimised, shape ``S``.
        behaviour_log_prob: log q(x) under the distribution that drew x, broadcastable to ``S``;
            treated as a constant.
    """
    if behaviour_log_prob is None:
        return magic_box(log_prob)
    return torch.exp(log_prob - behaviour_log_prob.detach())


def score_function_surrogate(
    log_prob: Tensor, values: Tensor, baseline: Tensor | float | None = None
) -> Tensor:
    """Per-sample score-function (REINFORCE) surrogate with an optional baseline.

    Williams (1992); DiCE form of Foerster et al. (2018) with the baseline term of Mao et al. (2019).

    Args:
        log_prob: ``log p(x_i)`` for each sample, shape ``S`` (e.g. ``(num_samples, *batch_shape)``).
        values: ``f(x_i)``, shape ``S``. Used as given: gradients that ``values`` carries to other
            tensors (a decoder, say) pass through unchanged, the score term is added on top.
        baseline: ``b_i``, broadcastable to ``S``; detached here, so it must not depend on ``x_i``
            for the estimate to stay unbiased.

    Returns:
        Tensor of shape ``S`` whose value equals ``values`` and whose derivative is
        ``(values - baseline) * d log_prob + d values``, unbiased at every order when the baseline
        is independent of the sample it is paired with.
    """
    box = magic_box(log_prob)
    if baseline is None:
        return box * values
    if isinstance(baseline, Tensor):
        baseline = baseline.detach()
    # b + box (f - b) equals box f + (1 - box) b in value and in every derivative, with fewer autograd nodes.
    return baseline + box * (values - baseline)


def inject_gradient(tensor: Tensor, gradient: Tensor, batch_ndim: int | None = None) -> Tensor:
    """A term of value zero whose derivative with respect to ``tensor`` is ``gradient``.

    Estimators that produce a gradient for a distribution's parameters directly (measure-valued,
    ARM, DisARM, control variates) hand it to autograd this way, so it reaches every upstream
    tensor by the chain rule.

    Args:
        tensor: a parameter tensor of shape ``(*batch_shape, *rest)``.
        gradient: the estimated gradient, same shape as ``tensor`` (treated as a constant).
        batch_ndim: number of leading batch dimensions to keep. The trailing ``rest`` dimensions are
            summed so each batch element's term only carries its own gradient. ``None`` keeps all.

    Returns:
        Zeros of shape ``tensor.shape[:batch_ndim]``.
    """
    term = tensor * gradient.detach()
    if batch_ndim is not None and term.dim() > batch_ndim:
        term = term.flatten(batch_ndim).sum(-1)
    return term - term.detach()


def zero_forward(x: Tensor) -> Tensor:
    """``x - stop_gradient(x)``: value zero, gradient that of ``x``.

    Used to attach auxiliary losses (a learned baseline's regression loss, say) to a surrogate
    without changing the surrogate's value.
    """
    return x - x.detach()
