"""PPO: proximal policy optimisation, clipped objective (Schulman et al., 2017).

Per rollout: GAE advantages (Schulman et al., 2015), then ``update_epochs`` passes over the batch in
``num_minibatches`` shuffled minibatches, each one step on the clipped ratio surrogate, the clipped
value loss and the entropy bonus; a pass ends the update early when the approximate KL of its last
minibatch exceeds ``target_kl``. As in CleanRL's ``ppo.py``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from scoregrad.rl import losses
from scoregrad.rl.algorithms.base import Batch, Step, evaluate_actions, gae_advantages, total_loss
from scoregrad.rl.config import PPOConfig
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import RolloutBuffer

__all__ = ["PPO"]


class PPO:
    name: ClassVar[str] = "ppo"

    def __init__(self, config: PPOConfig) -> None:
        self.config = config

    def update(
        self, policy: ActorCritic, buffer: RolloutBuffer, step: Step, generator: torch.Generator
    ) -> dict[str, Tensor]:
        cfg = self.config
        # 1. advantages
        batch = Batch.from_rollout(buffer, *gae_advantages(buffer, cfg))
        n = len(batch)
        size = max(n // cfg.num_minibatches, 1)
        stats: dict[str, Tensor] = {}
        for _epoch in range(cfg.update_epochs):
            # 2. minibatches, in a fresh order each epoch
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - size + 1, size):
                stats = self.minibatch_step(policy, batch[order[start : start + size]], step)
            if cfg.target_kl > 0 and stats["approx_kl"] > cfg.target_kl:
                break  # the policy moved too far from the one that collected the data
        return stats

    def minibatch_step(self, policy: ActorCritic, mb: Batch, step: Step) -> dict[str, Tensor]:
        """3. loss and 4. step on one minibatch (this process's share of it)."""
        cfg = self.config
        adv = losses.normalize_advantages(mb.advantages) if cfg.norm_adv else mb.advantages
        mine = step.share(len(mb))
        mb, adv = mb[mine.rows], adv[mine.rows]
        log_prob, entropy, values = evaluate_actions(policy, mb)
        policy_loss = losses.ppo_clip_loss(log_prob, mb.log_probs, adv, cfg.clip_coef)
        value_loss = losses.value_loss(
            values, mb.targets, mb.values, cfg.clip_coef if cfg.clip_vloss else None
        )
        loss, stats = total_loss(cfg, policy_loss, value_loss, entropy)
        kl = losses.approx_kl(log_prob, mb.log_probs)  # before the step: how far the last one moved
        return step(loss, {"approx_kl": kl, **stats}, mine)
