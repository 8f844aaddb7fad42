"""Learned variance reduction inside graphs: RELAX's control and NVIL's baseline are trained by backward()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent

import scoregrad as sg
from scoregrad.baselines import Learned

TARGET = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])


def logits_gradients(logits, estimator, repeats=300):
    draws = []
    for _ in range(repeats):
        with sg.graph() as g:
            z = g.sample("z", Independent(Bernoulli(logits=logits), 1), estimator=estimator)
            g.cost("distance", ((z - TARGET) ** 2).sum(-1) * 3.0)
        (grad,) = torch.autograd.grad(g.surrogate(), logits)
        draws.append(grad)
    return torch.stack(draws)


def test_relax_control_is_trained_to_reduce_gradient_variance():
    torch.manual_seed(3)
    logits = torch.linspace(-1, 1, 8).requires_grad_(True)
    control = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    relax = sg.RELAX(control)
    relax_parameters = list(relax.parameters())
    before = logits_gradients(logits, relax).var(0).sum()
    optimizer = torch.optim.Adam(relax_parameters, lr=1e-2)
    for _ in range(400):
        with sg.graph() as g:
            z = g.sample("z", Independent(Bernoulli(logits=logits), 1), estimator=relax)
            g.cost("distance", ((z - TARGET) ** 2).sum(-1) * 3.0)
        optimizer.zero_grad()
        g.surrogate().backward()  # the variance loss reaches the control through the same backward
        optimizer.step()
    after = logits_gradients(logits, relax).var(0).sum()
    assert after < 0.5 * before, (before, after)


def test_learned_baseline_is_fitted_by_backward():
    torch.manual_seed(0)
    logits = torch.zeros(16, 8, requires_grad=True)
    critic = nn.Linear(8, 1)
    context = torch.randn(16, 8)
    optimizer = torch.optim.SGD(critic.parameters(), lr=0.02)
    errors = []
    for _ in range(150):
        with sg.graph() as g:
            z = g.sample(
                "z", Independent(Bernoulli(logits=logits), 1), baseline=Learned(critic), context=context
            )
            cost = ((z - TARGET) ** 2).sum(-1) + 5 * context[:, 0]
            g.cost("distance", cost)
        optimizer.zero_grad()
        g.surrogate().backward()
        optimizer.step()
        errors.append(((critic(context).squeeze(-1) - (4 + 5 * context[:, 0])) ** 2).mean().item())
    assert errors[-1] < 0.1 * errors[0], (errors[0], errors[-1])


def test_discrete_vae_example_runs():
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "discrete_vae.py"), "--steps", "200"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root / "src"), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    bounds = [float(line.split()[1]) for line in result.stdout.splitlines()[1:]]
    assert bounds[-1] > bounds[0]  # it learns
