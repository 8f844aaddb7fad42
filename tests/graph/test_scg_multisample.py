"""Multi-sample nodes: VIMCO's importance-weighted bound and the unordered-set estimator."""

from __future__ import annotations

import itertools
import math

import torch
from torch.distributions import Bernoulli, Categorical, Independent

import scoregrad as sg
from scoregrad import scg
from tests.graph.scg_helpers import exact_derivatives, gradient_and_hessian_draws
from tests.helpers import assert_unbiased

THETA = torch.tensor([0.3, -0.6, 0.8, -0.2])
K = 3


def q_dist(t):
    return Independent(Bernoulli(logits=t[..., :2]), 1)


def log_joint(t, z):
    """log p(x = 1, z) for a two-bit latent: a uniform prior and a likelihood that reads z."""
    likelihood = Bernoulli(logits=t[..., 2] + 1.5 * z[..., 0] - z[..., 1] * (1 + t[..., 3])).log_prob(
        torch.tensor(1.0)
    )
    return likelihood + 2 * math.log(0.5)


def exact_negative_bound(t):
    """-E[log (1/K) sum_k p(x, z_k) / q(z_k)], summed over all 4^K tuples of latents."""
    support = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    total = 0.0
    for idx in itertools.product(range(4), repeat=K):
        z = support[list(idx)]  # (K, 2)
        log_q = q_dist(t).log_prob(z)
        log_w = log_joint(t, z) - log_q
        total = total - log_q.sum().exp() * (torch.logsumexp(log_w, 0) - math.log(K))
    return total


def vimco_surrogate(rows):
    with sg.graph() as g:
        q = q_dist(rows)
        z = g.sample("z", q, K, estimator="vimco")
        g.cost("negative_log_joint", -log_joint(rows, z))
        g.cost("log_q", q.log_prob(z))
    return g.surrogate()


def test_vimco_first_and_second_derivatives_of_the_bound_match_enumeration():
    value, grad, hessian = exact_derivatives(exact_negative_bound, THETA)
    surrogate, grads, hessians = gradient_and_hessian_draws(vimco_surrogate, THETA, replicates=4000)
    assert_unbiased(grads, grad, "VIMCO gradient")
    assert_unbiased(hessians, hessian, "VIMCO Hessian")


def test_vimco_value_is_the_bound_not_the_mean_cost():
    rows = THETA.repeat(2000, 1)
    chunks = torch.tensor(
        [vimco_surrogate(rows).item() / rows.shape[0] for _ in range(30)], dtype=torch.float64
    )
    exact, elbo = exact_negative_bound(THETA).item(), exact_elbo(THETA).item()
    standard_error = chunks.std() / len(chunks) ** 0.5
    assert abs(chunks.mean() - exact) < 4 * standard_error, (chunks.mean(), exact, standard_error)
    assert abs(chunks.mean() - elbo) > 4 * standard_error, (chunks.mean(), elbo, standard_error)


def exact_elbo(t):
    support = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    log_q = q_dist(t).log_prob(support)
    return -(log_q.exp() * (log_joint(t, support) - log_q)).sum()


VALUES = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])


def categorical_logits(t):
    return torch.stack([t[..., 0], t[..., 1], t[..., 2], t[..., 3], torch.zeros_like(t[..., 0])], -1)


def exact_categorical(t):
    return (torch.softmax(categorical_logits(t), -1) * VALUES).sum() * (1 + t[1] ** 2)


def unordered_surrogate(rows, estimator="unordered_set", k=3, baseline=None):
    with sg.graph() as g:
        z = g.sample(
            "z", Categorical(logits=categorical_logits(rows)), k, estimator=estimator, baseline=baseline
        )
        g.cost("value", VALUES[z] * (1 + rows[:, 1] ** 2))
    return g.surrogate()


def test_unordered_set_estimator_is_unbiased_and_beats_leave_one_out():
    _, grad, _ = exact_derivatives(exact_categorical, THETA)
    surrogate, grads, _ = gradient_and_hessian_draws(unordered_surrogate, THETA, second_order=False)
    assert_unbiased(grads, grad, "unordered set: gradient")
    assert abs(surrogate.item() / grads.shape[0] - exact_categorical(THETA).item()) < 0.05
    _, loo, _ = gradient_and_hessian_draws(
        lambda rows: unordered_surrogate(rows, None, 3, "leave_one_out"), THETA, second_order=False
    )
    assert_unbiased(loo, grad, "leave-one-out: gradient")
    assert grads.var(0).sum() < 0.7 * loo.var(0).sum(), (grads.var(0), loo.var(0))


def test_unordered_set_weights_are_exact_for_every_set():
    """Sum over all k-subsets S of p(S) * estimator(S) equals the exact gradient: no sampling at all."""
    logits = torch.tensor([0.5, -0.3, 1.2, 0.0], requires_grad=True)
    f = torch.tensor([2.0, -1.0, 0.5, 4.0])
    p = torch.softmax(logits, 0)
    exact = torch.autograd.grad((p * f).sum(), logits)[0]
    k = 3
    total = torch.zeros(4)
    for subset in itertools.combinations(range(4), k):
        s = torch.tensor(subset)
        p_set = 0.0
        for order in itertools.permutations(subset):  # probability of the unordered set, by brute force
            prob, left = 1.0, 1.0
            for i in order:
                prob, left = prob * p[i].item() / left, left - p[i].item()
            p_set += prob
        log_p = torch.log_softmax(logits, 0)[s]
        ratio, second = scg.unordered_set_weights(log_p)
        probs = log_p.exp()
        baseline = (second.float() * (probs.detach() * f[s]).unsqueeze(0)).sum(1)
        estimate = (probs * ratio.float() * (f[s] - baseline)).sum()
        total += p_set * torch.autograd.grad(estimate, logits)[0]
        value = (probs.detach() * ratio.float() * f[s]).sum()
        assert value.shape == ()
    torch.testing.assert_close(total, exact, atol=1e-5, rtol=1e-5)


CHILD = torch.tensor([0.5, -1.0, 1.5, 0.0, -0.5])


def exact_unordered_chain(t):
    p1 = torch.softmax(categorical_logits(t), -1)
    p2 = torch.sigmoid(CHILD + t[1])  # P(z2 = 1 | z1) for each z1
    return (p1 * (VALUES + p2 * (2.0 - VALUES))).sum()


def test_unordered_set_node_with_a_score_function_child_is_unbiased():
    """The set's weights reach the child's costs; the child's baseline sees them detached."""

    child_baseline = sg.baselines.MovingAverage()  # kept across draws, as a moving average must be

    def surrogate_fn(rows):
        with sg.graph() as g:
            z1 = g.sample("z1", Categorical(logits=categorical_logits(rows)), 3, estimator="unordered_set")
            z2 = g.sample("z2", Bernoulli(logits=CHILD[z1] + rows[:, 1]), baseline=child_baseline)
            g.cost("root", VALUES[z1])
            g.cost("child", z2 * (2.0 - VALUES[z1]))
        return g.surrogate()

    _, grad, _ = exact_derivatives(exact_unordered_chain, THETA)
    surrogate_fn(THETA.repeat(8, 1))
    surrogate, grads, _ = gradient_and_hessian_draws(surrogate_fn, THETA, second_order=False)
    assert_unbiased(grads, grad, "unordered set -> score function: gradient")
