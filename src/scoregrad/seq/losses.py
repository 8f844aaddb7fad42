"""Sequence policy losses, built on :mod:`scoregrad.surrogate`.

A completion ``y`` is one sample of the product of categoricals ``p(y | x)``, so the plain
score-function surrogate is ``-A * box(log p(y | x))`` with ``log p(y | x) = sum_t log p(y_t | ...)``
(Williams, 1992; ``aggregate="sequence_sum"``). Off-policy data (several optimiser steps per
generation) uses the likelihood ratio against the log-probs recorded at sampling, clipped as in PPO
(Schulman et al., 2017) with DAPO's asymmetric bounds (Yu et al., 2025), per token or, as GSPO
(Zheng et al., 2025), per sequence with the length-normalised ratio. The aggregations are those of
GRPO (``sequence_mean``), DAPO (``token_mean``) and Dr. GRPO (``constant``), and the KL penalty to a
frozen reference model uses Schulman's k1 or k3 estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scoregrad.seq.generation import Rollout, parameter_version, token_log_probs
from scoregrad.surrogate import likelihood_ratio, score_function_surrogate

__all__ = ["AGGREGATIONS", "RATIOS", "KL_ESTIMATORS", "LossTerms", "policy_loss", "kl_penalty"]

AGGREGATIONS = ("sequence_sum", "token_mean", "sequence_mean", "constant")
RATIOS = ("token", "sequence")
KL_ESTIMATORS = ("k1", "k3")


@dataclass
class LossTerms:
    """What :func:`policy_loss` computed, for logging (all detached floats except ``loss``)."""

    loss: Tensor
    clip_fraction: float
    kl: float
    entropy: float
    ratio_mean: float


def kl_penalty(log_probs: Tensor, ref_log_probs: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from tokens drawn from ``pi`` (Schulman, 2020, "Approximating KL").

    ``k1 = log pi - log pi_ref`` (unbiased, can be negative); ``k3 = exp(-k1) + k1 - 1`` (unbiased,
    non-negative, lower variance). Shapes: ``(N, L)`` in, ``(N, L)`` out.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator: expected one of {KL_ESTIMATORS}, got {estimator!r}")
    k1 = log_probs - ref_log_probs
    return k1 if estimator == "k1" else torch.exp(-k1) + k1 - 1


def _aggregate(
    per_token: Tensor, mask: Tensor, aggregate: str, normaliser: dict[str, float] | None = None
) -> Tensor:
    """Reduce ``(N, L)`` per-token terms (zero off ``mask``) to a scalar.

    ``normaliser`` overrides the denominators (``sequences``, ``tokens``) so that micro-batches
    of one batch add up to the loss of the whole batch.
    """
    num_seq = float(normaliser["sequences"]) if normaliser else float(per_token.shape[0])
    per_token = per_token * mask
    if aggregate == "sequence_sum":
        return per_token.sum() / num_seq
    if aggregate == "token_mean":
        tokens = float(normaliser["tokens"]) if normaliser else mask.sum().clamp(min=1)
        return per_token.sum() / tokens
    if aggregate == "sequence_mean":
        return (per_token.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / num_seq
    return per_token.sum() / (num_seq * per_token.shape[1])  # constant (Dr. GRPO)


def policy_loss(
    model: nn.Module,
    rollout: Rollout,
    advantages: Tensor,
    clip: tuple[float, float] | None = None,
    ratio: str = "token",
    aggregate: str = "sequence_sum",
    ref_model: nn.Module | None = None,
    kl_coef: float = 0.0,
    *,
    kl_estimator: str = "k3",
    entropy_coef: float = 0.0,
    mask_truncated: bool = False,
    normaliser: dict[str, float] | None = None,
    return_terms: bool = False,
) -> Tensor | LossTerms:
    """Loss whose gradient is a policy-gradient estimate of ``-grad E[reward]`` over the rollout.

    Args:
        model: the policy (the model that generated ``rollout``, possibly updated since).
        rollout: from :func:`~scoregrad.seq.generate`, ``N`` completions of ``L`` tokens.
        advantages: ``(N,)`` from :func:`~scoregrad.seq.advantages` (treated as constants).
        clip: None (no clipping) or ``(eps_low, eps_high)``: the ratio is clipped to
            ``[1 - eps_low, 1 + eps_high]`` in PPO's pessimistic form.
        ratio: ``"token"``: per-token ratios ``pi(y_t) / q(y_t)``; ``"sequence"``: GSPO's
            ``exp(mean_t log(pi / q))``, one per completion.
        aggregate: ``"sequence_sum"``: the completion is one sample, its log-prob the sum over its
            tokens and its ratio (with ``ratio="token"``) the product of the token ratios, clipped
            as a whole as TRL's RLOO does; mean over completions. ``"token_mean"``: mean over all
            tokens of the batch (DAPO). ``"sequence_mean"``: mean over each completion's tokens,
            then over completions (GRPO). ``"constant"``: sum divided by ``N * L`` (Dr. GRPO).
        ref_model: frozen reference policy for the KL penalty (needed when ``kl_coef > 0``).
        kl_coef: weight of the per-token KL penalty, aggregated like the policy term.
        kl_estimator: ``"k3"`` (default) or ``"k1"``, see :func:`kl_penalty`.
        entropy_coef: subtracts ``entropy_coef *`` the mean per-token entropy of the sampling law.
        mask_truncated: leave out completions with no eos (DAPO's overlong filtering).
        normaliser: ``{"sequences": .., "tokens": ..}`` denominators of the whole batch when
            ``rollout`` is one micro-batch of it (used by the trainer's gradient accumulation).
        return_terms: return a :class:`LossTerms` (loss plus clip fraction, KL, entropy) instead.

    Returns:
        Scalar loss. With ``clip=None, ratio="token", aggregate="sequence_sum", kl_coef=0`` and
        advantages of ``"rloo"`` or ``"none"`` on a rollout of the current model, ``loss.backward()``
        gives an unbiased estimate of ``-grad E[reward]`` (one completion = one sample).
    """
    _check_loss_args(
        rollout, advantages, clip, ratio, aggregate, ref_model, kl_coef, kl_estimator, entropy_coef
    )
    log_probs, entropy, on_policy = _current_log_probs(model, rollout, entropy_coef != 0 or return_terms)
    # on-policy the behaviour law is the current one: the ratio is the magic box (value exactly 1)
    behaviour = None if on_policy else rollout.log_probs
    mask = rollout.mask & ~rollout.truncated.unsqueeze(-1) if mask_truncated else rollout.mask
    adv = advantages.detach().to(log_probs.dtype)
    if aggregate == "sequence_sum" and ratio == "token":
        loss, ratio_mean, clip_fraction = _sequence_loss(log_probs, behaviour, mask, adv, clip, normaliser)
    else:
        loss, ratio_mean, clip_fraction = _token_loss(
            log_probs, behaviour, mask, adv, clip, ratio, aggregate, normaliser
        )
    kl_value = 0.0
    if kl_coef > 0:
        with torch.no_grad():
            ref_log_probs, _ = token_log_probs(ref_model, rollout)
        kl = kl_penalty(log_probs, ref_log_probs, kl_estimator)
        loss = loss + kl_coef * _aggregate(kl, mask, aggregate, normaliser)
        kl_value = _masked_mean(kl, mask, 0.0)
    entropy_value = 0.0
    if entropy is not None:
        entropy_value = _masked_mean(entropy, mask, 0.0)
        if entropy_coef != 0:
            loss = loss - entropy_coef * _aggregate(entropy, mask, "token_mean", normaliser)
    if return_terms:
        return LossTerms(loss, clip_fraction, kl_value, entropy_value, ratio_mean)
    return loss


def _check_loss_args(
    rollout: Rollout,
    advantages: Tensor,
    clip: tuple[float, float] | None,
    ratio: str,
    aggregate: str,
    ref_model: nn.Module | None,
    kl_coef: float,
    kl_estimator: str,
    entropy_coef: float,
) -> None:
    """Validate :func:`policy_loss`'s arguments; each error names the argument."""
    if not isinstance(rollout, Rollout):
        raise TypeError(f"rollout: expected a seq.Rollout from seq.generate, got {type(rollout).__name__}")
    n = rollout.completions.shape[0]
    if not isinstance(advantages, Tensor) or advantages.shape != (n,) or not advantages.is_floating_point():
        raise ValueError(
            f"advantages: expected a float tensor of shape ({n},), got "
            f"{getattr(advantages, 'dtype', type(advantages).__name__)} of shape {tuple(getattr(advantages, 'shape', ()))}"
        )
    if not bool(torch.isfinite(advantages).all()):
        raise ValueError("advantages: contains a non-finite value")
    if clip is not None and (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(isinstance(c, (int, float)) and c >= 0 for c in clip)
    ):
        raise ValueError(f"clip: expected None or (eps_low, eps_high) with both >= 0, got {clip!r}")
    if ratio not in RATIOS:
        raise ValueError(f"ratio: expected one of {RATIOS}, got {ratio!r}")
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate: expected one of {AGGREGATIONS}, got {aggregate!r}")
    if not isinstance(kl_coef, (int, float)) or kl_coef < 0:
        raise ValueError(f"kl_coef: expected a float >= 0, got {kl_coef!r}")
    if kl_coef > 0 and ref_model is None:
        raise ValueError("ref_model: kl_coef > 0 needs a reference model")
    if kl_coef == 0 and ref_model is not None:
        raise ValueError("ref_model: given, but kl_coef is 0, so it would be ignored; pass kl_coef > 0")
    if kl_estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator: expected one of {KL_ESTIMATORS}, got {kl_estimator!r}")
    if not isinstance(entropy_coef, (int, float)):
        raise ValueError(f"entropy_coef: expected a float, got {entropy_coef!r}")


def _current_log_probs(
    model: nn.Module, rollout: Rollout, with_entropy: bool
) -> tuple[Tensor, Tensor | None, bool]:
    """``(log_probs, entropy, on_policy)`` of the rollout's tokens under ``model``, with their graph.

    From the sampling pass when it kept its graph and the weights have not moved since; otherwise
    one teacher-forced forward pass (:func:`token_log_probs`).
    """
    on_policy = rollout.model_version is not None and rollout.model_version == parameter_version(model)
    if on_policy and rollout.sampled_log_probs is not None:
        return rollout.sampled_log_probs, rollout.sampled_entropy, True
    log_probs, entropy = token_log_probs(model, rollout, with_entropy=with_entropy)
    return log_probs, entropy, on_policy


def _sequence_loss(
    log_probs: Tensor,
    behaviour: Tensor | None,
    mask: Tensor,
    adv: Tensor,
    clip: tuple[float, float] | None,
    normaliser: dict[str, float] | None,
) -> tuple[Tensor, float, float]:
    """One completion = one sample of the product of categoricals: ``(loss, ratio mean, clip fraction)``."""
    seq_log_prob = (log_probs * mask).sum(-1)
    seq_behaviour = None if behaviour is None else (behaviour * mask).sum(-1)
    if clip is None and seq_behaviour is None:
        per_seq = -score_function_surrogate(seq_log_prob, adv)
        weight, clipped = torch.ones_like(adv), torch.zeros((), dtype=torch.bool)
    else:
        weight = likelihood_ratio(seq_log_prob, seq_behaviour)
        per_seq, clipped = _clipped(weight, adv, clip)
    n = log_probs.shape[0]
    num_seq = float(normaliser["sequences"]) if normaliser else float(n)
    ratio_mean = float(weight.detach().mean()) if n else 1.0
    clip_fraction = float(clipped.float().mean()) if clipped.dim() else 0.0
    return per_seq.sum() / num_seq, ratio_mean, clip_fraction


def _token_loss(
    log_probs: Tensor,
    behaviour: Tensor | None,
    mask: Tensor,
    adv: Tensor,
    clip: tuple[float, float] | None,
    ratio: str,
    aggregate: str,
    normaliser: dict[str, float] | None,
) -> tuple[Tensor, float, float]:
    """Per-token (or GSPO per-sequence) ratios, aggregated: ``(loss, ratio mean, clip fraction)``."""
    if ratio == "token":
        weight = likelihood_ratio(log_probs, behaviour)
    else:  # GSPO: length-normalised sequence ratio, one per completion
        lengths = mask.sum(-1).clamp(min=1)
        mean_log_prob = (log_probs * mask).sum(-1) / lengths
        mean_behaviour = None if behaviour is None else (behaviour * mask).sum(-1) / lengths
        weight = likelihood_ratio(mean_log_prob, mean_behaviour).unsqueeze(-1)
    clipped = torch.zeros((), dtype=torch.bool)
    if clip is None and behaviour is None and ratio == "token":
        per_token = -score_function_surrogate(log_probs, adv.unsqueeze(-1).expand_as(log_probs))
    else:
        per_token, clipped = _clipped(weight, adv.unsqueeze(-1), clip)
    loss = _aggregate(per_token.expand_as(log_probs), mask, aggregate, normaliser)
    ratio_mean = _masked_mean(weight.detach().expand_as(log_probs), mask, 1.0)
    clip_fraction = _masked_mean(clipped.expand_as(log_probs).float(), mask, 0.0) if clipped.dim() else 0.0
    return loss, ratio_mean, clip_fraction


def _masked_mean(values: Tensor, mask: Tensor, empty: float) -> float:
    """Mean of ``values`` (detached) where ``mask``; ``empty`` when the mask is all False."""
    return float(values.detach()[mask].mean()) if bool(mask.any()) else empty


def _clipped(weight: Tensor, adv: Tensor, clip: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """PPO's pessimistic per-element loss ``-min(w A, clip(w) A)`` and where the clip is active."""
    if clip is None:
        return -weight * adv, torch.zeros((), dtype=torch.bool)
    low, high = 1.0 - clip[0], 1.0 + clip[1]
    unclipped, clipped = weight * adv, weight.clamp(low, high) * adv
    active = ((weight < low) & (adv < 0)) | ((weight > high) & (adv > 0))
    return -torch.min(unclipped, clipped), active
