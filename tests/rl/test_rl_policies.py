"""Policies: one head per action space, correct log-probabilities, clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scoregrad.rl.normalization import ObservationNormalizer, RunningMeanStd
from scoregrad.rl.policies import ActorCritic, GaussianDist, PolicyConfig, UnsupportedSpaceError, _mlp

BOX4 = gym.spaces.Box(-1, 1, (4,), np.float32)


def test_categorical_mask_never_samples_forbidden_actions():
    policy = ActorCritic(BOX4, gym.spaces.Discrete(5))
    obs = torch.randn(200, 4)
    mask = torch.zeros(200, 5, dtype=torch.bool)
    mask[:, 1] = mask[:, 3] = True
    dist = policy.distribution(obs, mask)
    a = dist.sample(torch.Generator().manual_seed(0))
    assert set(a.tolist()) <= {1, 3}
    assert set(dist.mode().tolist()) <= {1, 3}
    assert torch.isfinite(dist.entropy()).all()


def test_categorical_log_prob_and_entropy_match_torch():
    policy = ActorCritic(BOX4, gym.spaces.Discrete(3))
    obs = torch.randn(7, 4)
    ours = policy.distribution(obs)
    ref = torch.distributions.Categorical(logits=policy.actor(obs))
    a = ref.sample()
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())


def test_tanh_squashed_log_prob_is_the_density_of_the_env_action():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    mean, log_std = torch.tensor([[0.3, -0.5]]), torch.tensor([[-0.2, 0.4]])
    ours = GaussianDist(mean, log_std, squash=True, log_scale=torch.log((high - low) / 2))
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1),
        [
            torch.distributions.TanhTransform(),
            torch.distributions.AffineTransform((high + low) / 2, (high - low) / 2),
        ],
    )
    u = torch.tensor([[0.7, -1.9]])
    a = (high + low) / 2 + torch.tanh(u) * (high - low) / 2
    torch.testing.assert_close(ours.log_prob(u), ref.log_prob(a), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("squash", [False, True])
@pytest.mark.parametrize("state_dependent", [False, True])
def test_box_policy_actions_are_inside_the_bounds(squash, state_dependent):
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    policy = ActorCritic(
        BOX4, space, PolicyConfig(squash=squash, state_dependent_std=state_dependent, log_std_init=1.0)
    )
    dist = policy.distribution(torch.randn(500, 4))
    raw = dist.sample(torch.Generator().manual_seed(0))
    env_action = policy.to_env_action(raw)
    assert env_action.shape == (500, 2) and env_action.dtype == np.float32
    assert np.all(env_action >= space.low) and np.all(env_action <= space.high)
    assert dist.log_prob(raw).shape == (500,)
    assert hasattr(policy, "log_std") != state_dependent


def test_multidiscrete_and_multibinary_log_probs_match_torch():
    md = ActorCritic(BOX4, gym.spaces.MultiDiscrete([2, 3]))
    obs = torch.randn(5, 4)
    dist = md.distribution(obs)
    a = dist.sample()
    logits = md.actor(obs)
    ref = torch.distributions.Categorical(logits=logits[:, :2]).log_prob(
        a[:, 0]
    ) + torch.distributions.Categorical(logits=logits[:, 2:]).log_prob(a[:, 1])
    torch.testing.assert_close(dist.log_prob(a), ref)
    mb = ActorCritic(BOX4, gym.spaces.MultiBinary(3))
    dist = mb.distribution(obs)
    a = dist.sample()
    ref = torch.distributions.Bernoulli(logits=mb.actor(obs)).log_prob(a).sum(-1)
    torch.testing.assert_close(dist.log_prob(a), ref)
    torch.testing.assert_close(
        dist.entropy(), torch.distributions.Bernoulli(logits=mb.actor(obs)).entropy().sum(-1)
    )


def test_discrete_observations_are_one_hot():
    policy = ActorCritic(gym.spaces.Discrete(6), gym.spaces.Discrete(2))
    x = policy.preprocess(torch.tensor([0, 5]))
    assert x.shape == (2, 6) and x.sum() == 2


@pytest.mark.parametrize(
    "space", [gym.spaces.Dict({"a": BOX4}), gym.spaces.Text(5), gym.spaces.Tuple((BOX4, BOX4))]
)
def test_unsupported_spaces_name_the_space_and_the_fix(space):
    with pytest.raises(UnsupportedSpaceError, match=type(space).__name__) as err:
        ActorCritic(space, gym.spaces.Discrete(2))
    assert "FlattenObservation" in str(err.value)
    with pytest.raises(UnsupportedSpaceError, match="action space"):
        ActorCritic(BOX4, space)


def test_user_module_is_plugged_in_as_the_actor():
    actor = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    policy = ActorCritic(BOX4, gym.spaces.Discrete(3), actor=actor)
    assert policy.actor is actor
    assert policy.distribution(torch.randn(2, 4)).log_prob(torch.tensor([0, 2])).shape == (2,)


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    rms = RunningMeanStd((3,))
    for chunk in np.split(data, 10):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)
    norm = ObservationNormalizer((3,))
    norm(data)
    restored = ObservationNormalizer((3,))
    restored.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(restored(data[:5], update=False), norm(data[:5], update=False))


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_mlp_forward_is_the_sequential_forward_bit_for_bit(activation):
    torch.manual_seed(0)
    mlp = _mlp([5, 16, 16, 3], activation, 1.0)
    x = torch.randn(64, 5)
    plain = nn.Sequential(*mlp)  # the same layers called as modules
    assert torch.equal(mlp(x), plain(x))
    assert list(mlp.state_dict()) == list(plain.state_dict())  # checkpoints keep their keys
    assert torch.equal(mlp[:2](x), plain[:2](x))  # a slice is an MLP of those layers
    # functional_call swaps the weights the forward reads (ES evaluates populations this way)
    swapped = {k: torch.zeros_like(v) for k, v in mlp.state_dict().items()}
    assert torch.equal(torch.func.functional_call(mlp, swapped, (x,)), torch.zeros(64, 3))
