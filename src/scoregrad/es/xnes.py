"""xNES: exponential natural evolution strategy with a full covariance matrix.

Glasmachers, Schaul, Sun, Wierstra & Schmidhuber (2010), "Exponential Natural Evolution
Strategies"; Wierstra et al. (2014), Algorithm 5. Search distribution ``N(mean, sigma^2 B B^T)``
with ``det B = 1``; natural-gradient updates in local coordinates:
``mean += eta_mean * sigma B G_delta``, ``sigma *= exp(eta_sigma / 2 * G_sigma)``,
``B <- B expm(eta_B / 2 * G_B)``; by default sigma follows CMA-ES's cumulative step-size
adaptation instead (see ``sigma_adaptation``), and B also gets CMA-ES's rank-one update along the
evolution path (``rank_one``). Invariant to rotations of the search space (it learns rotated
ellipsoids and Rosenbrock's valley); costs ``O(D^3)`` per generation, so for ``D`` up to a few hundred.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from scoregrad.es.base import OptimizerFactory, Strategy
from scoregrad.es.gradient import weighted_scores
from scoregrad.es.noise import NoiseTable
from scoregrad.es.stepsize import CumulativeStepSize

__all__ = ["XNES"]


class XNES(Strategy):
    """Exponential NES (full covariance). ``tell`` sets ``mean.grad`` to ``sigma B G_delta`` (the
    natural gradient; SGD with ``lr`` = 1 is the paper's update) and adapts ``sigma`` and ``B``.

    Args:
        lr_sigma, lr_shape: learning rates of ``sigma`` (with ``sigma_adaptation="natural"``) and
            ``B``; default ``(9 + 3 ln D) / (5 D sqrt D)`` for both (Wierstra et al., 2014, Table 1).
        sigma_adaptation: ``"csa"`` (default) controls sigma by CMA-ES's cumulative step-size
            adaptation on the z-space mean steps instead of xNES's natural gradient
            (``"natural"``, the paper's). Measured at D = 10 (median of 3 seeds, evaluations to
            1e-8): natural 5.9k / 8.5k / 8.7k / 8.9k on sphere / ellipsoid / rotated ellipsoid /
            Rosenbrock, csa 1.7k / 4.6k / 5.0k / 6.9k, pycma's CMA-ES 1.3k / 3.8k / 3.8k / 4.7k.
            The natural sigma gradient's learning rate must stay small for B's sake, so sigma lags.
        rank_one: add CMA-ES's rank-one update along the evolution path to B's natural gradient
            (default; needs ``sigma_adaptation="csa"``). It learns long valleys faster: at D = 10
            (median of 5 seeds, evaluations to 1e-8) Rosenbrock 7.6k -> 6.1k, rotated ellipsoid
            4.6k -> 4.1k.
        Others: see :class:`Strategy`.
    """

    name = "xnes"
    rowwise = False  # z @ A.T: BLAS gives a row other bits in a product of another shape
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
        lr_shape: float | None = None,
        sigma_adaptation: str = "csa",
        rank_one: bool = True,
        on_non_finite: str = "raise",
        noise: str | NoiseTable = "generator",
    ):
        super().__init__(
            x0, sigma=sigma, popsize=popsize, antithetic=antithetic, shaping=shaping, seed=seed,
            optimizer=optimizer, lr=lr, on_non_finite=on_non_finite, noise=noise,
        )  # fmt: skip
        D = self.dim
        default = (9 + 3 * math.log(D)) / (5 * D * math.sqrt(D))
        self.lr_sigma = default if lr_sigma is None else float(lr_sigma)
        self.lr_shape = default if lr_shape is None else float(lr_shape)
        for name, value in (("lr_sigma", self.lr_sigma), ("lr_shape", self.lr_shape)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if sigma_adaptation not in ("natural", "csa"):
            raise ValueError(f"sigma_adaptation must be 'natural' or 'csa', got {sigma_adaptation!r}")
        self.sigma_adaptation = sigma_adaptation
        self.sigma = float(sigma)
        self.B = torch.eye(D, dtype=self.mean.dtype, device=self.mean.device)
        self.csa = CumulativeStepSize(D, self.popsize, self.mean.dtype, self.mean.device)
        if rank_one and sigma_adaptation != "csa":
            raise ValueError("rank_one uses the step-size path: it needs sigma_adaptation='csa'")
        # CMA-ES's rank-one learning rate c1 (Hansen, 2016, eq. 57).
        self.rank_one = 2 / ((D + 1.3) ** 2 + self.csa.mu_eff) if rank_one else 0.0

    def _perturb(self, z: Tensor) -> Tensor:
        return self.sigma * z @ self.B.T

    def _update(self, weights: Tensor, z: Tensor) -> tuple[Tensor, Callable[[], Tensor]]:
        g_delta, g_M = weighted_scores(weights, z, full=True)
        sigma, B = self.sigma, self.B  # before the update below; directions only if gradient_stats() asks
        directions = lambda: sigma * z @ B.T  # noqa: E731
        self.mean.grad = self.sigma * (self.B @ g_delta)
        g_sigma = torch.diagonal(g_M).sum() / self.dim
        g_B = g_M - g_sigma * torch.eye(self.dim, dtype=z.dtype, device=z.device)
        # Losses orient the weights (higher = worse), hence the minus signs of a descent.
        if self.sigma_adaptation == "natural":
            self.sigma *= math.exp(-0.5 * self.lr_sigma * float(g_sigma))
        else:
            self.sigma *= self.csa.factor(-g_delta, weights)
        exponent = -0.5 * self.lr_shape * g_B
        if self.rank_one:
            # CMA's rank-one update C <- (1 - c1) C + c1 p p^T in xNES's local coordinates: the
            # trace-free part of c1 (p p^T - I), p the evolution path of the z-space mean steps
            # (kept in the coordinates of the current B; B changes slowly, so this approximates
            # CMA's path in x-space).
            outer = torch.outer(self.csa.path, self.csa.path)
            eye = torch.eye(self.dim, dtype=z.dtype, device=z.device)
            exponent = exponent + 0.5 * self.rank_one * (outer - torch.diagonal(outer).mean() * eye)
        self.B = self.B @ torch.linalg.matrix_exp(exponent)
        return weights, directions

    @property
    def scale(self) -> float:
        return self.sigma

    def _extra_state(self):
        return {
            "sigma": self.sigma,
            "B": self.B.clone(),
            "path": self.csa.path.clone(),
            "lr_sigma": self.lr_sigma,
            "lr_shape": self.lr_shape,
        }

    def _load_extra_state(self, state) -> None:
        self.sigma = float(state["sigma"])
        self.B = state["B"].to(self.mean)
        self.csa.path = state["path"].to(self.mean)
        self.lr_sigma, self.lr_shape = float(state["lr_sigma"]), float(state["lr_shape"])
