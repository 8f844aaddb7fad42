"""Returns and advantages for policy gradients, as pure functions on time-major tensors.

Every function takes tensors of shape ``(T, N)``: ``T`` steps of ``N`` parallel environments, as a
rollout on a Gymnasium vector env produces them. Two different events end an episode and they are
treated differently (Gymnasium's ``terminated``/``truncated`` split):

* ``terminated[t]``: the MDP reached a terminal state; nothing follows, so no bootstrap.
* ``truncated[t]``: the episode was cut (time limit); the state after step ``t`` still has value,
  so the return bootstraps from ``next_values[t]``, the value of the *true* final observation.

``next_values[t]`` is the value of the observation that step ``t`` led to. With Gymnasium 1.x's
default ``NEXT_STEP`` autoreset that is simply the observation returned by step ``t`` (the reset
only happens on the following call), so ``next_values = cat(values[1:], value(last_obs))``.
The step right after a done is the autoreset step: the env ignores its action, returns the reset
observation and reward 0. It is not a transition of the MDP and must not be learned from; pass
``valid[t] = False`` for it and every function below returns 0 there.

If a rollout ends mid-episode, the last step bootstraps from ``next_values[T - 1]`` (or 0 when
``next_values`` is not given, i.e. pure Monte Carlo).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "discounted_episode_return",
    "reward_to_go",
    "n_step_returns",
    "gae",
    "autoreset_valid_mask",
    "episode_ids",
]


def _check(rewards: Tensor, **others: Tensor | None) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must have shape (T, N); got shape {tuple(rewards.shape)}")
    for name, tensor in others.items():
        if tensor is not None and tensor.shape != rewards.shape:
            raise ValueError(
                f"{name} must have the shape of rewards {tuple(rewards.shape)}; got {tuple(tensor.shape)}"
            )


def _flags(rewards: Tensor, terminated: Tensor, truncated: Tensor, valid: Tensor | None):
    term = terminated.to(rewards.dtype)
    done = (terminated.bool() | truncated.bool()).to(rewards.dtype)
    trunc_only = truncated.to(rewards.dtype) * (1.0 - term)
    valid_f = torch.ones_like(rewards) if valid is None else valid.to(rewards.dtype)
    return term, done, trunc_only, valid_f


def autoreset_valid_mask(previous_done: Tensor, dones: Tensor) -> Tensor:
    """Mask of real transitions under Gymnasium's ``NEXT_STEP`` autoreset.

    Args:
        previous_done: ``(N,)`` bool, whether each env finished on the step before this rollout.
        dones: ``(T, N)`` bool, ``terminated | truncated`` per step.

    Returns:
        ``(T, N)`` bool, False at the autoreset step that follows every done.
    """
    return ~torch.cat([previous_done.bool().unsqueeze(0), dones.bool()[:-1]], dim=0)


def episode_ids(previous_done: Tensor, dones: Tensor) -> Tensor:
    """Integer id of the episode each step belongs to, unique across envs, shape ``(T, N)``.

    A new episode starts after every done (its autoreset step included in the new id; it is masked
    anyway). Used by the leave-one-out baseline.
    """
    starts = torch.cat([previous_done.bool().unsqueeze(0), dones.bool()[:-1]], dim=0).long()
    per_env = torch.cumsum(starts, dim=0)  # (T, N), 0-based within each env
    offsets = torch.cumsum(per_env[-1] + 1, dim=0) - (per_env[-1] + 1)
    return per_env + offsets


def reward_to_go(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    next_values: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma * G_{t+1}`` within each episode.

    Williams (1992), "Simple statistical gradient-following algorithms for connectionist
    reinforcement learning": weighting ``grad log pi(a_t|s_t)`` by the return that follows ``a_t``
    (instead of the whole return) removes terms that have mean zero, so the variance drops.

    Args:
        rewards: ``(T, N)`` float.
        terminated, truncated: ``(T, N)`` bool.
        gamma: discount in ``[0, 1]``.
        next_values: ``(T, N)`` value of the observation each step led to; used at truncations and
            at the end of the rollout. ``None`` means no bootstrap anywhere (Monte Carlo).
        valid: ``(T, N)`` bool, False at autoreset steps (output 0 there).

    Returns:
        ``(T, N)`` returns.
    """
    _check(rewards, terminated=terminated, truncated=truncated, next_values=next_values, valid=valid)
    term, done, trunc_only, valid_f = _flags(rewards, terminated, truncated, valid)
    nv = torch.zeros_like(rewards) if next_values is None else next_values.to(rewards.dtype)
    out = torch.empty_like(rewards)
    following = nv[-1] * (1.0 - term[-1])  # bootstrap past the end of the rollout
    for t in range(rewards.shape[0] - 1, -1, -1):
        cont = (1.0 - done[t]) * following + trunc_only[t] * nv[t]
        if t == rewards.shape[0] - 1:
            cont = (1.0 - term[t]) * nv[t]
        out[t] = (rewards[t] + gamma * cont) * valid_f[t]
        following = out[t]
    return out


