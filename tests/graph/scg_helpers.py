"""Shared by the graph tests: per-replicate derivative draws and exact derivatives."""

from __future__ import annotations

import torch

R = 3000


def gradient_and_hessian_draws(surrogate_fn, theta, second_order=True, replicates=R):
    """Independent replicates in a batch dimension, each with its own parameter row.

    ``surrogate_fn(rows)`` builds one graph whose batch element ``r`` uses only ``rows[r]``, so the
    gradient's row ``r`` is replicate ``r``'s estimate, and one more backward pass per coordinate
    gives every replicate's Hessian row. Returns ``(surrogate, gradients (R, d), Hessians (R, d, d))``.
    """
    rows = theta.detach().repeat(replicates, 1).requires_grad_(True)
    surrogate = surrogate_fn(rows)
    (grad,) = torch.autograd.grad(surrogate, rows, create_graph=second_order)
    if not second_order:
        return surrogate, grad.detach(), None
    hessian = torch.stack(
        [torch.autograd.grad(grad[:, i].sum(), rows, retain_graph=True)[0] for i in range(theta.shape[0])], 1
    )
    return surrogate, grad.detach(), hessian


def exact_derivatives(objective, theta):
    """Value, gradient and Hessian of an exactly enumerated objective."""
    theta = theta.clone().requires_grad_(True)
    value = objective(theta)
    (grad,) = torch.autograd.grad(value, theta, create_graph=True)
    hessian = torch.stack(
        [torch.autograd.grad(grad[i], theta, retain_graph=True)[0] for i in range(len(theta))]
    )
    return value.detach(), grad.detach(), hessian.detach()
