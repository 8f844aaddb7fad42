"""Sequence rewards: train any autoregressive model on a non-differentiable score of its samples.

A completion is one sample of a product of categoricals, so the score-function estimator of
:mod:`scoregrad.surrogate` applies, with group baselines (RLOO, GRPO, Dr. GRPO, REINFORCE++, SCST)
and the clipped ratios of PPO, DAPO and GSPO::

    from scoregrad import seq
    rollout = seq.generate(model, prompts, num_samples=4, max_new_tokens=16)
    adv = seq.advantages(rewards, rollout.group, method="rloo")
    loss = seq.policy_loss(model, rollout, adv)
    model = seq.train(model, reward_fn, prompts, method="grpo", num_samples=8, steps=200)

``model(ids (B, T)) -> logits (B, T, V)`` is all a model needs; :class:`SupportsKVCache` makes
generation incremental, and :mod:`scoregrad.seq.hf` adapts Hugging Face causal LMs.
"""

from __future__ import annotations

from scoregrad.seq.advantages import METHODS, advantages, group_std_is_zero
from scoregrad.seq.config import TRAINER_METHODS, SeqConfig
from scoregrad.seq.generation import (
    Rollout,
    SupportsKVCache,
    generate,
    pad_prompts,
    process_logits,
    token_log_probs,
)
from scoregrad.seq.losses import LossTerms, kl_penalty, policy_loss
from scoregrad.seq.trainer import RewardError, Trainer, train

__all__ = [
    "Rollout",
    "SupportsKVCache",
    "generate",
    "token_log_probs",
    "process_logits",
    "pad_prompts",
    "advantages",
    "group_std_is_zero",
    "METHODS",
    "policy_loss",
    "kl_penalty",
    "LossTerms",
    "SeqConfig",
    "TRAINER_METHODS",
    "Trainer",
    "train",
    "RewardError",
]
