from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Normal

from scoregrad import diagnostics


@pytest.mark.parametrize(
    "dist",
    [
        Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])),
        Bernoulli(probs=torch.tensor([0.3, 0.9])),
        Bernoulli(logits=torch.tensor([0.5, -2.0])),
        Categorical(logits=torch.tensor([[0.1, -0.3, 1.2], [0.0, 0.0, 0.0]])),
        Categorical(probs=torch.tensor([0.2, 0.3, 0.5])),
    ],
    ids=["normal", "bernoulli-probs", "bernoulli-logits", "categorical-logits", "categorical-probs"],
)
def test_score_has_mean_zero_and_covariance_equal_to_fisher(dist):
    report = diagnostics.score_identities(dist, num_samples=50_000)
    assert report.ok, (report.max_z_mean, report.max_z_covariance)


class MisScaledNormal(Normal):
    """A broken log_prob (twice the right one): its score no longer has mean zero."""

    def log_prob(self, value):
        return 2 * super().log_prob(value)


def test_score_identities_catch_a_wrong_log_prob():
    report = diagnostics.score_identities(MisScaledNormal(torch.tensor([0.0]), torch.tensor([1.0])), 50_000)
    assert not report.ok and report.max_z_covariance > 10


def test_measure_reports_bias_in_standard_errors_and_compare_prints_a_table(capsys):
    mu = torch.tensor(1.0, requires_grad=True)
    results = diagnostics.compare(
        {
            "score function": {},
            "rloo (4)": {"baseline": "leave_one_out", "num_samples": 4},
            "pathwise": "pathwise",
        },
        lambda x: (x - 2) ** 2,
        lambda: Normal(mu, 1.0),
        [mu],
        repeats=400,
        exact_gradient=torch.tensor([-2.0]),
    )
    table = capsys.readouterr().out
    assert "rloo (4)" in table and "max |z|" in table
    for result in results:
        assert result.z_score.abs().max() < 4
        assert result.seconds_per_estimate > 0
    # The pathwise gradient of (x - 2)^2 is 2 (x - 2): variance 4 sigma^2.
    assert abs(results[2].variance.item() - 4.0) < 4 * 4.0 * math.sqrt(2 / 399)


def test_measure_flags_the_bias_of_a_relaxation():
    logit = torch.tensor(0.8, requires_grad=True)
    p = torch.sigmoid(torch.tensor(0.8)).item()
    exact = p * (1 - p) * (0.55**2 - 0.45**2)
    stats = diagnostics.measure(
        lambda b: (b - 0.45) ** 2,
        lambda: Bernoulli(logits=logit),
        [logit],
        estimator="gumbel_softmax",
        num_samples=64,
        repeats=2000,
        exact_gradient=torch.tensor([exact]),
    )
    assert stats.z_score.abs().item() > 4
