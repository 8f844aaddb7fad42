"""Discrete variables: the Bernoulli toy of REBAR/RELAX, Categorical, and products of Bernoullis.

Every unbiased estimator must land within 4 standard errors of the exact gradient (enumerated), and
single-sample variances must match the exact ones (enumeration or 1-D integrals over the uniform).
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate
from torch.distributions import Bernoulli, Categorical, Independent, OneHotCategorical

import scoregrad as sg
from tests.helpers import Z, assert_unbiased, assert_variance_close


def toy(t: float):
    return lambda b: (b - t) ** 2


def toy_gradient(logit: float, t: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return p * (1 - p) * ((1 - t) ** 2 - t**2)


def toy_variance(estimator: str, logit: float, t: float) -> float:
    """Exact variance of one estimate: ``num_samples=1`` for score_function, one pair for ARM/DisARM."""
    p = 1 / (1 + math.exp(-logit))
    f1, f0 = (1 - t) ** 2, t**2
    g = toy_gradient(logit, t)
    if estimator == "score_function":
        return p * (f1 * (1 - p)) ** 2 + (1 - p) * (f0 * p) ** 2 - g**2
    if estimator in ("exact", "measure_valued"):
        return 0.0

    def f(b):
        return f1 if b else f0

    def arm(u):
        return (f(u > 1 - p) - f(u < p)) * (u - 0.5)

    def disarm(u):
        b, b_tilde = u < p, 1 - u < p
        return (
            0.5 * (f(b) - f(b_tilde)) * (-1 if b_tilde else 1) * (b != b_tilde) / (1 + math.exp(-abs(logit)))
        )

    estimate = {"arm": arm, "disarm": disarm}[estimator]
    second_moment = integrate.quad(lambda u: estimate(u) ** 2, 0, 1, points=[p, 1 - p], limit=200)[0]
    return second_moment - g**2


def logit_draws(f, dist_of_logits, logits_shape, estimator, copies, **options):
    logits = torch.zeros(copies, *logits_shape).add_(options.pop("logit_value", 0.0)).requires_grad_(True)
    value = sg.expectation(
        f, dist_of_logits(logits), options.pop("num_samples", 1), estimator=estimator, **options
    )
    (gradient,) = torch.autograd.grad(value.sum(), logits)
    return value.detach(), gradient


NUM_SAMPLES = {"score_function": 1, "arm": 2, "disarm": 2, "exact": 1, "measure_valued": 1}


@pytest.mark.parametrize("t", [0.45, 0.499])
@pytest.mark.parametrize("logit", [-1.5, 0.0, 0.8])
@pytest.mark.parametrize("estimator", ["score_function", "arm", "disarm", "exact", "measure_valued"])
def test_bernoulli_toy_unbiased_with_exact_variance(estimator, logit, t):
    torch.manual_seed(2)
    value, gradient = logit_draws(
        toy(t),
        lambda l: Bernoulli(logits=l),
        (),
        estimator,
        200_000,
        logit_value=logit,
        num_samples=NUM_SAMPLES[estimator],
    )
    p = 1 / (1 + math.exp(-logit))
    assert_unbiased(value, p * (1 - t) ** 2 + (1 - p) * t**2, what=f"{estimator} value")
    assert_unbiased(gradient, toy_gradient(logit, t), what=f"{estimator} gradient")
    variance = toy_variance(estimator, logit, t)
    if variance < 1e-12:
        assert gradient.var() < 1e-12
    else:
        assert_variance_close(gradient, variance, what=f"{estimator} at logit {logit}, t={t}")


def test_disarm_has_zero_variance_for_one_variable_at_logit_zero():
    _, gradient = logit_draws(toy(0.45), lambda l: Bernoulli(logits=l), (), "disarm", 10_000, num_samples=2)
    torch.testing.assert_close(gradient, torch.full_like(gradient, toy_gradient(0.0, 0.45)))


def coupled_cost(b):
    # A non-separable cost of three bits, so each coordinate's gradient depends on the others.
    return (b[..., 0] - 2 * b[..., 1] * b[..., 2] + 0.3) ** 2 + b[..., 2]


def product_of_bernoullis(logits):
    return Independent(Bernoulli(logits=logits + torch.tensor([0.5, -1.0, 0.2])), 1)


def exact_product_gradient() -> torch.Tensor:
    _, gradient = logit_draws(coupled_cost, product_of_bernoullis, (3,), "exact", 1)
    return gradient[0]


@pytest.mark.parametrize("estimator", ["score_function", "arm", "disarm", "measure_valued"])
def test_product_of_bernoullis_matches_enumeration(estimator):
    _, gradient = logit_draws(
        coupled_cost,
        product_of_bernoullis,
        (3,),
        estimator,
        100_000,
        num_samples=2 if estimator in ("arm", "disarm") else 1,
    )
    assert_unbiased(gradient, exact_product_gradient(), what=estimator)


def test_disarm_has_lower_variance_than_arm_on_a_product():
    arm = logit_draws(coupled_cost, product_of_bernoullis, (3,), "arm", 100_000, num_samples=2)[1]
    disarm = logit_draws(coupled_cost, product_of_bernoullis, (3,), "disarm", 100_000, num_samples=2)[1]
    assert (disarm.var(0) < arm.var(0)).all()


REWARD = torch.tensor([1.0, -0.5, 2.0, 0.3])
CATEGORICAL_LOGITS = torch.tensor([0.2, -0.4, 0.1, 0.9])


def categorical(logits):
    return Categorical(logits=logits + CATEGORICAL_LOGITS)


def exact_categorical_gradient() -> torch.Tensor:
    p = torch.softmax(CATEGORICAL_LOGITS, 0)
    return p * (REWARD - (p * REWARD).sum())


@pytest.mark.parametrize(
    ("estimator", "options"),
    [
        ("score_function", {}),
        ("score_function", {"baseline": "leave_one_out", "num_samples": 4}),
        ("score_function", {"baseline": "optimal", "num_samples": 4}),
        ("measure_valued", {}),
        ("exact", {}),
    ],
)
def test_categorical_gradient_matches_enumeration(estimator, options):
    _, gradient = logit_draws(lambda x: REWARD[x], categorical, (4,), estimator, 100_000, **dict(options))
    assert_unbiased(gradient, exact_categorical_gradient(), what=f"{estimator} {options}")


def test_categorical_score_function_variance_matches_enumeration():
    _, gradient = logit_draws(lambda x: REWARD[x], categorical, (4,), "score_function", 200_000)
    p = torch.softmax(CATEGORICAL_LOGITS, 0).double()
    r = REWARD.double()
    exact = exact_categorical_gradient().double()
    for j in range(4):
        score_j = torch.eye(4, dtype=torch.float64)[:, j] - p[j]  # d log p(x) / d logit_j for each x
        variance = (p * (r * score_j) ** 2).sum() - exact[j] ** 2
        assert_variance_close(gradient[:, j], variance.item(), what=f"logit {j}")


def test_gumbel_softmax_is_biased_as_documented_and_straight_through_value_is_not():
    logit, t = 0.8, 0.45
    _, relaxed = logit_draws(
        toy(t), lambda l: Bernoulli(logits=l), (), "gumbel_softmax", 200_000, logit_value=logit
    )
    standard_error = relaxed.std() / relaxed.shape[0] ** 0.5
    assert (relaxed.mean() - toy_gradient(logit, t)).abs() > Z * standard_error
    value, _ = logit_draws(
        toy(t), lambda l: Bernoulli(logits=l), (), "straight_through", 200_000, logit_value=logit
    )
    p = 1 / (1 + math.exp(-logit))
    assert_unbiased(value, p * (1 - t) ** 2 + (1 - p) * t**2, what="straight-through value")


def test_relaxations_accept_one_hot_categorical():
    logits = torch.zeros(5, 3, requires_grad=True)
    value = sg.expectation(
        lambda y: (y * torch.tensor([1.0, 2.0, 3.0])).sum(-1),
        OneHotCategorical(logits=logits),
        4,
        estimator="straight_through",
    )
    value.sum().backward()
    assert value.shape == (5,) and logits.grad.abs().sum() > 0
