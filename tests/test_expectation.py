"""The public contract of ``sg.expectation``: shapes, names and objects, distributions, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Distribution,
    ExpTransform,
    Independent,
    Normal,
    OneHotCategorical,
    Poisson,
    TransformedDistribution,
    constraints,
)

import scoregrad as sg
from tests.helpers import assert_unbiased


def test_quick_start_from_the_issue_runs_and_is_unbiased():
    mu = torch.zeros(3, requires_grad=True)
    value = sg.expectation(
        lambda x: (x > 0.5).float(),
        Normal(mu, 1.0),
        num_samples=16,
        estimator="score_function",
        baseline="leave_one_out",
    )
    value.sum().backward()
    assert value.shape == (3,) and mu.grad.shape == (3,)
    # d/dmu P(x > 0.5) = phi(0.5 - mu): check over many copies.
    mu = torch.zeros(100_000, requires_grad=True)
    value = sg.expectation(lambda x: x > 0.5, Normal(mu, 1.0), 16, baseline="leave_one_out")
    (gradient,) = torch.autograd.grad(value.sum(), mu)
    assert_unbiased(gradient, math.exp(-0.125) / math.sqrt(2 * math.pi))


def test_estimator_baseline_and_sampler_take_names_or_objects():
    mu = torch.zeros(4, requires_grad=True)
    by_object = sg.expectation(
        lambda x: x**2,
        Normal(mu, 1.0),
        8,
        estimator=sg.ScoreFunction(baseline=sg.baselines.LeaveOneOut()),
        sampler=sg.sampling.IID(),
    )
    assert by_object.shape == (4,)
    assert isinstance(sg.ESTIMATORS["disarm"](), sg.DisARM)


@pytest.mark.parametrize(
    ("dist", "estimator"),
    [
        (lambda p: Independent(Normal(p, 1.0), 1), "score_function"),
        (lambda p: Independent(Normal(p, 1.0), 1), "pathwise"),
        (lambda p: Independent(Normal(p, 1.0), 1), "measure_valued"),
        (lambda p: TransformedDistribution(Normal(p, 1.0), [ExpTransform()]), "score_function"),
        (lambda p: TransformedDistribution(Normal(p, 1.0), [ExpTransform()]), "pathwise"),
        (lambda p: Independent(Bernoulli(logits=p), 1), "exact"),
        (lambda p: OneHotCategorical(logits=p), "exact"),
        (lambda p: Binomial(3, logits=p), "exact"),
        (lambda p: Binomial(3, logits=p), "score_function"),
    ],
)
def test_result_has_the_batch_shape_and_gradients_reach_parameters(dist, estimator):
    params = torch.zeros(5, 3, requires_grad=True)
    d = dist(params)

    def f(x):
        return (
            x.reshape(x.shape[: 1 + len(d.batch_shape)] + (-1,)).float().sum(-1)
            if d.event_shape
            else x.float()
        )

    value = sg.expectation(f, d, 4, estimator=estimator)
    assert value.shape == d.batch_shape
    value.sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all()


def test_batch_copies_are_independent_draws():
    mu = torch.zeros(20_000, requires_grad=True)
    value = sg.expectation(lambda x: x**3, Normal(mu, 1.0), 1)
    (gradient,) = torch.autograd.grad(value.sum(), mu)
    halves = gradient.reshape(2, -1)
    correlation = torch.corrcoef(halves)[0, 1]
    assert len(torch.unique(gradient)) > 19_000
    assert abs(correlation) < 4 / math.sqrt(10_000)


def test_transformed_distribution_gradient_matches_closed_form():
    # x = exp(y), y ~ N(mu, 1): E[x] = exp(mu + 1/2), so d/dmu E[x] = exp(mu + 1/2).
    mu = torch.full((200_000,), 0.2, requires_grad=True)
    dist = TransformedDistribution(Normal(mu, 1.0), [ExpTransform()])
    value = sg.expectation(lambda x: x, dist, 2, baseline="leave_one_out")
    (gradient,) = torch.autograd.grad(value.sum(), mu)
    assert_unbiased(gradient, math.exp(0.7))


class HalfNormalScale(Distribution):
    """A user subclass with only sample and log_prob: |N(0, scale)|."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive

    def __init__(self, scale, validate_args=None):
        self.scale = scale
        super().__init__(scale.shape, validate_args=validate_args)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return torch.randn(sample_shape + self.scale.shape).abs() * self.scale

    def log_prob(self, value):
        return math.log(2) + Normal(0.0, self.scale).log_prob(value)


