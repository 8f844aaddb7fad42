"""Group advantages for sequence rewards: pure functions of the rewards and the group index.

Each prompt's ``G`` completions are iid draws from the policy, so any statistic of the *other*
completions of a prompt is a baseline that leaves the score-function estimator unbiased (Kool et
al., 2019). The group mean and standard deviation that GRPO uses include the sample itself, which
biases the gradient slightly (Liu et al., 2025, "Understanding R1-Zero-Like Training", the Dr. GRPO
paper); the methods table in the README says which method is which.

``rewards`` is ``(N,)`` and ``group`` is ``(N,)`` long (``rollout.group``); the result is ``(N,)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoregrad.baselines import leave_one_out_mean

__all__ = ["METHODS", "advantages", "group_std_is_zero"]

#: Advantage methods and what they do (baseline; normalisation).
METHODS = {
    "rloo": "mean of the other G-1 completions of the prompt; none (Kool et al., 2019; Ahmadian et al., 2024)",
    "grpo": "group mean; divided by the group std + 1e-4 (Shao et al., 2024, DeepSeekMath)",
    "dr_grpo": "group mean; none (Liu et al., 2025, Dr. GRPO)",
    "reinforce++": "group mean; divided by the batch std of the centred rewards + 1e-4 (Hu et al., 2025)",
    "scst": "the greedy decode's reward (baseline_rewards); none (Rennie et al., 2017)",
    "none": "no baseline; none (Williams, 1992)",
}
_EPS = 1e-4  # as TRL, so the values agree


def _groups(group: Tensor, valid: Tensor) -> list[Tensor]:
    """Row indices of each group's valid members, groups in increasing id."""
    return [torch.nonzero((group == g) & valid).squeeze(-1) for g in torch.unique(group).tolist()]


