"""The protocol every policy-gradient algorithm implements, and the pieces they share.

An algorithm is a small object built from its config with one method,
``update(policy, buffer, step, generator) -> stats``, that reads top to bottom the way CleanRL's
``ppo.py`` does: advantages of the rollout in ``buffer`` -> the batch of valid transitions ->
minibatches -> loss -> ``step(loss, stats, share)``. The trainer calls it once per rollout and knows
nothing else about it (:data:`scoregrad.rl.algorithms.ALGORITHMS` maps a name to its class). ``step``
is the trainer's optimiser step (gradient clipping, the non-finite check, the update counter);
``generator`` is the run's RNG, so minibatch order is reproducible and survives a resume.

Data parallelism (:mod:`scoregrad.distributed`) touches one line of an algorithm: ``buffer`` holds the
rollouts of *all* processes, everything that needs no network (advantages, baselines from other
samples, minibatch order, advantage normalisation) is computed on the whole (mini)batch, and the
network's forward and backward run on ``step.share(n)``, this process's rows; ``step`` then sums the
gradients over processes. In a single process the share is the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from scoregrad.rl import losses, returns
from scoregrad.rl.config import CommonConfig
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import RolloutBuffer

__all__ = ["Algorithm", "Batch", "Share", "Step", "gae_advantages", "evaluate_actions", "total_loss"]


@dataclass(frozen=True)
class Share:
    """The rows of an ``n``-row (mini)batch that this process computes, and their weight (fraction of ``n``).

    A loss that is a mean over the share, multiplied by ``weight`` and summed over processes, is the
    mean over the whole batch; :meth:`normalize` standardises a per-row quantity over the whole batch.
    """

    rows: slice
    weight: float
    world: int = 1

    def normalize(self, x: Tensor) -> Tensor:
        """:func:`~scoregrad.rl.losses.normalize_advantages` of ``x`` (this share's rows) over all processes."""
        if self.world == 1:
            return losses.normalize_advantages(x)
        from scoregrad import distributed

        total = torch.stack([x.sum(), torch.tensor(float(len(x)), dtype=x.dtype)])
        distributed.all_reduce_sum([total])
        mean = total[0] / total[1]
        sq = (x - mean).pow(2).sum().reshape(1)
        distributed.all_reduce_sum([sq])
        return (x - mean) / ((sq[0] / total[1]).sqrt() + 1e-8)


class Step(Protocol):
    """The trainer's optimiser step, as an algorithm sees it."""

    def share(self, n: int) -> Share:
        """This process's rows of an ``n``-row (mini)batch (all of them in a single process)."""
        ...

    def __call__(self, loss: Tensor, stats: dict[str, Tensor], share: Share) -> dict[str, Tensor]:
        """Backward of ``share.weight * loss``, sum the gradients (and the weighted ``stats``) over
        processes, clip, check for non-finite values, step; returns ``stats`` averaged over the batch."""
        ...


class Algorithm(Protocol):
    """``Algorithm(config).update(policy, buffer, step, generator) -> {stat name: scalar}``."""

    name: ClassVar[str]

    def __init__(self, config: CommonConfig) -> None: ...

    def update(
        self, policy: ActorCritic, buffer: RolloutBuffer, step: Step, generator: torch.Generator
    ) -> dict[str, Tensor]: ...


@dataclass
class Batch:
    """The valid transitions of one rollout, flattened to ``B`` entries (autoreset/skipped steps dropped).

    Shapes: ``obs (B, obs_dim)``, ``actions (B, *raw_action_shape)``, ``action_masks (B, n)`` or None,
    the rest ``(B,)``; ``episode`` holds episode ids (for the leave-one-out baseline) or None.
    """

    obs: Tensor
    actions: Tensor
    action_masks: Tensor | None
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    targets: Tensor
    episode: Tensor | None = None

    @classmethod
    def from_rollout(
        cls, b: RolloutBuffer, advantages: Tensor, targets: Tensor, episode: Tensor | None = None
    ) -> Batch:
        """Flatten the ``(T, N, ...)`` buffer and the ``(T, N)`` advantages and keep the valid steps."""
        idx = torch.nonzero(b.valid.flatten()).squeeze(-1)
        flat = {
            "obs": b.obs.flatten(0, 1),
            "actions": b.actions.flatten(0, 1),
            "action_masks": None if b.action_masks is None else b.action_masks.flatten(0, 1),
            "log_probs": b.log_probs.flatten(),
            "values": b.values.flatten(),
            "advantages": advantages.flatten(),
            "targets": targets.flatten(),
            "episode": None if episode is None else episode.flatten(),
        }
        return cls(**{k: None if v is None else v[idx] for k, v in flat.items()})

    def __len__(self) -> int:
        return self.log_probs.shape[0]

    def __getitem__(self, idx: Tensor) -> Batch:
        """The minibatch of entries ``idx``."""
        return replace(
            self,
            **{f.name: getattr(self, f.name)[idx] for f in fields(self) if getattr(self, f.name) is not None},
        )


def gae_advantages(b: RolloutBuffer, config: CommonConfig) -> tuple[Tensor, Tensor]:
    """GAE advantages and value targets ``(T, N)`` (Schulman et al., 2015), for A2C and PPO."""
    return returns.gae(
        b.rewards,
        b.values,
        b.next_values(),
        b.terminated,
        b.truncated,
        config.gamma,
        config.gae_lambda,
        b.valid,
    )


def evaluate_actions(policy: ActorCritic, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """``log pi(a|s)``, the entropy and ``V(s)`` of the batch's stored actions, each ``(B,)``."""
    dist = policy.distribution(batch.obs, batch.action_masks)
    return dist.log_prob(batch.actions), dist.entropy(), policy.value(batch.obs)


def total_loss(
    config: CommonConfig, policy_loss: Tensor, value_loss: Tensor, entropy: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """``policy_loss + vf_coef value_loss - ent_coef mean(entropy)`` and its parts for the log."""
    ent = losses.entropy_loss(entropy)
    loss = policy_loss + config.vf_coef * value_loss + config.ent_coef * ent
    stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": -ent.detach()}
    return loss, stats
