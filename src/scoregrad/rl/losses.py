"""Policy-gradient losses, built on :mod:`scoregrad.surrogate`.

The policy gradient is the score-function estimator applied to trajectories:
``grad J = E[sum_t grad log pi(a_t|s_t) * Psi_t]`` where ``Psi_t`` is a return, a reward-to-go or
an advantage (Williams, 1992; Schulman et al., 2015). So every loss here is a *surrogate*: its value
is a diagnostic, its gradient is the estimator. The log-derivative trick itself lives once, in
:func:`scoregrad.surrogate.score_function_surrogate` (REINFORCE, A2C) and
:func:`scoregrad.surrogate.likelihood_ratio` (PPO's importance ratio); nothing here re-derives it.

All per-sample arguments share one shape ``S`` (typically the flattened batch ``(B,)``); ``mask``
(bool, shape ``S``) drops autoreset and skipped transitions from every mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoregrad.surrogate import likelihood_ratio, score_function_surrogate

__all__ = [
    "masked_mean",
    "normalize_advantages",
    "batch_mean_baseline",
    "leave_one_out_baseline",
    "reinforce_loss",
    "a2c_policy_loss",
    "ppo_clip_loss",
    "value_loss",
    "entropy_loss",
    "approx_kl",
]


def _same_shape(**tensors: Tensor | None) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if v is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"per-sample tensors must share one shape; got {shapes}")


def masked_mean(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is True (all entries if ``mask`` is None)."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def normalize_advantages(advantages: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Shift and scale advantages to mean 0, std 1 over the (masked) batch.

    A per-batch rescaling of the step size plus a batch-mean baseline; standard in PPO
    (Schulman et al., 2017) implementations. Masked entries come back as 0.
    """
    mean = masked_mean(advantages, mask)
    var = masked_mean((advantages - mean) ** 2, mask)
    out = (advantages - mean) / (var.sqrt() + eps)
    return out if mask is None else out * mask.to(out.dtype)


def batch_mean_baseline(weights: Tensor, mask: Tensor | None = None) -> Tensor:
    """The batch mean of the weights, a scalar baseline (slightly biased: it includes the sample)."""
    return masked_mean(weights, mask).detach()


def leave_one_out_baseline(weights: Tensor, episode: Tensor, mask: Tensor | None = None) -> Tensor:
    """For each sample, the mean weight of the samples from *other* episodes.

    Kool et al. (2019), "Buy 4 REINFORCE Samples, Get a Baseline for Free!": excluding the
    sample's own episode makes the baseline independent of its actions, so the estimate stays
    unbiased. Falls back to 0 when the batch holds a single episode.

    Args:
        weights: shape ``S``, the REINFORCE weights (returns or rewards-to-go).
        episode: shape ``S``, integer episode id of each sample.
        mask: shape ``S`` bool, samples to use.

    Returns:
        Baseline of shape ``S`` (detached).
    """
    _same_shape(weights=weights, episode=episode, mask=mask)
    w = weights.detach().reshape(-1)
    ids = episode.reshape(-1).long()
    m = torch.ones_like(w) if mask is None else mask.reshape(-1).to(w.dtype)
    _, inverse = torch.unique(ids, return_inverse=True)
    n_ep = int(inverse.max().item()) + 1 if inverse.numel() else 0
    ep_sum = torch.zeros(n_ep, dtype=w.dtype).index_add_(0, inverse, w * m)
    ep_count = torch.zeros(n_ep, dtype=w.dtype).index_add_(0, inverse, m)
    others_sum = (w * m).sum() - ep_sum[inverse]
    others_count = m.sum() - ep_count[inverse]
    baseline = torch.where(others_count > 0, others_sum / others_count.clamp_min(1.0), torch.zeros_like(w))
    return baseline.reshape(weights.shape)


def reinforce_loss(
    log_prob: Tensor,
    weights: Tensor,
    baseline: Tensor | float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """REINFORCE loss (Williams, 1992): gradient ``-mean[(weights - baseline) * grad log_prob]``.

    Args:
        log_prob: shape ``S``, ``log pi(a_t|s_t)`` under the current policy.
        weights: shape ``S``, return or reward-to-go of each action (treated as a constant).
        baseline: broadcastable to ``S``; detached, so it must not depend on the action it is
            paired with (a learned ``V(s_t)``, a leave-one-out mean).
        mask: shape ``S`` bool.

    Returns:
        Scalar loss whose gradient is the negated score-function policy-gradient estimate.
    """
    _same_shape(log_prob=log_prob, weights=weights, mask=mask)
    surrogate = score_function_surrogate(log_prob, weights.detach(), baseline)
    return -masked_mean(surrogate, mask)


def a2c_policy_loss(log_prob: Tensor, advantages: Tensor, mask: Tensor | None = None) -> Tensor:
    """Advantage actor-critic policy loss (Mnih et al., 2016): REINFORCE with weights ``A_t``.

    The advantage already has the critic's baseline subtracted, so no baseline is passed again.
    """
    return reinforce_loss(log_prob, advantages, None, mask)


def ppo_clip_loss(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    clip_coef: float,
    mask: Tensor | None = None,
) -> Tensor:
    """PPO's clipped surrogate (Schulman et al., 2017, "Proximal Policy Optimization Algorithms").

    ``L = -mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A))`` with the importance ratio
    ``rho = pi(a|s) / pi_old(a|s)`` from :func:`scoregrad.surrogate.likelihood_ratio`. At
    ``rho = 1`` (first minibatch of an epoch) its gradient equals the REINFORCE/A2C gradient.

    Args:
        log_prob: shape ``S``, under the policy being optimised.
        old_log_prob: shape ``S``, recorded at collection time (constant).
        advantages: shape ``S`` (constant).
        clip_coef: ``eps``, e.g. 0.2.
    """
    _same_shape(log_prob=log_prob, old_log_prob=old_log_prob, advantages=advantages, mask=mask)
    ratio = likelihood_ratio(log_prob, old_log_prob)
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -masked_mean(torch.minimum(unclipped, clipped), mask)


def value_loss(
    values: Tensor,
    returns: Tensor,
    old_values: Tensor | None = None,
    clip_coef: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Half mean squared error of the critic, optionally with PPO-style value clipping.

    With ``clip_coef`` the prediction may move at most ``clip_coef`` from ``old_values`` before the
    loss stops rewarding it (the pessimistic max of clipped and unclipped errors).
    """
    _same_shape(values=values, returns=returns, old_values=old_values, mask=mask)
    returns = returns.detach()
    err = (values - returns) ** 2
    if clip_coef is not None:
        if old_values is None:
            raise ValueError("value clipping needs old_values")
        clipped = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


def entropy_loss(entropy: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative mean entropy; adding ``coef * entropy_loss`` to a loss is an entropy bonus."""
    return -masked_mean(entropy, mask)


@torch.no_grad()
def approx_kl(log_prob: Tensor, old_log_prob: Tensor, mask: Tensor | None = None) -> Tensor:
    """``KL(pi_old || pi)`` estimated as ``mean((rho - 1) - log rho)`` (low-variance, >= 0)."""
    log_ratio = log_prob - old_log_prob
    return masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
