"""Variance orderings the literature predicts, measured in a graph at a common parameter point.

DisARM < ARM (Dong, Mnih & Tucker, 2020: same evaluations, never worse) and leave-one-out over 4
samples < a moving average with 1 sample (Kool et al., 2019). Each estimator's gradient is drawn for
``R`` independent replicates (a batch dimension with its own parameter row), and the gap between the
two total variances must exceed 4 standard errors of its own estimate.
"""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Independent

import scoregrad as sg
from scoregrad.baselines import MovingAverage

R = 4000
TARGET = (torch.arange(12) % 3 == 0).float()
LOGITS = torch.linspace(-0.8, 0.8, 12)


def draws(num_samples, estimator=None, baseline=None):
    rows = LOGITS.repeat(R, 1).requires_grad_(True)
    for _ in range(2):  # the first pass warms up a moving average
        with sg.graph() as g:
            z = g.sample(
                "z",
                Independent(Bernoulli(logits=rows), 1),
                num_samples,
                estimator=estimator,
                baseline=baseline,
            )
            g.cost("f", ((z - TARGET) ** 2).sum(-1) + 0.5 * (z[..., :4].sum(-1)) ** 2)
        (grad,) = torch.autograd.grad(g.surrogate(), rows)
    return grad


def total_variance_and_se(grad):
    """Total variance (trace of the covariance) and its standard error, from per-draw squared deviations."""
    squared = (grad - grad.mean(0)).pow(2).sum(-1)
    return squared.mean(), squared.std() / len(squared) ** 0.5


def assert_lower(low, high, what):
    (a, se_a), (b, se_b) = total_variance_and_se(low), total_variance_and_se(high)
    assert b - a > 4 * (se_a**2 + se_b**2) ** 0.5, f"{what}: {a:.4g} ± {se_a:.2g} vs {b:.4g} ± {se_b:.2g}"


def test_disarm_has_lower_variance_than_arm_for_the_same_evaluations():
    assert_lower(draws(2, "disarm"), draws(2, "arm"), "DisARM < ARM")


def test_leave_one_out_over_four_samples_beats_moving_average():
    assert_lower(
        draws(4, baseline="leave_one_out"), draws(None, baseline=MovingAverage()), "RLOO(4) < REINFORCE+MA"
    )
