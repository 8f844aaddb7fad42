"""Fit the mean of a Normal to maximise a non-differentiable reward: P(x > 2).

The reward is a threshold, so there is no pathwise gradient; the score-function estimator with a
leave-one-out baseline still gives an unbiased one. Run: python examples/quickstart.py
"""

import torch
from torch.distributions import Normal

import scoregrad as sg

torch.manual_seed(0)
mu = torch.zeros(1, requires_grad=True)
optimizer = torch.optim.Adam([mu], lr=0.05)

for step in range(301):
    optimizer.zero_grad()
    # Maximise the reward = minimise its negative.
    success_rate = sg.expectation(
        lambda x: (x > 2.0).float(),
        Normal(mu, 1.0),
        num_samples=32,
        estimator="score_function",
        baseline="leave_one_out",
    )
    (-success_rate.sum()).backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step:4d}  mu = {mu.item():6.3f}  estimated P(x > 2) = {success_rate.item():.3f}")