def discounted_episode_return(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    next_values: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """The whole discounted return of each episode, given to every step of that episode.

    The original REINFORCE weight (Williams, 1992): every ``grad log pi(a_t|s_t)`` of a trajectory
    is scaled by ``R(tau) = sum_k gamma^k r_k``. An episode that started before the rollout counts
    from its first step inside the rollout. Bootstrapping as in :func:`reward_to_go`.

    Returns:
        ``(T, N)``: at step ``t``, the reward-to-go of the first step of ``t``'s episode segment.
    """
    rtg = reward_to_go(rewards, terminated, truncated, gamma, next_values, valid)
    _, done, _, valid_f = _flags(rewards, terminated, truncated, valid)
    out = torch.empty_like(rtg)
    current = rtg[0]
    for t in range(rewards.shape[0]):
        # a new segment starts at the first valid step after a done (or at t = 0)
        if t > 0:
            start = torch.maximum(done[t - 1], 1.0 - valid_f[t - 1])
            current = torch.where(start.bool(), rtg[t], current)
        out[t] = current * valid_f[t]
    return out


def n_step_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    next_values: Tensor,
    gamma: float,
    n: int,
    valid: Tensor | None = None,
) -> Tensor:
    """n-step bootstrapped returns ``sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n})``.

    Mnih et al. (2016), "Asynchronous Methods for Deep Reinforcement Learning" (A3C/A2C) use this
    target. The sum stops early at a done (bootstrap only if truncated) or at the rollout's end
    (bootstrap from ``next_values[T - 1]``).

    Args:
        next_values: ``(T, N)`` value of the observation each step led to (required).
        n: number of reward terms, ``n >= 1``.

    Returns:
        ``(T, N)`` returns.
    """
    _check(rewards, terminated=terminated, truncated=truncated, next_values=next_values, valid=valid)
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    term, done, _, valid_f = _flags(rewards, terminated, truncated, valid)
    T = rewards.shape[0]
    out = torch.zeros_like(rewards)
    active = torch.ones_like(rewards)
    for k in range(min(n, T)):
        # row t of each shifted tensor holds step t + k (zero beyond the rollout)
        r = torch.zeros_like(rewards)
        r[: T - k] = rewards[k:]
        d = torch.ones_like(rewards)
        d[: T - k] = done[k:]
        tm = torch.ones_like(rewards)
        tm[: T - k] = term[k:]
        v = torch.zeros_like(rewards)
        v[: T - k] = next_values[k:].to(rewards.dtype)
        at_end = torch.zeros_like(rewards)
        at_end[T - k - 1 :] = 1.0  # step t + k is the last one of the rollout
        out = out + active * gamma**k * r
        stop = torch.clamp(d + at_end + float(k == n - 1), max=1.0)
        out = out + active * stop * (1.0 - tm) * gamma ** (k + 1) * v
        active = active * (1.0 - stop)
    return out * valid_f


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation, GAE(lambda).

    Schulman et al. (2015), "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation": ``A_t = sum_k (gamma lambda)^k delta_{t+k}`` with
    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``; lambda trades bias (0: one-step TD) for variance
    (1: Monte Carlo return minus ``V``). ``V(s_{t+1})`` is dropped at terminations only.

    Args:
        rewards, values, next_values: ``(T, N)`` float; ``values[t] = V(s_t)``.
        terminated, truncated: ``(T, N)`` bool.
        gamma, lam: discount and GAE lambda in ``[0, 1]``.
        valid: ``(T, N)`` bool, False at autoreset steps.

    Returns:
        ``(advantages, returns)``, each ``(T, N)``; ``returns = advantages + values`` is the value
        target (0 at invalid steps).
    """
    _check(rewards, values=values, next_values=next_values, terminated=terminated, truncated=truncated)
    term, done, _, valid_f = _flags(rewards, terminated, truncated, valid)
    deltas = rewards + gamma * (1.0 - term) * next_values - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (deltas[t] + gamma * lam * (1.0 - done[t]) * running) * valid_f[t]
        advantages[t] = running
    return advantages, (advantages + values) * valid_f
