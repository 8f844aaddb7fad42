"""A trained policy: :class:`Agent` (``act``, ``save``), :func:`load` and :func:`evaluate`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from scoregrad.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scoregrad.rl.config import CommonConfig
from scoregrad.rl.normalization import ObservationNormalizer
from scoregrad.rl.policies import ActorCritic, PolicyConfig, space_from_json
from scoregrad.rl.rollout import EnvLike, make_vector_env
from scoregrad.rl.state import agent_state, check_run_checkpoint, config_from_meta, load_policy

if TYPE_CHECKING:
    from scoregrad.rl.trainer import Trainer

__all__ = [
    "Agent",
    "load",
    "evaluate",
    "check_spaces",
    "policy_config",
    "SpaceMismatchError",
    "EvaluationError",
]


class SpaceMismatchError(ValueError):
    """An env's observation or action space differs from the agent's."""


class EvaluationError(FloatingPointError):
    """Evaluation produced a non-finite return."""


def policy_config(config: CommonConfig) -> PolicyConfig:
    """The architecture fields of a run's config."""
    return PolicyConfig(
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        log_std_init=config.log_std_init,
        state_dependent_std=config.state_dependent_std,
        squash=config.squash,
    )


class Agent:
    """A trained policy: ``act``, ``save``; ``rl.evaluate(agent, env)`` and ``rl.load(path)``."""

    def __init__(
        self,
        policy: ActorCritic,
        algo: str,
        config: CommonConfig,
        env_id: str | None = None,
        obs_normalizer: ObservationNormalizer | None = None,
    ):
        self.policy = policy
        self.algo = algo
        self.config = config
        self.env_id = env_id
        self.obs_normalizer = obs_normalizer
        self.trainer: Trainer | None = None  # set while/after training, so save() can resume
        self.best: Agent | None = None  # with keep_best: the best policy found by periodic evaluation
        self._checkpoint: tuple[dict[str, Tensor], dict[str, Any]] | None = None

    def preprocess(self, obs: np.ndarray) -> Tensor:
        """Raw batched observations ``(B, *obs_shape)`` -> policy input ``(B, obs_dim)``."""
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer(np.asarray(obs, np.float64).reshape(len(obs), -1), update=False)
        return self.policy.preprocess(torch.as_tensor(np.asarray(obs)))

    @torch.no_grad()
    def act(self, observation: Any, deterministic: bool = False, action_mask: Any = None) -> Any:
        """The action for one observation (or a batch with a leading axis), in the env's format.

        Args:
            observation: one observation of the env's observation space, or a batch ``(B, ...)``.
            deterministic: take the distribution's mode instead of sampling.
            action_mask: optional boolean mask of allowed actions (Discrete/MultiDiscrete).
        """
        obs = np.asarray(observation)
        single_shape = self.policy.observation_space.shape
        batched = obs.ndim == len(single_shape) + 1
        if not batched:
            obs = obs[None]
        mask = None
        if action_mask is not None:
            mask = torch.as_tensor(np.asarray(action_mask, dtype=bool))
            mask = mask if batched else mask[None]
        dist = self.policy.distribution(self.preprocess(obs), mask)
        action = self.policy.to_env_action(dist.mode() if deterministic else dist.sample())
        return action if batched else action[0]

    def save(self, path: str | Path) -> Path:
        """Save a checkpoint under ``path`` (crash-safe; see :mod:`scoregrad.rl.checkpoint`) for :func:`load`.

        Returns the new checkpoint version's directory, ``path/checkpoints/NNNNNN``.
        """
        if self.trainer is not None:
            tensors, meta = self.trainer.state()
        elif self._checkpoint is not None:
            tensors, meta = self._checkpoint
        else:
            tensors, meta = agent_state(self)
        return save_checkpoint(path, tensors, meta)


