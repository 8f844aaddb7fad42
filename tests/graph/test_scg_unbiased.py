"""Graph surrogates are unbiased: first and second derivatives against exact enumeration.

Small graphs of Bernoulli and Categorical nodes (a chain and a tree) have finite support, so the
expected total cost, its gradient and its Hessian are computed exactly by summing over every
configuration. Each estimate is repeated over ``R`` independent replicates held in a batch
dimension, each with its own copy of the parameters (rows of ``theta``), so one backward pass gives
every replicate's gradient and one more per coordinate its Hessian row. The truth must lie within 4
standard errors of the mean (``tests.helpers.assert_unbiased``).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical

import scoregrad as sg
from scoregrad.baselines import MovingAverage
from tests.graph.scg_helpers import exact_derivatives, gradient_and_hessian_draws
from tests.helpers import assert_unbiased

THETA = torch.tensor([0.4, -0.7, 0.9, 0.2])
R = 3000


# A chain z1 -> z2 -> z3 of Bernoulli nodes with a cost at every step. ``t`` is (..., 4) or (4,).
def chain_logits(t, z1=None, z2=None):
    if z1 is None:
        return t[..., 0]
    if z2 is None:
        return t[..., 1] + 1.5 * z1 - 0.5
    return t[..., 2] - 1.2 * z2 + 0.3 * z1


def chain_costs(t, z1, z2, z3):
    return {
        "first": (z1 - 0.3) ** 2 + t[..., 3] * z1,  # depends on a parameter directly, too
        "second": 2.0 * z1 * z2 - z2 + t[..., 3] ** 2,
        "third": (z3 + z2 - 1.2) ** 2 * (1 + t[..., 0] ** 2),
    }


def exact_chain(theta):
    total = 0.0
    for z1, z2, z3 in itertools.product([0.0, 1.0], repeat=3):
        z1, z2, z3 = (torch.tensor(v) for v in (z1, z2, z3))
        p = (
            Bernoulli(logits=chain_logits(theta)).log_prob(z1)
            + Bernoulli(logits=chain_logits(theta, z1)).log_prob(z2)
            + Bernoulli(logits=chain_logits(theta, z1, z2)).log_prob(z3)
        ).exp()
        total = total + p * sum(chain_costs(theta, z1, z2, z3).values())
    return total


def run_chain(theta_rows, estimators, warmup=False):
    """One estimate per replicate: returns the surrogate (summed over replicates)."""
    (e1, b1, n1), (e2, b2, n2), (e3, b3, n3) = estimators
    with sg.graph() as g:
        t = theta_rows  # (R, 4)
        z1 = g.sample("z1", Bernoulli(logits=chain_logits(t)), n1, estimator=e1, baseline=b1)
        z2 = g.sample("z2", Bernoulli(logits=chain_logits(t, z1)), n2, estimator=e2, baseline=b2)
        z3 = g.sample("z3", Bernoulli(logits=chain_logits(t, z1, z2)), n3, estimator=e3, baseline=b3)
        for name, value in chain_costs(t, z1, z2, z3).items():
            g.cost(name, value)
    return g.surrogate()


class Critic(nn.Module):
    """A learned baseline: one number per replicate (it only sees the context, never the sample)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(0.8))

    def forward(self, context):
        return self.bias * context


DICE_CONFIGS = {
    "score_function_plain": [(None, None, 2), (None, None, None), (None, None, None)],
    "leave_one_out_and_moving_average": [
        (None, "leave_one_out", 3),
        (None, MovingAverage(), None),
        (None, 0.5, None),
    ],
    "nested_plates_leave_one_out": [
        (None, "leave_one_out", 2),
        (None, "leave_one_out", 2),
        (None, None, None),
    ],
    "learned_baseline": [(None, Critic(), 2), (None, None, None), (None, None, None)],
    "exact_middle_node": [(None, "leave_one_out", 2), ("exact", None, None), (None, None, None)],
    "exact_root_and_leaf": [("exact", None, None), (None, "leave_one_out", 2), ("exact", None, None)],
}


