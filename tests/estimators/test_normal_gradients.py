"""Score-function, pathwise and measure-valued gradients on N(mu, sigma) against closed forms.

The three test functions of Mohamed et al. (2020, §3). Each estimator's mean must lie within 4
standard errors of the exact gradient, and its single-sample variance within 10% of the exact
variance, which is computed here by numerical integration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.distributions import Normal

import scoregrad as sg
from tests.helpers import assert_unbiased, assert_variance_close

MU, SIGMA = 1.0, 1.0

# f in torch (for the estimators) and numpy (for the integrals), and E[f] in closed form.
FUNCTIONS = {
    "square": (
        lambda k: lambda x: (x - k) ** 2,
        lambda k: lambda x: (x - k) ** 2,
        lambda k, m, s: (m - k) ** 2 + s**2,
    ),
    "gaussian": (
        lambda k: lambda x: torch.exp(-k * x**2),
        lambda k: lambda x: np.exp(-k * x**2),
        lambda k, m, s: torch.exp(-k * m**2 / (1 + 2 * k * s**2)) / torch.sqrt(1 + 2 * k * s**2),
    ),
    "cosine": (
        lambda k: lambda x: torch.cos(k * x),
        lambda k: lambda x: np.cos(k * x),
        lambda k, m, s: torch.cos(k * m) * torch.exp(-(k**2) * s**2 / 2),
    ),
}
CASES = [(name, k) for name in FUNCTIONS for k in (0.5, 2.0)]


def exact_gradient(name: str, k: float) -> torch.Tensor:
    m = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(SIGMA, dtype=torch.float64, requires_grad=True)
    return torch.stack(torch.autograd.grad(FUNCTIONS[name][2](k, m, s), [m, s]))


def normal_pdf(x):
    return np.exp(-((x - MU) ** 2) / (2 * SIGMA**2)) / (SIGMA * math.sqrt(2 * math.pi))


def expect(g) -> float:
    return integrate.quad(lambda x: g(x) * normal_pdf(x), -np.inf, np.inf, limit=200)[0]


def exact_variances(estimator: str, name: str, k: float, gradient: torch.Tensor) -> list[float]:
    """Exact single-sample variance of the (mu, sigma) gradient estimate."""
    f = FUNCTIONS[name][1](k)
    if estimator == "score_function":
        scores = [lambda x: (x - MU) / SIGMA**2, lambda x: ((x - MU) ** 2 - SIGMA**2) / SIGMA**3]
        return [
            expect(lambda x, s=s: (f(x) * s(x)) ** 2) - g**2
            for s, g in zip(scores, gradient.tolist(), strict=True)
        ]
    if estimator == "pathwise":
        h = 1e-5
        derivative = lambda x: (f(x + h) - f(x - h)) / (2 * h)  # noqa: E731
        eps = lambda x: (x - MU) / SIGMA  # noqa: E731
        second = [expect(lambda x: derivative(x) ** 2), expect(lambda x: (derivative(x) * eps(x)) ** 2)]
        return [m2 - g**2 for m2, g in zip(second, gradient.tolist(), strict=True)]
    # Coupled measure-valued: W ~ Rayleigh for loc; M double-sided Maxwell, U uniform for scale.
    c_loc = 1 / (SIGMA * math.sqrt(2 * math.pi))
    rayleigh = lambda w: w * np.exp(-(w**2) / 2)  # noqa: E731
    loc_m2 = integrate.quad(
        lambda w: (c_loc * (f(MU + SIGMA * w) - f(MU - SIGMA * w))) ** 2 * rayleigh(w), 0, np.inf
    )[0]
    maxwell = lambda m: m**2 * np.exp(-(m**2) / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    scale_m2 = integrate.dblquad(
        lambda u, m: ((f(MU + SIGMA * m) - f(MU + SIGMA * m * u)) / SIGMA) ** 2 * maxwell(m),
        -12,
        12,
        0,
        1,
        epsabs=1e-10,
    )[0]
    return [loc_m2 - gradient[0].item() ** 2, scale_m2 - gradient[1].item() ** 2]


def gradient_draws(estimator: str, f, copies: int, **options) -> torch.Tensor:
    """``copies`` independent single-draw estimates of (d/dmu, d/dsigma), shape (copies, 2)."""
    mu = torch.full((copies,), MU, requires_grad=True)
    sigma = torch.full((copies,), SIGMA, requires_grad=True)
    value = sg.expectation(
        f, Normal(mu, sigma), options.pop("num_samples", 1), estimator=estimator, **options
    )
    assert value.shape == (copies,)
    return torch.stack(torch.autograd.grad(value.sum(), [mu, sigma]), -1)


COPIES = {"score_function": 1_000_000, "pathwise": 100_000, "measure_valued": 100_000}


@pytest.mark.parametrize("estimator", ["score_function", "pathwise", "measure_valued"])
@pytest.mark.parametrize(("name", "k"), CASES)
def test_single_sample_gradient_is_unbiased_with_exact_variance(estimator, name, k):
    torch.manual_seed(1)
    gradient = exact_gradient(name, k)
    draws = gradient_draws(estimator, FUNCTIONS[name][0](k), COPIES[estimator])
    assert_unbiased(draws, gradient, what=f"{estimator} on {name}(k={k})")
    for index, variance in enumerate(exact_variances(estimator, name, k, gradient)):
        parameter = ("mu", "sigma")[index]
        if variance < 1e-9:  # e.g. pathwise d/dsigma of (x-k)^2 is 2 sigma eps^2: never constant, but guard
            assert draws[:, index].var() < 1e-6
            continue
        assert_variance_close(draws[:, index], variance, what=f"{estimator} d/d{parameter} {name}(k={k})")


@pytest.mark.parametrize("baseline", ["leave_one_out", "optimal", "moving_average", 3.0])
def test_score_function_baselines_are_unbiased_and_reduce_variance(baseline):
    name, k = "square", 2.0
    gradient = exact_gradient(name, k)
    f = FUNCTIONS[name][0](k)
    if baseline == "moving_average":
        # The average only helps once it has seen some costs: warm it up on earlier calls.
        baseline = sg.baselines.MovingAverage(decay=0.5)
        for _ in range(5):
            gradient_draws("score_function", f, 1000, num_samples=4, baseline=baseline)
        assert abs(baseline.average.item() - 2.0) < 0.1  # E[(x - 2)^2] = 1 + 1
    # 16 samples: the optimal coefficients are estimated leave-one-out, which needs a few samples to settle.
    plain = gradient_draws("score_function", f, 100_000, num_samples=16)
    reduced = gradient_draws("score_function", f, 100_000, num_samples=16, baseline=baseline)
    assert_unbiased(reduced, gradient, what=f"baseline {baseline}")
    # A clear reduction, well beyond the few-percent noise of variance estimates from 100k draws.
    assert (reduced.var(0) < 0.9 * plain.var(0)).all(), (
        f"{baseline}: {reduced.var(0)} vs plain {plain.var(0)}"
    )


@pytest.mark.parametrize(
    ("estimator", "sampler"),
    [
        ("pathwise", "antithetic"),
        ("pathwise", "sobol"),
        ("score_function", "antithetic"),
        ("score_function", "sobol"),
    ],
)
def test_coupled_samplers_stay_unbiased(estimator, sampler):
    name, k = "cosine", 0.5
    draws = gradient_draws(estimator, FUNCTIONS[name][0](k), 50_000, num_samples=8, sampler=sampler)
    assert_unbiased(draws, exact_gradient(name, k), what=f"{estimator} with {sampler}")


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
def test_sobol_reduces_variance_on_a_smooth_function(estimator):
    f = FUNCTIONS["cosine"][0](0.5)
    iid = gradient_draws(estimator, f, 50_000, num_samples=8)
    sobol = gradient_draws(estimator, f, 50_000, num_samples=8, sampler="sobol")
    assert (sobol.var(0) < iid.var(0)).all(), f"{sobol.var(0)} vs iid {iid.var(0)}"


def test_antithetic_pairs_cancel_a_linear_pathwise_gradient():
    # d/dmu (x - k)^2 = 2 (mu + sigma eps - k) is odd in eps around its mean: each pair averages it exactly.
    draws = gradient_draws(
        "pathwise", FUNCTIONS["square"][0](2.0), 10_000, num_samples=2, sampler="antithetic"
    )
    assert draws[:, 0].var() < 1e-10
    assert_unbiased(draws, exact_gradient("square", 2.0))


def test_coupling_the_measure_valued_parts_reduces_variance_and_both_are_unbiased():
    f = FUNCTIONS["square"][0](2.0)
    coupled = gradient_draws(sg.MeasureValued(coupled=True), f, 100_000)
    independent = gradient_draws(sg.MeasureValued(coupled=False), f, 100_000)
    assert_unbiased(independent, exact_gradient("square", 2.0), what="uncoupled measure-valued")
    # d/dmu of (x - 2)^2 at mu = sigma = 1, with W, W' ~ Rayleigh and c = 1/sqrt(2 pi):
    # coupled c (f(1 + W) - f(1 - W)) = -4 c W; independent c (W^2 - 2W - W'^2 - 2W').
    # Rayleigh moments: E W = sqrt(pi/2), E W^2 = 2, E W^3 = 3 sqrt(pi/2), E W^4 = 8.
    c2, ew = 1 / (2 * math.pi), math.sqrt(math.pi / 2)
    var_w, var_w2, cov_w2_w = 2 - ew**2, 8 - 4, 3 * ew - 2 * ew
    assert_variance_close(coupled[:, 0], c2 * 16 * var_w, what="coupled d/dmu")
    uncoupled_variance = c2 * ((var_w2 + 4 * var_w - 4 * cov_w2_w) + (var_w2 + 4 * var_w + 4 * cov_w2_w))
    assert_variance_close(independent[:, 0], uncoupled_variance, what="independent d/dmu")
    assert coupled[:, 1].var() < 0.5 * independent[:, 1].var(), (coupled.var(0), independent.var(0))
