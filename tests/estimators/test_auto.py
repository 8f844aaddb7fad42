"""estimator="auto" picks by measured variance x cost, never picks a biased or blind estimator, and stays unbiased."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Normal

import scoregrad as sg
from tests.helpers import assert_unbiased


def choose(f, dist_fn, num_samples, seed, **kwargs):
    torch.manual_seed(seed)
    auto = sg.Auto(**kwargs)
    sg.expectation(f, dist_fn(), num_samples, estimator=auto)
    return auto


def normal():
    return Normal(torch.tensor([1.0], requires_grad=True), torch.tensor([1.0], requires_grad=True))


@pytest.mark.parametrize("seed", range(3))
def test_bernoulli_toy_chooses_exact_or_disarm(seed):
    auto = choose(
        lambda b: (b - 0.45) ** 2, lambda: Bernoulli(logits=torch.zeros(1, requires_grad=True)), 2, seed
    )
    assert auto.choice.name in ("exact", "disarm")
    assert auto.table[0].variance == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_smooth_f_on_a_normal_chooses_pathwise(seed):
    auto = choose(lambda x: (x - 2) ** 2, normal, 4, seed)
    assert auto.choice.name == "pathwise"


@pytest.mark.parametrize("seed", range(3))
def test_oscillating_f_chooses_score_function_or_measure_valued(seed):
    auto = choose(lambda x: torch.cos(3 * x), normal, 4, seed)
    assert auto.choice.name in ("score_function", "measure_valued")


def test_a_thresholded_f_never_gets_pathwise():
    for f in (lambda x: (x > 0.5).float(), torch.round):
        auto = choose(f, normal, 4, 0)
        pathwise = next(r for r in auto.table if r.estimator == "pathwise")
        assert pathwise.note and auto.choice.name != "pathwise"


def test_biased_relaxations_only_when_asked():
    def dist():
        return Bernoulli(logits=torch.full((1,), 0.3, requires_grad=True))

    names = {r.estimator for r in choose(lambda b: (b - 0.45) ** 2, dist, 2, 0).table}
    assert not names & {"gumbel_softmax", "straight_through"}
    biased = {r.estimator for r in choose(lambda b: (b - 0.45) ** 2, dist, 2, 0, include_biased=True).table}
    assert {"gumbel_softmax", "straight_through"} <= biased


def test_the_choice_is_reproducible_under_a_seed():
    first = choose(lambda x: torch.cos(3 * x), normal, 4, seed=7)
    second = choose(lambda x: torch.cos(3 * x), normal, 4, seed=7)
    assert [(r.estimator, r.variance, r.evaluations) for r in first.table] == [
        (r.estimator, r.variance, r.evaluations) for r in second.table
    ]


def test_auto_gradients_are_unbiased_on_fresh_samples():
    """d/dmu E[cos(3x)], x ~ N(mu, 1): -3 sin(3 mu) exp(-9/2). Re-choosing every 10 calls."""
    mu = torch.tensor(1.0, requires_grad=True)
    auto = sg.Auto(trials=8, recheck_every=10)
    grads = []
    torch.manual_seed(0)
    for _ in range(3000):
        mu.grad = None
        sg.expectation(lambda x: torch.cos(3 * x), Normal(mu, 1.0), 4, estimator=auto).backward()
        grads.append(mu.grad.clone())
    exact = -3 * torch.sin(torch.tensor(3.0)) * torch.exp(torch.tensor(-4.5))
    assert_unbiased(torch.stack(grads), exact, "auto on cos(3x)")


def test_auto_by_name_works_and_diagnostics_show_the_table(capsys):
    mu = torch.zeros(2, requires_grad=True)
    value = sg.expectation(lambda x: (x - 1) ** 2, Normal(mu, 1.0), 4, estimator="auto")
    value.sum().backward()
    assert mu.grad is not None and value.shape == (2,)
    auto = choose(lambda x: (x - 2) ** 2, normal, 4, 0)
    text = sg.diagnostics.auto_table(auto)
    assert text.splitlines()[1].startswith("*pathwise") and "pathwise" in capsys.readouterr().out


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="trials must be an int >= 2"):
        sg.Auto(trials=1)
    with pytest.raises(ValueError, match="cost must be"):
        sg.Auto(cost="money")
    with pytest.raises(ValueError, match="would be ignored"):
        sg.expectation(lambda x: x, normal(), 4, estimator="auto", sampler="antithetic")
    with pytest.raises(ValueError, match="has not chosen yet"):
        sg.diagnostics.auto_table(sg.Auto())
