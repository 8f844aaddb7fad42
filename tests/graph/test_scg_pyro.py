"""The same small model's ELBO gradient agrees in expectation with Pyro's TraceGraph_ELBO.

A two-step discrete model (z1 -> z2 -> x observed) with a guide z1 -> z2 and no reparameterisable
site, so both libraries use score-function gradients with credit assignment. The two estimators
differ (Pyro's baselines, our leave-one-out plate) but must have the same expectation: each mean is
compared with the other (within 4 combined standard errors) and with the exact gradient.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.distributions import Bernoulli, Normal

import scoregrad as sg
from tests.graph.scg_helpers import exact_derivatives, gradient_and_hessian_draws
from tests.helpers import Z, assert_unbiased

pyro = pytest.importorskip("pyro")

X = torch.tensor(0.7)
INIT = torch.tensor([0.2, 0.3, -0.4])  # model logit, guide logits a and b


def log_prob_model(t, z1, z2):
    return (
        Bernoulli(logits=t[..., 0]).log_prob(z1)
        + Bernoulli(logits=-0.5 + z1).log_prob(z2)
        + Normal(z1 + z2, 1.0).log_prob(X)
    )


def exact_negative_elbo(t):
    total = 0.0
    for a, b in itertools.product([0.0, 1.0], repeat=2):
        z1, z2 = torch.tensor(a), torch.tensor(b)
        log_q = Bernoulli(logits=t[1]).log_prob(z1) + Bernoulli(logits=t[2] + z1).log_prob(z2)
        total = total + log_q.exp() * (log_q - log_prob_model(t, z1, z2))
    return total


def ours(rows):
    with sg.graph() as g:
        q1 = Bernoulli(logits=rows[:, 1])
        z1 = g.sample("z1", q1, 2, baseline="leave_one_out")
        q2 = Bernoulli(logits=rows[:, 2] + z1)
        z2 = g.sample("z2", q2)
        g.cost("q_z1", q1.log_prob(z1) - Bernoulli(logits=rows[:, 0]).log_prob(z1))
        g.cost("q_z2", q2.log_prob(z2) - Bernoulli(logits=-0.5 + z1).log_prob(z2))
        g.cost("likelihood", -Normal(z1 + z2, 1.0).log_prob(X))
    return g.surrogate()


def pyro_gradients(repeats: int) -> torch.Tensor:
    import pyro.distributions as dist

    def model():
        logit = pyro.param("model_logit", INIT[0].clone())
        z1 = pyro.sample("z1", dist.Bernoulli(logits=logit))
        z2 = pyro.sample("z2", dist.Bernoulli(logits=-0.5 + z1))
        pyro.sample("x", dist.Normal(z1 + z2, 1.0), obs=X)

    def guide():
        a = pyro.param("a", INIT[1].clone())
        b = pyro.param("b", INIT[2].clone())
        z1 = pyro.sample("z1", dist.Bernoulli(logits=a))
        pyro.sample("z2", dist.Bernoulli(logits=b + z1))

    elbo = pyro.infer.TraceGraph_ELBO()
    draws = []
    for _ in range(repeats):
        pyro.clear_param_store()
        elbo.loss_and_grads(model, guide)
        store = pyro.get_param_store()
        draws.append(
            torch.stack([store.get_param(n).unconstrained().grad for n in ("model_logit", "a", "b")])
        )
    return torch.stack(draws)


def test_elbo_gradient_agrees_with_pyro_tracegraph_elbo():
    _, exact, _ = exact_derivatives(exact_negative_elbo, INIT)
    _, mine, _ = gradient_and_hessian_draws(ours, INIT, second_order=False, replicates=4000)
    theirs = pyro_gradients(1500)
    assert_unbiased(mine, exact, "scoregrad ELBO gradient")
    assert_unbiased(theirs, exact, "Pyro TraceGraph_ELBO gradient")
    se = (mine.var(0) / len(mine) + theirs.var(0) / len(theirs)).sqrt()
    difference = (mine.mean(0) - theirs.mean(0)).abs()
    assert bool((difference < Z * se).all()), (mine.mean(0), theirs.mean(0), se)