@pytest.mark.parametrize("config", DICE_CONFIGS, ids=list(DICE_CONFIGS))
def test_chain_first_and_second_derivatives_match_enumeration(config):
    estimators = DICE_CONFIGS[config]
    value, grad, hessian = exact_derivatives(exact_chain, THETA)
    # Learned baselines need their context: pass it per node.
    if isinstance(estimators[0][1], Critic):
        critic = estimators[0][1]

        def surrogate_fn(rows):
            with sg.graph() as g:
                z1 = g.sample(
                    "z1",
                    Bernoulli(logits=chain_logits(rows)),
                    2,
                    baseline=critic,
                    context=rows[:, 3].detach(),
                )
                z2 = g.sample("z2", Bernoulli(logits=chain_logits(rows, z1)))
                z3 = g.sample("z3", Bernoulli(logits=chain_logits(rows, z1, z2)))
                for name, c in chain_costs(rows, z1, z2, z3).items():
                    g.cost(name, c)
            return g.surrogate()
    else:

        def surrogate_fn(rows):
            return run_chain(rows, estimators)

    surrogate_fn(THETA.repeat(8, 1))  # warm up moving averages
    surrogate, grads, hessians = gradient_and_hessian_draws(surrogate_fn, THETA)
    torch.testing.assert_close(surrogate.detach() / R, value, atol=0.08, rtol=0)  # sanity: a value estimate
    assert_unbiased(grads, grad, f"{config}: gradient")
    assert_unbiased(hessians, hessian, f"{config}: Hessian")


# A tree: z1 ~ Categorical(3) with two children, z2 ~ Bernoulli(. | z1) and z3 ~ Categorical(3 | z1).
TABLE = torch.tensor([[0.5, -1.0, 0.3], [1.0, 0.2, -0.4], [-0.6, 0.8, 0.1]])
VALUES = torch.tensor([1.0, -2.0, 0.5])


def tree_logits1(t):
    return torch.stack([t[..., 0], t[..., 1], torch.zeros_like(t[..., 0])], -1)


def tree_logits2(t, z1):
    return t[..., 2] + TABLE[0][z1]


def tree_logits3(t, z1):
    return TABLE[z1] * t[..., 3].unsqueeze(-1)


def tree_costs(t, z1, z2, z3):
    return {"root": VALUES[z1] * t[..., 1], "left": z2 * VALUES[z1], "right": (VALUES[z3] - 0.2 * z1) ** 2}


def exact_tree(theta):
    total = 0.0
    for a, b, c in itertools.product(range(3), range(2), range(3)):
        z1, z2, z3 = torch.tensor(a), torch.tensor(float(b)), torch.tensor(c)
        p = (
            Categorical(logits=tree_logits1(theta)).log_prob(z1)
            + Bernoulli(logits=tree_logits2(theta, z1)).log_prob(z2)
            + Categorical(logits=tree_logits3(theta, z1)).log_prob(z3)
        ).exp()
        total = total + p * sum(tree_costs(theta, z1, z2, z3).values())
    return total


TREE_CONFIGS = {
    "score_function": [(None, "leave_one_out", 3), (None, MovingAverage(), None), (None, None, 2)],
    "exact_root": [("exact", None, None), (None, None, 2), (None, "leave_one_out", 2)],
    "exact_leaves": [(None, "leave_one_out", 2), ("exact", None, None), ("exact", None, None)],
}


