"""SNES: separable natural evolution strategy, one adapted standard deviation per coordinate.

Schaul, Glasmachers & Schmidhuber (2011), "High Dimensions and Heavy Tails for Natural Evolution
Strategies". Search distribution ``N(mean, diag(sigma^2))``; natural-gradient updates
``mean += eta_mean * sigma * sum_i u_i z_i`` and ``sigma *= exp(eta_sigma / 2 * sum_i u_i (z_i^2 - 1))``
with NES utilities ``u``. Linear cost in ``D``: the strategy for large ``D``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scoregrad.es.base import OptimizerFactory, Strategy
from scoregrad.es.gradient import weighted_scores

__all__ = ["SNES"]


class SNES(Strategy):
    """Separable NES. ``tell`` sets ``mean.grad`` to the natural gradient ``sigma^2 * grad_mean``
    (estimated; unbiased with ``shaping=None``) and adapts ``sigma`` (a ``(D,)`` tensor) itself;
    the default optimiser is SGD with ``lr`` = the NES mean learning rate (1).

    Args:
        lr_sigma: learning rate of ``log sigma``; default ``(3 + ln D) / (5 sqrt D)`` (Schaul et al., 2011).
        Others: see :class:`Strategy`.
    """

    name = "snes"
    default_lr = 1.0

    def __init__(
        self,
        x0: Tensor | nn.Module,
        sigma: float = 0.5,
        popsize: int | None = None,
        antithetic: bool = False,
        shaping: str | None = "nes",
        seed: int = 0,
        *,
        optimizer: OptimizerFactory | None = None,
        lr: float | None = None,
        lr_sigma: float | None = None,
        on_non_finite: str = "raise",
    ):
        super().__init__(
            x0, sigma=sigma, popsize=popsize, antithetic=antithetic, shaping=shaping, seed=seed,
            optimizer=optimizer, lr=lr, on_non_finite=on_non_finite,
        )  # fmt: skip
        self.sigma = torch.full_like(self.mean.detach(), float(sigma))
        self.lr_sigma = (
            (3 + math.log(self.dim)) / (5 * math.sqrt(self.dim)) if lr_sigma is None else float(lr_sigma)
        )
        if not self.lr_sigma > 0:
            raise ValueError(f"lr_sigma must be > 0, got {lr_sigma}")

    def _perturb(self, z: Tensor) -> Tensor:
        return self.sigma * z

    def _update(self, weights: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        g_mean, g_log_sigma = weighted_scores(weights, z)
        self.mean.grad = self.sigma * g_mean
        directions = self.sigma * z
        self.sigma = self.sigma * torch.exp(-0.5 * self.lr_sigma * g_log_sigma)
        return weights, directions

    @property
    def scale(self) -> float:
        return float(self.sigma.log().mean().exp())

    def _extra_state(self):
        return {"sigma": self.sigma.clone(), "lr_sigma": self.lr_sigma}

    def _load_extra_state(self, state) -> None:
        self.sigma = state["sigma"].to(self.mean)
        self.lr_sigma = float(state["lr_sigma"])
