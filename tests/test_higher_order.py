"""Second derivatives of the DiCE surrogate are unbiased: checked against exact Hessians.

Each batch element is an independent problem, so the Hessian of the summed estimate is block
diagonal and one backward pass per parameter coordinate gives every copy's Hessian row.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent

import scoregrad as sg
from tests.helpers import assert_unbiased

REWARD = torch.tensor([1.0, -0.5, 2.0])
OFFSET = torch.tensor([0.3, -0.2, 0.5])


def categorical(logits):
    return Categorical(logits=logits + OFFSET)


def bernoullis(logits):
    return Independent(Bernoulli(logits=logits + OFFSET), 1)


def categorical_cost(x):
    return REWARD[x]


def bernoulli_cost(b):
    return (b[..., 0] - 2 * b[..., 1] * b[..., 2] + 0.3) ** 2


def hessian_draws(f, make_dist, copies, **options) -> torch.Tensor:
    logits = torch.zeros(copies, 3, requires_grad=True)
    value = sg.expectation(f, make_dist(logits), options.pop("num_samples", 1), **options)
    (gradient,) = torch.autograd.grad(value.sum(), logits, create_graph=True)
    rows = [torch.autograd.grad(gradient[:, j].sum(), logits, retain_graph=True)[0] for j in range(3)]
    return torch.stack(rows, 1)  # (copies, 3, 3)


def exact_hessian(f, make_dist) -> torch.Tensor:
    def objective(logits):
        return sg.expectation(f, make_dist(logits[None]), estimator="exact").sum()

    return torch.autograd.functional.hessian(objective, torch.zeros(3))


CASES = [("categorical", categorical_cost, categorical), ("bernoullis", bernoulli_cost, bernoullis)]


@pytest.mark.parametrize(("name", "f", "make_dist"), CASES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"baseline": "leave_one_out", "num_samples": 3},
        {"baseline": "optimal", "num_samples": 3},
        {"baseline": 0.8},
    ],
)
def test_score_function_hessian_is_unbiased(name, f, make_dist, options):
    draws = hessian_draws(f, make_dist, 100_000, **dict(options))
    assert_unbiased(draws, exact_hessian(f, make_dist), what=f"Hessian {name} {options}")


@pytest.mark.parametrize(("name", "f", "make_dist"), CASES)
def test_exact_estimator_gives_the_exact_hessian(name, f, make_dist):
    draws = hessian_draws(f, make_dist, 2, estimator="exact")
    torch.testing.assert_close(draws[0], exact_hessian(f, make_dist))