def test_user_subclass_works_with_score_function_and_pathwise_says_what_is_missing():
    # E|x| = scale * sqrt(2/pi), so the gradient in scale is sqrt(2/pi).
    scale = torch.full((200_000,), 1.5, requires_grad=True)
    value = sg.expectation(lambda x: x, HalfNormalScale(scale), 4, baseline="leave_one_out")
    (gradient,) = torch.autograd.grad(value.sum(), scale)
    assert_unbiased(gradient, math.sqrt(2 / math.pi))
    with pytest.raises(TypeError, match="pathwise.*rsample.*HalfNormalScale.*score_function"):
        sg.expectation(lambda x: x, HalfNormalScale(scale), 4, estimator="pathwise")


def test_boolean_and_integer_costs_are_cast_to_float():
    logits = torch.zeros(3, requires_grad=True)
    value = sg.expectation(lambda x: x.long() * 2, Categorical(logits=logits.expand(2, 3)), 4)
    assert value.dtype == torch.float32


# ---- bad input: a clear error naming the argument ---------------------------------------------


def normal():
    return Normal(torch.zeros(3, requires_grad=True), 1.0)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda: sg.expectation(lambda x: x.sum(), normal(), 4),
            ValueError,
            r"f returned shape \(\), expected \(4, 3\)",
        ),
        (lambda: sg.expectation(lambda x: x / 0 * 0, normal(), 4), ValueError, r"f returned \d+ non-finite"),
        (
            lambda: sg.expectation(lambda x: torch.full_like(x, math.inf), normal(), 4, estimator="pathwise"),
            ValueError,
            "non-finite",
        ),
        (lambda: sg.expectation(lambda x: "cost", normal(), 4), TypeError, "f must return a tensor"),
        (
            lambda: sg.expectation(
                lambda x: x, Bernoulli(torch.full((3,), 0.5, requires_grad=True)), 2, estimator="pathwise"
            ),
            TypeError,
            "rsample; Bernoulli has none",
        ),
        (
            lambda: sg.expectation(lambda x: x, Poisson(torch.ones(3)), 2, estimator="exact"),
            TypeError,
            "enumerate_support; Poisson",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 2, estimator="arm"),
            TypeError,
            "Bernoulli.*got Normal",
        ),
        (
            lambda: sg.expectation(
                lambda x: x.sum(-1),
                Independent(Bernoulli(logits=torch.zeros(20)), 1),
                2,
                estimator=sg.Exact(max_support=1000),
            ),
            ValueError,
            "max_support=1000",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 1, baseline="leave_one_out"),
            ValueError,
            "num_samples >= 2",
        ),
        (lambda: sg.expectation(lambda x: x, normal(), 3, estimator="disarm"), TypeError, "Bernoulli"),
        (
            lambda: sg.expectation(lambda x: x, Bernoulli(logits=torch.zeros(3)), 3, estimator="disarm"),
            ValueError,
            "num_samples must be even",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 4, estimator="nope"),
            ValueError,
            "unknown estimator 'nope'",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 4, baseline="nope"),
            ValueError,
            "unknown baseline 'nope'",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 4, sampler="nope"),
            ValueError,
            "unknown sampler 'nope'",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 4, estimator="pathwise", baseline="leave_one_out"),
            ValueError,
            "baseline= applies to estimator 'score_function' only",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 4, baseline="leave_one_out", sampler="antithetic"),
            ValueError,
            "biased when sampler",
        ),
        (
            lambda: sg.expectation(lambda x: x, normal(), 3, sampler="antithetic"),
            ValueError,
            "even num_samples",
        ),
        (
            lambda: sg.expectation(lambda x: x, Bernoulli(logits=torch.zeros(3)), 2, sampler="sobol"),
            TypeError,
            "icdf; Bernoulli",
        ),
        (
            lambda: sg.expectation(lambda x: x, Bernoulli(logits=torch.zeros(3)), 2, sampler="antithetic"),
            TypeError,
            "symmetric",
        ),
        (
            lambda: sg.expectation(
                lambda x: x, Categorical(logits=torch.zeros(3)), 2, estimator="gumbel_softmax"
            ),
            TypeError,
            "OneHotCategorical",
        ),
        (
            lambda: sg.expectation(lambda x: (x > 0).float(), normal(), 2, estimator="pathwise"),
            ValueError,
            "differentiable",
        ),
        (lambda: sg.expectation(lambda x: x, "not a distribution", 2), TypeError, "dist must be"),
        (lambda: sg.expectation(lambda x: x, normal(), 2.5), TypeError, "num_samples must be an int"),
        (lambda: sg.expectation(lambda x: x, normal(), 0), ValueError, "num_samples >= 1"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# ---- baselines with state ---------------------------------------------------------------------


def test_learned_baseline_is_trained_by_the_same_backward_pass():
    torch.manual_seed(0)
    mu = torch.zeros(64, requires_grad=True)
    model = nn.Linear(1, 1)
    context = torch.ones(64, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        value = sg.expectation(
            lambda x: (x - 2) ** 2,
            Normal(mu, 1.0),
            4,
            baseline=lambda c: model(c).squeeze(-1),
            context=context,
        )
        value.mean().backward()
        optimizer.step()
    # The baseline learns E[(x - 2)^2] = 5 at mu = 0 (mu is not stepped here).
    assert abs(model(torch.ones(1)).item() - 5.0) < 0.3


def test_learned_baseline_keeps_the_value_and_stays_unbiased():
    mu = torch.zeros(100_000, requires_grad=True)
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(4.5)
    value = sg.expectation(
        lambda x: (x - 2) ** 2,
        Normal(mu, 1.0),
        1,
        baseline=sg.baselines.Learned(model),
        context=torch.ones(100_000, 1),
    )
    assert abs(value.mean().item() - 5.0) < 0.05
    (gradient,) = torch.autograd.grad(value.sum(), mu)
    assert_unbiased(gradient, -4.0)


def test_moving_average_state_persists_and_uses_only_past_costs():
    baseline = sg.baselines.MovingAverage(decay=0.0)
    first, _ = baseline(torch.full((4, 2), 3.0))
    second, _ = baseline(torch.full((4, 2), 7.0))
    assert first.item() == 0.0 and second.item() == 3.0
    per_element = sg.baselines.MovingAverage(per_element=True)
    per_element(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="batch shape changed"):
        per_element(torch.zeros(4, 5))


def test_categorical_fast_log_prob_matches_torch_in_value_and_gradient():
    from scoregrad.estimators.base import sample_log_prob

    logits = torch.randn(5, 7, 10, requires_grad=True)
    dist = Categorical(logits=logits)
    samples = dist.sample((4,))
    fast, reference = sample_log_prob(dist, samples), dist.log_prob(samples)
    assert torch.equal(fast, reference)
    (fast_gradient,) = torch.autograd.grad(fast.sum(), logits, retain_graph=True)
    (reference_gradient,) = torch.autograd.grad(reference.sum(), logits)
    torch.testing.assert_close(fast_gradient, reference_gradient)