def run_tree(rows, estimators):
    (e1, b1, n1), (e2, b2, n2), (e3, b3, n3) = estimators
    with sg.graph() as g:
        z1 = g.sample("z1", Categorical(logits=tree_logits1(rows)), n1, estimator=e1, baseline=b1)
        z2 = g.sample("z2", Bernoulli(logits=tree_logits2(rows, z1)), n2, estimator=e2, baseline=b2)
        z3 = g.sample("z3", Categorical(logits=tree_logits3(rows, z1)), n3, estimator=e3, baseline=b3)
        costs = tree_costs(rows, z1, z2, z3)
        for name, value in costs.items():
            g.cost(name, value)
    assert g.dependencies() == {"root": ["z1"], "left": ["z1", "z2"], "right": ["z1", "z3"]}
    return g.surrogate()


@pytest.mark.parametrize("config", TREE_CONFIGS, ids=list(TREE_CONFIGS))
def test_tree_first_and_second_derivatives_match_enumeration(config):
    estimators = TREE_CONFIGS[config]
    if config == "score_function":
        # z2 and z3 each have their own plate of 2 under z1's 3: costs (2, 3, R) would not line up, so
        # only z3 gets one here.
        estimators = [(None, "leave_one_out", 3), (None, MovingAverage(), None), (None, "leave_one_out", 2)]
    value, grad, hessian = exact_derivatives(exact_tree, THETA)
    run_tree(THETA.repeat(8, 1), estimators)
    surrogate, grads, hessians = gradient_and_hessian_draws(lambda rows: run_tree(rows, estimators), THETA)
    assert_unbiased(grads, grad, f"{config}: gradient")
    assert_unbiased(hessians, hessian, f"{config}: Hessian")


FIRST_ORDER = {
    "arm": ("arm", 2),
    "disarm": ("disarm", 4),
    "relax": (None, 1),
    "rebar": (None, 2),
}


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_chain_first_order_estimators_at_the_root_are_unbiased(name):
    estimator, n = FIRST_ORDER[name]
    if name == "relax":
        # The control sees each relaxed sample as a 1-vector.
        net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
        estimator = sg.RELAX(lambda soft: net(soft.unsqueeze(-1)).squeeze(-1), parameters=net.parameters())
    if name == "rebar":
        # The relaxed cost of z1 alone: a differentiable stand-in for the downstream costs.
        estimator = sg.REBAR(lambda soft: (soft - 0.3) ** 2 + 2.0 * soft * 0.5)
    estimators = [(estimator, None, n), (None, MovingAverage(), None), (None, None, None)]
    _, grad, _ = exact_derivatives(exact_chain, THETA)
    run_chain(THETA.repeat(8, 1), estimators)
    _, grads, _ = gradient_and_hessian_draws(
        lambda rows: run_chain(rows, estimators), THETA, second_order=False
    )
    assert_unbiased(grads, grad, f"{name}: gradient")


def test_mixing_pathwise_and_score_function_nodes_matches_closed_form():
    """z ~ Bernoulli(sigmoid(a)) by score function, x ~ Normal(b + z, 1) pathwise (the default)."""

    def objective(t):  # E[x^2 + z x] = E[(b+z)^2 + 1 + z(b+z)]
        p = torch.sigmoid(t[0])
        return (1 - p) * (t[1] ** 2 + 1) + p * ((t[1] + 1) ** 2 + 1 + (t[1] + 1))

    theta = torch.tensor([0.3, -0.4])

    def surrogate_fn(rows):
        with sg.graph() as g:
            z = g.sample("z", Bernoulli(logits=rows[:, 0]), 2, baseline="leave_one_out")
            x = g.sample("x", torch.distributions.Normal(rows[:, 1] + z, 1.0))
            g.cost("square", x**2)
            g.cost("product", z * x)
        assert g.dependencies() == {"square": ["z", "x"], "product": ["z", "x"]}
        return g.surrogate()

    _, grad, hessian = exact_derivatives(objective, theta)
    _, grads, hessians = gradient_and_hessian_draws(surrogate_fn, theta)
    assert_unbiased(grads, grad, "pathwise + score function: gradient")
    assert_unbiased(hessians, hessian, "pathwise + score function: Hessian")
