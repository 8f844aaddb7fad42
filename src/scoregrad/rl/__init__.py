"""Policy gradients on Gymnasium: REINFORCE, A2C and PPO built on scoregrad's surrogate losses.

Quick start::

    from scoregrad import rl
    agent = rl.train("CartPole-v1", algo="ppo", total_steps=100_000, seed=0)
    mean_return, std_return = rl.evaluate(agent, "CartPole-v1", episodes=20, seed=1000)
    agent.save("runs/cartpole"); agent = rl.load("runs/cartpole")
    action = agent.act(observation, deterministic=True)
"""

from __future__ import annotations

from scoregrad.rl import checkpoint, config, losses, returns
from scoregrad.rl.checkpoint import CheckpointError
from scoregrad.rl.config import A2CConfig, CommonConfig, ConfigError, PPOConfig, ReinforceConfig, config_for
from scoregrad.rl.policies import ActorCritic, PolicyConfig, UnsupportedSpaceError
from scoregrad.rl.presets import PRESETS
from scoregrad.rl.rollout import NonFiniteError, make_vector_env
from scoregrad.rl.trainer import (
    RESUMABLE_FIELDS,
    Agent,
    EvaluationError,
    ResumeMismatchError,
    RunExistsError,
    SpaceMismatchError,
    Trainer,
    evaluate,
    load,
    resume,
    train,
)

__all__ = [
    "train",
    "evaluate",
    "load",
    "resume",
    "Agent",
    "Trainer",
    "ActorCritic",
    "PolicyConfig",
    "PPOConfig",
    "A2CConfig",
    "ReinforceConfig",
    "CommonConfig",
    "config_for",
    "PRESETS",
    "make_vector_env",
    "NonFiniteError",
    "CheckpointError",
    "UnsupportedSpaceError",
    "ConfigError",
    "RunExistsError",
    "ResumeMismatchError",
    "SpaceMismatchError",
    "EvaluationError",
    "RESUMABLE_FIELDS",
    "checkpoint",
    "returns",
    "losses",
    "config",
]
