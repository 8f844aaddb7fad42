"""Searching over an nn.Module: the centre is written back, populations run in one vmapped call."""

from __future__ import annotations

import torch
from torch import nn

import scoregrad as sg


def test_optimizer_step_writes_the_centre_into_the_module():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    es = sg.es.OpenES(net, sigma=0.1, popsize=8, seed=0)
    assert es.module is net and es.mean.dtype == torch.float64
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    for _ in range(3):
        X = es.ask()
        losses = ((sg.es.population_call(net, X, x) - y) ** 2).mean((1, 2))
        es.tell(losses)
        es.optimizer.step()
    torch.testing.assert_close(sg.es.flat_parameters(net), es.mean.detach(), rtol=0, atol=0)


def test_module_search_lowers_a_regression_loss():
    torch.manual_seed(0)
    net = nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.3
    es = sg.es.SNES(net, sigma=0.5, popsize=16, seed=0)

    def loss():
        with torch.no_grad():
            return float(((net(x) - y) ** 2).mean())

    before = loss()
    for _ in range(150):
        es.tell(((sg.es.population_call(net, es.ask(), x) - y) ** 2).mean((1, 2)))
        es.optimizer.step()
    assert loss() < 1e-3 * before


def test_population_call_vmap_matches_the_loop():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    X = sg.es.OpenES(net, popsize=6).ask()
    inputs = torch.randn(10, 3)
    fast = sg.es.population_call(net, X, inputs)
    slow = sg.es.population_call(net, X, inputs, vectorize=False)
    assert fast.shape == (6, 10, 2)
    torch.testing.assert_close(fast, slow)


def test_population_call_falls_back_to_a_loop_where_vmap_cannot_apply():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * self.w if float(self.w.sum()) > 0 else -x  # .item()-like: breaks vmap

    net = DataDependent()
    X = torch.tensor([[1.0, 2.0], [-5.0, 1.0]])
    out = sg.es.population_call(net, X, torch.ones(2))
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0], [-1.0, -1.0]]))


def test_state_dict_load_writes_the_module():
    net = nn.Linear(2, 1)
    es = sg.es.SNES(net, popsize=6, seed=0)
    state = es.state_dict()
    state["mean"] = torch.arange(3.0)
    es.load_state_dict(state)
    torch.testing.assert_close(sg.es.flat_parameters(net), torch.arange(3.0))


def test_population_call_per_candidate_inputs():
    net = nn.Linear(3, 2)
    X = sg.es.OpenES(net, popsize=4).ask()
    inputs = torch.randn(4, 5, 3)
    out = sg.es.population_call(net, X, inputs, per_candidate=True)
    for i in range(4):
        w, b = X[i, :6].reshape(2, 3), X[i, 6:]
        torch.testing.assert_close(out[i], inputs[i] @ w.T + b)