def _dense(group: Tensor, valid: Tensor) -> int | None:
    """G when the rows are contiguous equal groups 0,0,..,1,1,.. and all valid (the fast path), else None."""
    n = group.shape[0]
    if not bool(valid.all()) or n == 0:
        return None
    size = int((group == group[0]).sum())
    if n % size:
        return None
    expected = torch.arange(n // size, device=group.device).repeat_interleave(size)
    return size if torch.equal(group - group[0], expected) else None


def advantages(
    rewards: Tensor,
    group: Tensor,
    method: str = "rloo",
    *,
    baseline_rewards: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Advantages of ``N`` completions from their rewards and their prompt (group) index.

    Args:
        rewards: ``(N,)`` float rewards (finite where ``valid``).
        group: ``(N,)`` long, the prompt of each completion (``rollout.group``).
        method: one of :data:`METHODS`: ``"rloo"``, ``"grpo"``, ``"dr_grpo"``, ``"reinforce++"``,
            ``"scst"``, ``"none"``.
        baseline_rewards: ``"scst"`` only: the reward of each prompt's greedy decode, ``(N,)`` (per
            completion) or ``(num_groups,)`` (indexed by ``group``).
        valid: ``(N,)`` bool; False marks a completion with no reward (a reward function returned
            None): it is left out of its group's baseline and statistics and gets advantage 0.

    Returns:
        ``(N,)`` advantages, detached. With ``"rloo"`` or ``"none"`` (and ``"scst"``, whose baseline
        does not depend on the samples) the score-function gradient is unbiased.
    """
    valid = _check_inputs(rewards, group, method, baseline_rewards, valid)
    rewards = rewards.detach()
    clean = torch.where(valid, rewards, torch.zeros_like(rewards))
    if method == "none":
        return clean
    if method == "scst":
        return _self_critical(clean, group, valid, baseline_rewards)
    size = _dense(group, valid)
    if size is not None:  # contiguous equal groups, every reward present: one reshape
        _check_group_size(method, size)
        return _dense_advantages(clean.view(-1, size), method).reshape(-1)
    sizes = torch.unique(group, return_counts=True)[1]
    _check_group_size(method, int(sizes.min()) if sizes.numel() else 2)
    return _ragged_advantages(clean, group, valid, method)


def _check_inputs(
    rewards: Tensor, group: Tensor, method: str, baseline_rewards: Tensor | None, valid: Tensor | None
) -> Tensor:
    """Validate :func:`advantages`' arguments (each error names one); returns ``valid`` (all True if None)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    if not isinstance(rewards, Tensor) or rewards.dim() != 1 or not rewards.is_floating_point():
        raise ValueError(
            f"rewards: expected a 1-D float tensor (N,), got {getattr(rewards, 'dtype', type(rewards).__name__)} "
            f"of shape {tuple(getattr(rewards, 'shape', ()))}"
        )
    n = rewards.shape[0]
    if not isinstance(group, Tensor) or group.shape != (n,) or group.dtype != torch.long:
        raise ValueError(
            f"group: expected a ({n},) LongTensor, got {getattr(group, 'dtype', type(group).__name__)} "
            f"of shape {tuple(getattr(group, 'shape', ()))}"
        )
    if valid is None:
        valid = torch.ones(n, dtype=torch.bool, device=rewards.device)
    elif not isinstance(valid, Tensor) or valid.shape != (n,) or valid.dtype != torch.bool:
        raise ValueError(
            f"valid: expected a ({n},) bool tensor, got {getattr(valid, 'dtype', type(valid).__name__)} "
            f"of shape {tuple(getattr(valid, 'shape', ()))}"
        )
    bad = valid & ~torch.isfinite(rewards.detach())
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(f"rewards: non-finite value {rewards[i].item()} at index {i}")
    if method != "scst" and baseline_rewards is not None:
        raise ValueError(f"baseline_rewards: only used by method='scst', got method={method!r}")
    return valid


def _check_group_size(method: str, smallest: int) -> None:
    if smallest < 2:
        raise ValueError(
            f"group: method={method!r} needs at least 2 completions per prompt (num_samples >= 2), got 1"
        )


def _self_critical(clean: Tensor, group: Tensor, valid: Tensor, baseline_rewards: Tensor | None) -> Tensor:
    """SCST (Rennie et al., 2017): the reward minus the greedy decode's reward of the same prompt."""
    if baseline_rewards is None:
        raise ValueError("baseline_rewards: method='scst' needs the greedy decodes' rewards")
    n = clean.shape[0]
    baseline = torch.as_tensor(baseline_rewards, dtype=clean.dtype, device=clean.device)
    num_groups = int(group.max()) + 1 if n else 0
    if baseline.shape == (num_groups,) and baseline.shape != (n,):
        baseline = baseline[group]
    if baseline.shape != (n,):
        raise ValueError(
            f"baseline_rewards: expected shape ({n},) or ({num_groups},), got {tuple(baseline.shape)}"
        )
    if not bool(torch.isfinite(baseline).all()):
        raise ValueError("baseline_rewards: contains a non-finite value")
    return torch.where(valid, clean - baseline, torch.zeros_like(clean))


def _dense_advantages(grouped: Tensor, method: str) -> Tensor:
    """``(num_groups, G)`` rewards -> advantages of the same shape (every reward present)."""
    if method == "rloo":
        return grouped - leave_one_out_mean(grouped, dim=1)
    centred = grouped - grouped.mean(1, keepdim=True)
    if method == "grpo":
        return centred / (grouped.std(1, keepdim=True) + _EPS)
    if method == "reinforce++":
        return centred / (centred.std() + _EPS)
    return centred  # dr_grpo


def _ragged_advantages(clean: Tensor, group: Tensor, valid: Tensor, method: str) -> Tensor:
    """The statistics of :func:`_dense_advantages`, one group at a time over its valid members."""
    out = torch.zeros_like(clean)
    for rows in _groups(group, valid):
        if rows.numel() < 2:  # a single rewarded completion has no baseline: no signal, advantage 0
            continue
        values = clean[rows]
        if method == "rloo":
            out[rows] = values - leave_one_out_mean(values, dim=0)
        else:
            out[rows] = values - values.mean()
            if method == "grpo":
                out[rows] = out[rows] / (values.std() + _EPS)
    if method == "reinforce++":
        out = torch.where(valid, out / (out[valid].std() + _EPS), out)
    return out


def group_std_is_zero(rewards: Tensor, group: Tensor, valid: Tensor | None = None) -> Tensor:
    """``(N,)`` bool: True where the completion's group has rewards of zero spread (no signal).

    DAPO's dynamic sampling (Yu et al., 2025) drops these groups.
    """
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    out = torch.zeros_like(valid)
    for g in torch.unique(group).tolist():
        rows = (group == g) & valid
        values = rewards[rows]
        out[group == g] = values.numel() < 2 or bool((values.max() - values.min()).abs() == 0)
    return out
