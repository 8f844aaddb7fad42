"""A2C: synchronous advantage actor-critic (Mnih et al., 2016, "Asynchronous Methods for Deep RL").

One gradient step per rollout on the whole batch: the policy-gradient surrogate weighted by GAE
advantages (Schulman et al., 2015; ``gae_lambda=1`` is the classic n-step advantage), plus the
critic's squared error and the entropy bonus.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from scoregrad.rl import losses
from scoregrad.rl.algorithms.base import Batch, Step, evaluate_actions, gae_advantages, total_loss
from scoregrad.rl.config import A2CConfig
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import RolloutBuffer

__all__ = ["A2C"]


class A2C:
    name: ClassVar[str] = "a2c"

    def __init__(self, config: A2CConfig) -> None:
        self.config = config

    def update(
        self, policy: ActorCritic, buffer: RolloutBuffer, step: Step, generator: torch.Generator
    ) -> dict[str, Tensor]:
        cfg = self.config
        # 1. advantages: GAE with the critic as the learned baseline
        batch = Batch.from_rollout(buffer, *gae_advantages(buffer, cfg))
        # 2. loss on the whole batch (this process's share of it)
        adv = losses.normalize_advantages(batch.advantages) if cfg.norm_adv else batch.advantages
        mine = step.share(len(batch))
        batch, adv = batch[mine.rows], adv[mine.rows]
        log_prob, entropy, values = evaluate_actions(policy, batch)
        policy_loss = losses.a2c_policy_loss(log_prob, adv)
        loss, stats = total_loss(cfg, policy_loss, losses.value_loss(values, batch.targets), entropy)
        # 3. one step
        return step(loss, stats, mine)
