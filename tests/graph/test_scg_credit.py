"""Credit assignment: each node's score is weighted only by the costs that depend on it.

The dependence is found from the data flow (a TorchFunctionMode tags every op's output), so these
tests check (1) that it is found through the operations models use, (2) that a cost which does not
depend on a node leaves that node's gradient estimate *exactly* unchanged, and (3) that this lowers
the variance against the estimator that weights every score by the total cost.
"""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal

import scoregrad as sg
from tests.helpers import assert_unbiased


def test_dependencies_follow_indexing_thresholds_argmax_where_and_in_place_writes():
    embedding = torch.randn(4, 3)
    with sg.graph() as g:
        k = g.sample("k", Categorical(logits=torch.zeros(5, 4)), 2)  # long indices, (2, 5)
        b = g.sample("b", Bernoulli(logits=torch.zeros(2, 5)))
        x = g.sample("x", Normal(torch.zeros(2, 5), 1.0))
        g.cost("indexed", embedding[k].sum(-1))
        g.cost("threshold", (x > 0.5).float())
        g.cost("argmax", torch.stack([x, -x], -1).argmax(-1).float())
        g.cost("where", torch.where(b > 0, 1.0, 2.0))
        buffer = torch.zeros(2, 5)
        buffer[0] = b[0] * 3
        g.cost("in_place", buffer)
        g.cost("unrelated", torch.ones(2, 5))
        child = g.sample("child", Bernoulli(logits=embedding[k][..., 0]))  # depends on k through its logits
        g.cost("through_child", child)
    assert g.dependencies() == {
        "indexed": ["k"],
        "threshold": ["x"],
        "argmax": ["x"],
        "where": ["b"],
        "in_place": ["b"],
        "unrelated": [],
        "through_child": ["k", "child"],
    }


def chain_gradient(seed: int, with_unrelated: bool, credit_assignment: bool = True):
    """z1 -> z2 and a sibling z3 of z2; returns the gradient for z2's parameters."""
    theta = torch.tensor([0.2, -0.5, 0.7], requires_grad=True)
    torch.manual_seed(seed)
    with sg.graph(credit_assignment=credit_assignment) as g:
        z1 = g.sample("z1", Bernoulli(logits=theta[0].expand(16)), 4, baseline="leave_one_out")
        z2 = g.sample("z2", Bernoulli(logits=theta[1] + z1))
        z3 = g.sample("z3", Bernoulli(logits=theta[2] - z1))
        g.cost("uses_z2", (z2 - 0.4) ** 2 + z1)
        if with_unrelated:
            g.cost("unrelated_to_z2", 50.0 * z3 + 10.0 * z1)  # depends on z1 and z3, not on z2
    (grad,) = torch.autograd.grad(g.surrogate(), theta)
    return grad


def test_unrelated_cost_does_not_change_a_nodes_gradient_estimate():
    for seed in range(5):
        without = chain_gradient(seed, with_unrelated=False)
        with_cost = chain_gradient(seed, with_unrelated=True)
        torch.testing.assert_close(with_cost[1], without[1], rtol=0, atol=0)  # z2's parameter: identical
        assert not torch.allclose(with_cost[0], without[0])  # z1 is upstream of it: it does change
        # Without credit assignment the unrelated cost leaks into z2's gradient.
        plain = chain_gradient(seed, with_unrelated=True, credit_assignment=False)
        assert not torch.allclose(plain[1], without[1])


def independent_steps_gradient(rows: torch.Tensor, credit_assignment: bool) -> torch.Tensor:
    """T independent Bernoulli steps, one cost each: d/d theta_0 for every replicate row."""
    steps = rows.shape[1]
    with sg.graph(credit_assignment=credit_assignment) as g:
        for t in range(steps):
            z = g.sample(f"z{t}", Bernoulli(logits=rows[:, t]))
            g.cost(f"step{t}", 3.0 * z + t)
    (grad,) = torch.autograd.grad(g.surrogate(), rows)
    return grad[:, 0]


def test_credit_assignment_reduces_variance_and_both_are_unbiased():
    steps, replicates = 6, 4000
    theta = torch.linspace(-0.5, 0.5, steps)
    rows = theta.repeat(replicates, 1).requires_grad_(True)
    exact = 3.0 * torch.sigmoid(theta[0]) * (1 - torch.sigmoid(theta[0]))
    credited = independent_steps_gradient(rows, credit_assignment=True)
    plain = independent_steps_gradient(rows, credit_assignment=False)
    assert_unbiased(credited, exact, "with credit assignment")
    assert_unbiased(plain, exact, "without credit assignment")
    ratio = plain.var() / credited.var()
    # Exact variances: credited Var[3 z s] with s = z - p; plain adds sum_t Var[3 z_t + t] E[s^2] and more.
    assert ratio > 5.0, f"variance ratio {ratio:.2f}"


def test_independent_event_dims_and_pathwise_decoder_are_credited_to_the_latent():
    decoder = torch.nn.Linear(3, 4)
    x = torch.ones(8, 4)
    with sg.graph() as g:
        z = g.sample("z", Independent(Bernoulli(logits=torch.zeros(8, 3)), 1), num_samples=2)
        g.cost("reconstruction", -Independent(Bernoulli(logits=decoder(z)), 1).log_prob(x))
        g.cost("prior", torch.zeros(8))
    assert g.dependencies() == {"reconstruction": ["z"], "prior": []}
    g.surrogate().backward()
    assert decoder.weight.grad is not None and decoder.weight.grad.abs().sum() > 0


def test_dependencies_through_transformed_distributions_and_pathwise_nodes():
    from torch.distributions import AffineTransform, TransformedDistribution

    with sg.graph() as g:
        b = g.sample("b", Bernoulli(logits=torch.zeros(3)), 2)
        shifted = TransformedDistribution(
            Normal(torch.zeros(3), 1.0), [AffineTransform(loc=2 * b, scale=1.0)]
        )
        y = g.sample("y", shifted)  # pathwise by default, and a descendant of b through the transform
        g.cost("y", y**2)
    assert g.dependencies() == {"y": ["b", "y"]}
