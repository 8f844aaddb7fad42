"""REINFORCE (Williams, 1992): Monte Carlo policy gradient with a baseline from the core's protocol.

Per rollout: the weights of ``grad log pi(a_t|s_t)`` (reward-to-go, or the whole discounted return),
a baseline ``b`` subtracted from them, and one gradient step on ``-mean((w - b) log pi)``. Baselines
follow :class:`scoregrad.baselines.Baseline`, ``baseline(weights, context=) -> (b, fit_loss)``:

* ``none``: :class:`scoregrad.baselines.NoBaseline`;
* ``mean``: the batch mean of the weights;
* ``leave_one_out``: for each step, the mean weight of the steps of *other* episodes (Kool et al., 2019);
* ``value``: the critic ``V(s)`` as the learned baseline, fitted by its squared error (its
  ``fit_loss``), and used to bootstrap episodes that the rollout cut (Sutton et al., 2000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from scoregrad.baselines import Baseline, NoBaseline
from scoregrad.rl import losses, returns
from scoregrad.rl.algorithms.base import Batch, Step, evaluate_actions, total_loss
from scoregrad.rl.config import ReinforceConfig
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import RolloutBuffer

__all__ = ["Reinforce", "BatchMean", "EpisodeLeaveOneOut", "ValueFunction", "RL_BASELINES"]


@dataclass
class Context:
    """What an RL baseline may look at: the critic's ``values (B,)`` and the ``episode (B,)`` ids."""

    values: Tensor
    episode: Tensor | None


class BatchMean:
    """The batch mean of the weights (slightly biased: each weight is part of its own baseline)."""

    uses_other_samples = True

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return losses.batch_mean_baseline(values), None


class EpisodeLeaveOneOut:
    """Leave one *episode* out: ``b_t`` is the mean weight of the steps of the other episodes.

    The core's :class:`scoregrad.baselines.LeaveOneOut` leaves out one of ``n`` iid samples along a
    dimension; here the iid unit is the episode, episodes have unequal lengths, and the steps of one
    episode depend on each other's actions, so the whole episode is left out
    (:func:`scoregrad.rl.losses.leave_one_out_baseline`, one implementation). With one step per
    episode the two coincide.
    """

    uses_other_samples = True

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return losses.leave_one_out_baseline(values, context.episode), None


class ValueFunction:
    """The critic as the learned baseline: ``b = V(s)`` (detached), fitted by ``0.5 (V(s) - w)^2``."""

    uses_other_samples = False

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return context.values.detach(), losses.value_loss(context.values, values)


#: ``ReinforceConfig.baseline`` names -> baseline objects of the core's protocol.
RL_BASELINES: dict[str, type[Baseline]] = {
    "none": NoBaseline,
    "mean": BatchMean,
    "leave_one_out": EpisodeLeaveOneOut,
    "value": ValueFunction,
}


class Reinforce:
    name: ClassVar[str] = "reinforce"

    def __init__(self, config: ReinforceConfig) -> None:
        self.config = config
        self.baseline: Baseline = RL_BASELINES[config.baseline]()
        self.weight_fn = (
            returns.reward_to_go if config.weights == "reward_to_go" else returns.discounted_episode_return
        )

    def update(
        self, policy: ActorCritic, buffer: RolloutBuffer, step: Step, generator: torch.Generator
    ) -> dict[str, Tensor]:
        cfg, b = self.config, buffer
        # 1. Monte Carlo weights; bootstrap cut episodes only when a critic exists
        bootstrap = b.next_values() if cfg.baseline == "value" else None
        weights = self.weight_fn(b.rewards, b.terminated, b.truncated, cfg.gamma, bootstrap, b.valid)
        episode = returns.episode_ids(b.start_done, b.terminated | b.truncated)
        batch = Batch.from_rollout(b, weights, weights, episode)
        # 2. baseline and loss on the whole batch (this process's share of it): a baseline built from
        # the other samples sees the whole batch, the critic sees the share it computes
        mine = step.share(len(batch))
        if self.baseline.uses_other_samples:
            baseline, fit_loss = self.baseline(batch.advantages, context=Context(None, batch.episode))
            if baseline is not None and baseline.dim() > 0:  # a scalar baseline applies to every row
                baseline = baseline[mine.rows]
            batch = batch[mine.rows]
            log_prob, entropy, values = evaluate_actions(policy, batch)
        else:
            batch = batch[mine.rows]
            log_prob, entropy, values = evaluate_actions(policy, batch)
            baseline, fit_loss = self.baseline(batch.advantages, context=Context(values, batch.episode))
        if cfg.norm_adv:
            centred = batch.advantages - (0.0 if baseline is None else baseline)
            policy_loss = losses.reinforce_loss(log_prob, mine.normalize(centred))
        else:
            policy_loss = losses.reinforce_loss(log_prob, batch.advantages, baseline)
        value_loss = fit_loss if fit_loss is not None else torch.zeros(())
        loss, stats = total_loss(cfg, policy_loss, value_loss, entropy)
        # 3. one step
        return step(loss, stats, mine)
