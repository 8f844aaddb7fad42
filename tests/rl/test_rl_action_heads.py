"""Action heads: one per space, each a torch.distributions distribution with the env's plumbing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Distribution

import scoregrad as sg
from scoregrad.rl.action_heads import HEADS, TanhBoxHead, action_head, space_from_json, space_to_json
from scoregrad.rl.policies import ActorCritic, PolicyConfig

BOX4 = gym.spaces.Box(-1, 1, (4,), np.float32)
SPACES = [
    gym.spaces.Discrete(3, start=2),
    gym.spaces.MultiDiscrete([2, 4, 3], start=[0, 1, 0]),
    gym.spaces.MultiBinary(3),
    gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_every_head_gives_a_torch_distribution_and_valid_env_actions(space):
    policy = ActorCritic(BOX4, space)
    head = policy.head
    dist = policy.distribution(torch.randn(50, 4))
    assert isinstance(dist.dist, Distribution) and dist.dist.batch_shape == (50,)
    raw = dist.sample(torch.Generator().manual_seed(0))
    assert raw.shape == (50, *head.buffer_shape) and raw.dtype == head.buffer_dtype
    actions = policy.to_env_action(raw)
    assert all(space.contains(a) for a in actions)
    assert dist.log_prob(raw).shape == (50,) and dist.entropy().shape == (50,)
    assert space_from_json(space_to_json(space)) == space


def test_multidiscrete_with_unequal_nvec_matches_independent_categoricals_and_respects_masks():
    space = gym.spaces.MultiDiscrete([2, 4])
    policy = ActorCritic(BOX4, space)
    obs = torch.randn(400, 4)
    mask = torch.ones(400, 6, dtype=torch.bool)
    mask[:, 2 + 3] = False  # forbid value 3 of the second component
    dist = policy.distribution(obs, mask)
    raw = dist.sample(torch.Generator().manual_seed(1))
    assert (raw[:, 1] != 3).all() and (dist.mode()[:, 1] != 3).all()
    logits = policy.actor(obs).masked_fill(~mask, -1e8)
    parts = [torch.distributions.Categorical(logits=c) for c in logits.split([2, 4], -1)]
    expected = sum(p.log_prob(raw[:, i]) for i, p in enumerate(parts))
    torch.testing.assert_close(dist.log_prob(raw), expected)
    torch.testing.assert_close(dist.entropy(), sum(p.entropy() for p in parts))


def test_gumbel_max_sampling_has_the_categorical_frequencies():
    head = action_head(gym.spaces.Discrete(3))
    dist = head.distribution(torch.tensor([[0.0, 1.0, -1.0]]).expand(20_000, 3))
    freq = torch.bincount(head.sample(dist, torch.Generator().manual_seed(0)), minlength=3) / 20_000
    torch.testing.assert_close(freq, dist.probs[0], atol=0.015, rtol=0)


def test_tanh_head_is_chosen_by_squash_and_the_score_is_the_gaussians():
    space = SPACES[-1]
    policy = ActorCritic(BOX4, space, PolicyConfig(squash=True))
    assert isinstance(policy.head, TanhBoxHead) and set(HEADS) >= {type(s) for s in SPACES}
    obs = torch.randn(8, 4)
    raw = policy.distribution(obs).sample(torch.Generator().manual_seed(0))
    grad = torch.autograd.grad(policy.distribution(obs).log_prob(raw).sum(), policy.log_std)[0]
    ref = torch.autograd.grad(policy.distribution(obs).dist.log_prob(raw).sum(), policy.log_std)[0]
    torch.testing.assert_close(grad, ref)


def test_a_policy_distribution_goes_straight_into_sg_expectation():
    policy = ActorCritic(BOX4, gym.spaces.Discrete(2))
    dist = policy.distribution(torch.randn(5, 4)).dist
    value = sg.expectation(lambda a: (a == 1).float(), dist, num_samples=4, estimator="score_function")
    value.sum().backward()
    assert all(p.grad is not None for p in policy.actor.parameters())
