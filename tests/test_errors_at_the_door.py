"""Mistakes in the core API are refused at the door with a message naming the argument, never silent."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import (
    Bernoulli,
    Distribution,
    Normal,
    OneHotCategorical,
    TransformedDistribution,
    transforms,
)

import scoregrad as sg
from tests.helpers import assert_unbiased


def test_moving_average_by_name_is_refused_because_a_name_cannot_keep_state():
    mu = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="pass that object on every call"):
        sg.expectation(lambda x: x, Normal(mu, 1.0), 4, baseline="moving_average")
    with sg.graph() as g, pytest.raises(ValueError, match="MovingAverage\\(\\)"):
        g.sample("z", Bernoulli(logits=mu), 2, baseline="moving_average")


def test_a_kept_moving_average_object_does_reduce_variance():
    """What the refused name silently failed to do: the object keeps its state across calls."""
    mu = torch.zeros((), requires_grad=True)

    def draws(baseline):
        out = []
        for _ in range(400):
            mu.grad = None
            sg.expectation(lambda x: (x + 10.0) ** 2, Normal(mu, 1.0), 1, baseline=baseline).backward()
            out.append(mu.grad.item())
        return torch.tensor(out)

    torch.manual_seed(0)
    plain = draws(None)
    torch.manual_seed(0)
    kept = draws(sg.baselines.MovingAverage(decay=0.9))
    assert kept[50:].var() < plain[50:].var() / 10


@pytest.mark.parametrize(
    ("baseline", "error", "message"),
    [
        (float("nan"), ValueError, "baseline must be finite; got nan"),
        (torch.tensor([1.0, float("inf"), 0.0]), ValueError, "baseline must be finite"),
        (
            torch.ones(7),
            ValueError,
            "baseline has shape \\(7,\\), which does not broadcast to the costs' shape \\(4, 3\\)",
        ),
    ],
)
def test_bad_baseline_values_name_the_baseline(baseline, error, message):
    mu = torch.zeros(3, requires_grad=True)
    with pytest.raises(error, match=message):
        sg.expectation(lambda x: x, Normal(mu, 1.0), 4, baseline=baseline)


def test_a_learned_baseline_returning_nan_is_refused():
    mu = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="baseline has non-finite values"):
        sg.expectation(lambda x: x, Normal(mu, 1.0), 4, baseline=lambda: torch.full((3,), float("nan")))


def test_a_graph_node_baseline_of_the_wrong_shape_names_the_node():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(3, requires_grad=True)), 2, baseline=torch.ones(5))
        g.cost("c", z)
    with pytest.raises(ValueError, match="node 'z': baseline has shape \\(5,\\)"):
        g.surrogate()


def test_graph_costs_whose_shape_does_not_broadcast_name_the_cost_and_node():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(3)), 2)
        w = g.sample("w", Bernoulli(logits=torch.zeros(5)), 3)
        with pytest.raises(ValueError, match="cost 'c' has shape \\(2, 3\\) but depends on node 'w'"):
            g.cost("c", z * w.sum())  # depends on w, whose (plate, batch) = (3, 5) is not in (2, 3)


class _NoLogProb(Distribution):
    arg_constraints: dict = {}

    def __init__(self):
        super().__init__(torch.Size([3]), validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        return torch.zeros(torch.Size(sample_shape) + (3,))


class _NoIcdf(_NoLogProb):
    def log_prob(self, value):
        return torch.zeros_like(value)


def test_missing_distribution_methods_are_named_with_the_distribution():
    with pytest.raises(TypeError, match="estimator .score_function. needs log_prob; _NoLogProb has none"):
        sg.expectation(lambda x: x, _NoLogProb(), 4)
    with pytest.raises(TypeError, match="sampler 'sobol' needs icdf; _NoIcdf has none"):
        sg.expectation(lambda x: x, _NoIcdf(), 4, sampler="sobol")


def test_sobol_works_on_a_transformed_distribution_and_stays_unbiased():
    mu = torch.tensor(0.3, requires_grad=True)
    grads = []
    for _ in range(4000):
        mu.grad = None
        dist = TransformedDistribution(Normal(mu, 1.0), [transforms.ExpTransform()])
        sg.expectation(lambda x: x, dist, 4, sampler="sobol").backward()
        grads.append(mu.grad.clone())
    # d/dmu E[exp(X)] = exp(mu + 1/2)
    assert_unbiased(torch.stack(grads), torch.exp(torch.tensor(0.3 + 0.5)), "sobol on exp(Normal)")


def test_optimal_baseline_on_one_hot_categorical_is_unbiased():
    logits = torch.tensor([0.2, -0.4, 0.7], requires_grad=True)
    values = torch.tensor([1.0, 3.0, -2.0])

    def f(x):
        return (x * values).sum(-1)

    exact = torch.autograd.grad((torch.softmax(logits, -1) * values).sum(), logits)[0]
    grads = []
    for _ in range(3000):
        logits.grad = None
        sg.expectation(f, OneHotCategorical(logits=logits), 8, baseline="optimal").backward()
        grads.append(logits.grad.clone())
    assert_unbiased(torch.stack(grads), exact, "optimal baseline, OneHotCategorical")


def test_a_sampler_an_estimator_would_ignore_is_refused():
    logits = torch.zeros(3, requires_grad=True)
    for estimator in ("arm", "disarm", "exact", "measure_valued"):
        with pytest.raises(ValueError, match=f"estimator '{estimator}' draws its own samples"):
            sg.expectation(
                lambda x: x, Bernoulli(logits=logits), 4, estimator=estimator, sampler="antithetic"
            )
