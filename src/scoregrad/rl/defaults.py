"""Defaults that adapt to the environment: what ``rl.train`` uses where no preset exists.

An algorithm's config dataclass (:mod:`scoregrad.rl.config`) holds values that suit no env in
particular. :func:`defaults_for` looks at the env's spaces and returns the overrides that suit its kind:

* **action space.** Box (continuous control): the recipe of Schulman et al. (2017) and CleanRL's
  ``ppo_continuous_action``: 2048 transitions per update, 10 epochs of 64-transition minibatches,
  observation *and* reward normalisation. Discrete/MultiDiscrete/MultiBinary (classic control,
  games): the same batch and minibatch sizes and reward scaling (the value loss of long -1-per-step
  episodes otherwise dominates the clipped gradient norm), observation normalisation (below).
* **observation scale** (PPO). A flat Box observation is normalised by running mean and std unless its
  bounds already lie in [-1, 1]; unbounded and wide observations (velocities, positions in metres,
  joint angles) are what normalisation is for. Non-Box observations (one-hot encoded) are left alone.
  A2C and REINFORCE update after every short rollout, and normalisation measurably hurt them (below).
* **episode length** is handled where it matters, in the return: a time-limit truncation is
  bootstrapped from the value of the last observation whatever the length, so the defaults do not
  depend on it.

A2C gets the settings that solve CartPole-v1 and Acrobot-v1 (16-step rollouts, GAE 0.95, normalised
advantages, learning rate 2e-3); REINFORCE keeps its dataclass (512-step rollouts, learned value
baseline, normalised advantages); both get reward normalisation for Box actions. ES is left alone (it
normalises observations already and has no critic).

Precedence in ``rl.train``: the config dataclass < these defaults < the env's preset (a preset is a
complete tuned setting, applied over the dataclass) < your keyword arguments. ``preset=False`` gives
these defaults alone. The table in the README ("Defaults") is this function, written out.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["defaults_for", "space_defaults", "probe_spaces", "settings_for"]

#: PPO, any action space: 8 envs x 256 steps = 2048 transitions, 10 epochs of 64-transition minibatches,
#: reward normalisation. The reward scaling is there for discrete actions too: without it, a return of
#: -100 (Acrobot's -1 per step) makes the value loss's gradient dominate the global norm clip and the
#: policy barely moves (Acrobot-v1 seed 2 ended at -500, no swing-up at any evaluation in 200k steps; -84.5
#: with it).
_PPO = dict(num_envs=8, num_steps=256, update_epochs=10, num_minibatches=32, norm_reward=True)
#: A2C: 16-step rollouts (8 envs: 128 transitions per update), GAE(0.95), normalised advantages, a
#: higher learning rate; Box actions also get reward normalisation. No observation normalisation: with
#: an update every few steps its statistics move under the policy (Acrobot-v1, 200k steps: final return
#: -479/-500/-487 with it, -85/-84/-108 without; seeds 2-4).
_A2C = dict(num_steps=16, learning_rate=2e-3, gae_lambda=0.95, norm_adv=True)


def _wide_box(space: gym.Space) -> bool:
    """A float Box observation whose bounds are not all within [-1, 1] (or are infinite)."""
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        return False
    return not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))) or bool(
        np.max(np.abs(np.concatenate([space.low.ravel(), space.high.ravel()]))) > 1.0
    )


def space_defaults(observation_space: gym.Space, action_space: gym.Space, algo: str) -> dict[str, Any]:
    """The config overrides for an env with these (single-env) spaces, for ``algo``."""
    if algo == "es":
        return {}
    if algo == "ppo":
        settings = dict(_PPO)
        if _wide_box(observation_space):
            settings["norm_obs"] = True
        return settings
    settings = dict(_A2C) if algo == "a2c" else {}
    if isinstance(action_space, gym.spaces.Box):
        settings["norm_reward"] = True
    return settings


def probe_spaces(env: Any) -> tuple[gym.Space, gym.Space] | None:
    """``(observation_space, action_space)`` of one copy of ``env`` (an id, Env, factory or vector env).

    An id is made once and closed; a factory is called once. None when that is not possible
    (the defaults then stay the dataclass's).
    """
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    if isinstance(env, gym.Env):
        return env.observation_space, env.action_space
    if isinstance(env, str):
        from scoregrad.rl.rollout import registered_id

        one = gym.make(registered_id(env))
    elif callable(env):
        one = env()
        if not isinstance(one, gym.Env):
            return None
    else:
        return None
    try:
        return one.observation_space, one.action_space
    finally:
        one.close()


def defaults_for(env: Any, algo: str) -> dict[str, Any]:
    """The adaptive defaults for ``env`` and ``algo`` (see the module docstring); ``{}`` for ES."""
    if algo == "es":
        return {}
    spaces = probe_spaces(env)
    return space_defaults(*spaces, algo) if spaces is not None else {}


def settings_for(env: Any, algo: str, preset: bool = True) -> dict[str, Any]:
    """The config overrides ``rl.train`` starts from: the env's preset when there is one (and
    ``preset``), else :func:`defaults_for`. Keyword arguments are applied over this."""
    from scoregrad.rl.presets import preset_for
    from scoregrad.rl.rollout import env_id_of

    tuned = preset_for(env_id_of(env), algo) if preset else {}
    return tuned if tuned else defaults_for(env, algo)