def load(path: str | Path, policy: ActorCritic | None = None) -> Agent:
    """Load an agent saved with :meth:`Agent.save` (or a run directory).

    Runs whose policy had custom ``nn.Module``s cannot be rebuilt without pickle: pass the same
    (untrained) ``policy`` and its weights are loaded into it.
    """
    tensors, meta = load_checkpoint(path, validate=check_run_checkpoint)
    arch = meta["architecture"]
    config = config_from_meta(meta)
    if policy is None:
        if arch.get("custom_modules"):
            raise CheckpointError(
                f"{path} was trained with a custom actor/critic module; rebuild it and pass it as "
                "rl.load(path, policy=ActorCritic(..., actor=MyActor()))"
            )
        try:
            pc = arch["policy"]
            policy = ActorCritic(
                space_from_json(arch["observation_space"]),
                space_from_json(arch["action_space"]),
                PolicyConfig(**{**pc, "hidden_sizes": tuple(pc["hidden_sizes"])}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint.json.architecture.policy is invalid: {err!r}") from err
    agent = Agent(policy, meta["algo"], config, meta.get("env_id"))
    load_policy(agent, tensors, meta)
    agent._checkpoint = (tensors, meta)
    return agent


@torch.no_grad()
def evaluate(
    agent: Agent,
    env: EnvLike,
    episodes: int = 20,
    seed: int = 1000,
    deterministic: bool = True,
    max_steps: int = 100_000,
) -> tuple[float, float]:
    """Mean and std of the undiscounted return over ``episodes`` episodes.

    Runs ``episodes`` envs in parallel, each for exactly one episode, from ``envs.reset(seed=seed)``
    (a sync or async vector env resets env ``i`` with ``seed + i``; a native vector env such as
    CartPole's draws every initial state from one generator seeded with ``seed``); ``deterministic``
    takes the distribution's mode. Episodes still running after ``max_steps`` steps are counted with
    their partial return and a ``RuntimeWarning`` says how many; a non-finite return raises
    :class:`EvaluationError`. The env's observation and action spaces must equal the agent's
    (:class:`SpaceMismatchError` otherwise).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int; got {episodes!r}")
    envs = make_vector_env(env, episodes, "auto") if not isinstance(env, gym.vector.VectorEnv) else env
    policy = agent.policy
    try:
        check_spaces(agent, envs)
        obs, info = envs.reset(seed=seed)
        n = envs.num_envs
        total = np.zeros(n)
        running = np.ones(n, dtype=bool)
        mask_dim = policy.head.mask_dim is not None
        for _ in range(max_steps):
            mask = (
                torch.as_tensor(np.asarray(info["action_mask"], dtype=bool))
                if mask_dim and "action_mask" in info
                else None
            )
            dist = policy.distribution(agent.preprocess(obs), mask)
            action = dist.mode() if deterministic else dist.sample()
            obs, reward, terminated, truncated, info = envs.step(policy.to_env_action(action))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        if not isinstance(env, gym.vector.VectorEnv):
            envs.close()
    bad = np.flatnonzero(~np.isfinite(total))
    if bad.size:
        raise EvaluationError(
            f"evaluation episode {int(bad[0])} (env seed {seed + int(bad[0])}) has a non-finite return "
            f"{total[bad[0]]}: the env returned a NaN or infinite reward"
        )
    if running.any():
        warnings.warn(
            f"{int(running.sum())} of {n} evaluation episodes did not end within max_steps={max_steps}; "
            "their partial returns are included",
            RuntimeWarning,
            stacklevel=2,
        )
    return float(total.mean()), float(total.std())


def check_spaces(agent: Agent, envs: gym.vector.VectorEnv) -> None:
    """Refuse an env whose observation or action space differs from the agent's."""
    for what, mine, theirs in (
        ("observation", agent.policy.observation_space, envs.single_observation_space),
        ("action", agent.policy.action_space, envs.single_action_space),
    ):
        if mine != theirs:
            raise SpaceMismatchError(f"env's {what} space {theirs} differs from the agent's {mine}")
