"""Policy-gradient losses: their gradients are the estimators they claim to be."""

from __future__ import annotations

import pytest
import torch

from scoregrad.rl import losses


def _grad(loss, theta):
    (g,) = torch.autograd.grad(loss, theta, retain_graph=True)
    return g


def _setup(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 3, generator=g, requires_grad=True)
    actions = torch.randint(0, 3, (n,), generator=g)
    log_prob = torch.log_softmax(theta, -1)[torch.arange(n), actions]
    weights = torch.randn(n, generator=g)
    return theta, log_prob, weights


def test_reinforce_gradient_is_weighted_score_minus_baseline():
    theta, log_prob, weights = _setup()
    baseline = torch.full((6,), 0.7)
    got = _grad(losses.reinforce_loss(log_prob, weights, baseline), theta)
    expected = _grad(-((weights - baseline) * log_prob).mean(), theta)
    torch.testing.assert_close(got, expected)


def test_reinforce_mask_drops_samples_from_the_mean():
    theta, log_prob, weights = _setup()
    mask = torch.tensor([True, False, True, True, False, True])
    got = _grad(losses.reinforce_loss(log_prob, weights, mask=mask), theta)
    expected = _grad(-(weights * log_prob)[mask].mean(), theta)
    torch.testing.assert_close(got, expected)


def test_ppo_gradient_equals_a2c_gradient_at_ratio_one():
    theta, log_prob, adv = _setup(1)
    old = log_prob.detach()
    ppo = _grad(losses.ppo_clip_loss(log_prob, old, adv, 0.2), theta)
    a2c = _grad(losses.a2c_policy_loss(log_prob, adv), theta)
    torch.testing.assert_close(ppo, a2c)


def test_ppo_clipping_removes_gradient_outside_the_trust_region():
    theta = torch.zeros(2, requires_grad=True)
    log_prob = theta + 0.0
    old = torch.log(torch.tensor([0.5, 0.5]))  # ratio = 2 for both samples
    adv = torch.tensor([1.0, -1.0])
    g = _grad(losses.ppo_clip_loss(log_prob, old, adv, 0.2), theta)
    # positive advantage and ratio above 1 + eps: clipped, no gradient;
    # negative advantage: the unclipped term is the minimum and keeps its gradient
    assert g[0] == 0.0
    assert g[1] == pytest.approx(2.0 / 2)


def test_value_clipping_is_pessimistic():
    values = torch.tensor([2.0], requires_grad=True)
    old = torch.tensor([0.0])
    target = torch.tensor([3.0])
    clipped = losses.value_loss(values, target, old, clip_coef=0.5)
    assert clipped.item() == pytest.approx(0.5 * (3.0 - 0.5) ** 2)
    assert losses.value_loss(values, target).item() == pytest.approx(0.5)


def test_leave_one_out_baseline_excludes_own_episode():
    weights = torch.tensor([1.0, 1.0, 4.0, 10.0])
    episode = torch.tensor([0, 0, 1, 2])
    b = losses.leave_one_out_baseline(weights, episode)
    torch.testing.assert_close(b, torch.tensor([7.0, 7.0, 4.0, 2.0]))
    single = losses.leave_one_out_baseline(weights[:2], episode[:2])
    assert torch.all(single == 0)


def test_normalized_advantages_have_zero_mean_unit_std_on_the_mask():
    adv = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    out = losses.normalize_advantages(adv, mask)
    assert out[3] == 0
    assert out[:3].mean().abs() < 1e-6
    assert out[:3].pow(2).mean().sqrt() == pytest.approx(1.0, abs=1e-4)


def test_entropy_bonus_and_kl_signs():
    assert losses.entropy_loss(torch.tensor([1.0, 2.0])).item() == -1.5
    lp = torch.log(torch.tensor([0.2, 0.5]))
    assert losses.approx_kl(lp, lp).item() == 0.0
    assert losses.approx_kl(lp, lp + 0.3).item() > 0.0


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        losses.reinforce_loss(torch.zeros(3), torch.zeros(4))


def test_losses_call_the_core_surrogate(monkeypatch):
    # the score-function formula lives in scoregrad.surrogate; the RL losses must go through it
    calls = []
    import scoregrad.rl.losses as mod

    real = mod.score_function_surrogate
    monkeypatch.setattr(mod, "score_function_surrogate", lambda *a: calls.append(1) or real(*a))
    real_ratio = mod.likelihood_ratio
    monkeypatch.setattr(mod, "likelihood_ratio", lambda *a: calls.append(2) or real_ratio(*a))
    _, log_prob, w = _setup()
    mod.reinforce_loss(log_prob, w)
    mod.a2c_policy_loss(log_prob, w)
    mod.ppo_clip_loss(log_prob, log_prob.detach(), w, 0.2)
    assert calls == [1, 1, 2]
