"""tell()'s search gradient is the score-function estimator of a Normal: unbiased, and the core's."""

from __future__ import annotations

import torch
from torch.distributions import Normal

import scoregrad as sg
from tests.helpers import assert_unbiased

D = 5


def quadratic():
    """f(x) = x^T A x + b^T x; under N(m, diag s^2): grad_m E f = 2 A m + b, d E f / d log s_k = 2 s_k^2 A_kk."""
    g = torch.Generator().manual_seed(3)
    L = torch.randn(D, D, generator=g, dtype=torch.float64)
    A = L @ L.T / D + torch.eye(D, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    m = torch.randn(D, generator=g, dtype=torch.float64)
    return (lambda X: ((X @ A) * X).sum(-1) + X @ b), A, b, m


def draws_of_mean_gradient(es, f, repeats, reset=None):
    grads = []
    for _ in range(repeats):
        if reset is not None:
            reset(es)
        es.tell(f(es.ask()))
        grads.append(es.mean.grad.clone())
    return torch.stack(grads)


def test_openes_gradient_is_unbiased_for_a_quadratic_antithetic_and_iid():
    f, A, b, m = quadratic()
    for antithetic in (True, False):
        es = sg.es.OpenES(m, sigma=0.7, popsize=6, antithetic=antithetic, shaping=None, seed=1)
        draws = draws_of_mean_gradient(es, f, 3000)
        assert_unbiased(draws, 2 * A @ m + b, what=f"OpenES antithetic={antithetic}")


def test_snes_and_pgpe_mean_gradient_is_the_unbiased_natural_gradient():
    f, A, b, m = quadratic()
    sigma = torch.tensor([0.3, 0.5, 0.7, 1.0, 1.3], dtype=torch.float64)

    def reset(es):  # hold the distribution fixed: tell() adapts sigma
        es.sigma = sigma.clone()

    for cls in (sg.es.SNES, sg.es.PGPE, sg.es.XNES):
        es = cls(m, sigma=1.0, popsize=8, antithetic=True, shaping=None, seed=2)
        if cls is sg.es.XNES:
            natural = 0.8**2

            def reset_fn(es):
                es.sigma, es.B = 0.8, torch.eye(D, dtype=torch.float64)
        else:
            reset_fn, natural = reset, sigma**2
        draws = draws_of_mean_gradient(es, f, 3000, reset_fn)
        assert_unbiased(draws, natural * (2 * A @ m + b), what=cls.name)


def test_log_sigma_score_is_unbiased_for_a_quadratic():
    f, A, b, m = quadratic()
    sigma = torch.tensor([0.3, 0.5, 0.7, 1.0, 1.3], dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    draws = []
    for _ in range(3000):
        z = torch.randn(8, D, generator=gen, dtype=torch.float64)
        losses = f(m + sigma * z)
        _, g_log_sigma = sg.es.weighted_scores(sg.es.no_shaping(losses, antithetic=False), z)
        draws.append(g_log_sigma)
    assert_unbiased(torch.stack(draws), 2 * sigma**2 * torch.diagonal(A), what="d E f / d log sigma")


def test_closed_form_scores_equal_the_cores_score_function_surrogate():
    """The one closed form in es/gradient.py against autograd through sg.surrogate on a Normal."""
    f, *_ = quadratic()
    m = torch.randn(D, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.randn(D, dtype=torch.float64).mul(0.3).requires_grad_(True)
    z = torch.randn(16, D, dtype=torch.float64)
    x = (m + log_sigma.exp() * z).detach()
    values = f(x)
    surrogate = sg.surrogate.score_function_surrogate(Normal(m, log_sigma.exp()).log_prob(x).sum(-1), values)
    grad_m, grad_log_sigma = torch.autograd.grad(surrogate.mean(), [m, log_sigma])
    g_mean, g_shape = sg.es.weighted_scores(values / 16, z)
    torch.testing.assert_close(g_mean / log_sigma.exp().detach(), grad_m)
    torch.testing.assert_close(g_shape, grad_log_sigma)


def test_full_shape_score_has_the_separable_one_on_its_diagonal():
    z, w = torch.randn(12, D, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    _, full = sg.es.weighted_scores(w, z, full=True)
    _, diagonal = sg.es.weighted_scores(w, z)
    torch.testing.assert_close(torch.diagonal(full), diagonal)


def test_antithetic_sampling_lowers_the_gradient_variance_near_an_optimum():
    """Mirrored pairs cancel the even part of f around the centre exactly; iid samples (even with
    the leave-one-out baseline) carry it as noise. (For a purely linear f, iid with leave-one-out
    wins: P independent directions against P/2.)"""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(20, generator=g)

    def f(X):
        return X @ b + 2.0 * (X**2).sum(-1)

    variances = {}
    for antithetic in (True, False):
        es = sg.es.OpenES(torch.zeros(20), sigma=0.5, popsize=10, antithetic=antithetic, shaping=None, seed=0)
        variances[antithetic] = draws_of_mean_gradient(es, f, 400).var(0).sum()
        es.tell(f(es.ask()))
        stats = es.gradient_stats()
        assert isinstance(stats, sg.diagnostics.GradientStats)
        torch.testing.assert_close(stats.mean.float(), es.mean.grad)  # float32 problem
    # 400 draws: each summed variance is known to ~2%, so a 20% margin is many standard errors.
    assert variances[True] < 0.8 * variances[False]


def test_gradient_stats_standard_error_matches_the_spread_across_generations():
    """The per-generation standard error that gradient_stats reports (from one population) agrees
    with the actual spread of tell()'s gradients over many generations."""
    b = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    es = sg.es.OpenES(torch.zeros(4, dtype=torch.float64), sigma=0.5, popsize=16, shaping=None, seed=0)
    grads, reported = [], []
    for _ in range(1000):
        es.tell(es.ask() @ b)
        grads.append(es.mean.grad.clone())
        reported.append(es.gradient_stats().standard_error ** 2)
    actual = torch.stack(grads).var(0)
    torch.testing.assert_close(torch.stack(reported).mean(0), actual, rtol=0.15, atol=0)
    assert es.gradient_stats().repeats == 8
