"""The pycma adapter follows the same protocol (skipped without the optional dependency)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scoregrad as sg

pytest.importorskip("cma")

COND = 1e6 ** (torch.arange(20, dtype=torch.float64) / 19)


@pytest.mark.parametrize(("function", "budget"), [("sphere", 4_000), ("ellipsoid", 20_000)])
def test_cmaes_reaches_1e_8_at_d20(function, budget):
    f = {"sphere": lambda X: (X**2).sum(-1), "ellipsoid": lambda X: (COND * X**2).sum(-1)}[function]
    res = sg.es.minimize(
        f, torch.ones(20, dtype=torch.float64), method="cmaes", budget=budget, seed=0, target=1e-8
    )
    assert res.reached_target, res.fun
    assert res.x.dtype == torch.float64


def test_optimizer_step_lands_on_cmas_mean_and_writes_the_module():
    net = nn.Linear(3, 1).double()
    es = sg.es.CMAES(net, sigma=0.3, seed=0)
    X = es.ask()
    assert X.shape == (es.popsize, 4) and X.dtype == torch.float64
    es.tell((X**2).sum(-1))
    es.optimizer.step()
    torch.testing.assert_close(es.mean.detach(), torch.as_tensor(es.cma.mean))
    torch.testing.assert_close(sg.es.flat_parameters(net), es.mean.detach())


def test_seeded_runs_repeat_and_state_round_trips():
    def run(es, n):
        for _ in range(n):
            es.tell((es.ask() ** 2).sum(-1))
            es.optimizer.step()

    a, b = sg.es.CMAES(torch.ones(5), seed=3), sg.es.CMAES(torch.ones(5), seed=3)
    run(a, 4)
    run(b, 4)
    torch.testing.assert_close(a.mean, b.mean)
    state = a.state_dict()
    run(a, 3)
    c = sg.es.CMAES(torch.zeros(5), seed=9)
    c.load_state_dict(state)
    run(c, 3)
    torch.testing.assert_close(a.mean, c.mean)


def test_separable_and_antithetic_options_reach_pycma():
    es = sg.es.CMAES(torch.ones(6), popsize=8, antithetic=True, separable=True, seed=0)
    assert es.cma.opts["CMA_diagonal"] is True and es.cma.opts["CMA_mirrors"] == 4


def test_cmaes_refuses_shaping_and_nonfinite():
    with pytest.raises(ValueError, match="shaping"):
        sg.es.CMAES(torch.ones(3), shaping="nes")
    es = sg.es.CMAES(torch.ones(3), seed=0)
    losses = (es.ask() ** 2).sum(-1)
    losses[1] = float("nan")
    with pytest.raises(ValueError, match=r"candidate index \[1\]"):
        es.tell(losses)
