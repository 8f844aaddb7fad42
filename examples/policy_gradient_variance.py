"""How noisy is a policy gradient? Measure it with sg.diagnostics on a policy's own distribution.

A policy's distribution is a plain ``torch.distributions`` object (``policy.distribution(obs).dist``),
so everything in scoregrad that takes a distribution takes it too. Here a fresh CartPole policy
faces a one-step problem on a batch of real CartPole states: the reward is 1 when the action pushes
the cart towards the side the pole leans to, else 0 (not differentiable in the action). For the
actor's weights we compare the plain score-function (REINFORCE) gradient, the same with a
leave-one-out baseline (RLOO), and the exact gradient (a sum over the two actions), which is the
reference the others are unbiased for.

Run: python examples/policy_gradient_variance.py [--repeats 200]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import scoregrad as sg
from scoregrad.rl import ActorCritic


def cartpole_states(n: int, seed: int = 0) -> Tensor:
    """``(n, 4)`` CartPole observations visited by a random policy."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    states = []
    while len(states) < n:
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return torch.as_tensor(np.array(states), dtype=torch.float32)


def main(repeats: int = 200, num_samples: int = 4) -> list[sg.diagnostics.GradientStats]:
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    policy = ActorCritic(env.observation_space, env.action_space)
    states = cartpole_states(16)
    leans_right = (states[:, 2] > 0).long()  # pole angle > 0: pushing right (action 1) helps

    def reward(actions: Tensor) -> Tensor:  # actions (num_samples, 16) -> rewards (num_samples, 16)
        return (actions == leans_right).float()

    def policy_distribution() -> torch.distributions.Distribution:
        return policy.distribution(states).dist  # Categorical with batch shape (16,)

    params = list(policy.actor.parameters())
    exact = sg.diagnostics.measure(reward, policy_distribution, params, estimator="exact", repeats=2)
    return sg.diagnostics.compare(
        {
            "REINFORCE": {"num_samples": num_samples},
            "REINFORCE + leave-one-out": {"num_samples": num_samples, "baseline": "leave_one_out"},
            "exact (sum over actions)": {"estimator": "exact"},
        },
        reward,
        policy_distribution,
        params,
        repeats=repeats,
        exact_gradient=exact.mean,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    main(parser.parse_args().repeats)
