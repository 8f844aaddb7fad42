"""SNES: separable natural evolution strategy, one adapted standard deviation per coordinate.

Schaul, Glasmachers & Schmidhuber (2011), "High Dimensions and Heavy Tails for Natural Evolution
Strategies". Search distribution ``N(mean, diag(sigma^2))``; natural-gradient updates
``mean += eta_mean * sigma * sum_i u_i z_i`` and ``sigma *= exp(eta_sigma / 2 * sum_i u_i (z_i^2 - 1))``
with NES utilities ``u`` (by default the overall scale of sigma follows two-point step-size
adaptation instead, as in pycma's separable CMA-ES; see ``sigma_adaptation``). Linear cost in ``D``: the strategy for large ``D``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from scoregrad.es.base import OptimizerFactory, Strategy
from scoregrad.es.gradient import weighted_scores
from scoregrad.es.noise import NoiseTable
from scoregrad.es.stepsize import CumulativeStepSize, TwoPointStepSize

__all__ = ["SNES"]

TPA_MIN_POPSIZE = 4  # the line pair and at least two random candidates


class SNES(Strategy):
    """Separable NES. ``tell`` sets ``mean.grad`` to the natural gradient ``sigma^2 * grad_mean``
    (estimated; unbiased with ``shaping=None`` and ``sigma_adaptation="csa"`` or ``"natural"``:
    TPA's line pair is not a random draw, so it adds a term along the last mean shift) and adapts ``sigma`` (a ``(D,)`` tensor) itself;
    the default optimiser is SGD with ``lr`` = the NES mean learning rate (1).

    Args:
        lr_sigma: learning rate of ``log sigma``; default ``(3 + ln D) / (5 sqrt D)`` (Schaul et al., 2011).
        sigma_adaptation: ``None`` (default): ``"tpa"`` for ``popsize >= 4``, else ``"csa"``.
            ``"tpa"``: the natural gradient adapts only the *shape* of sigma (its trace-free part)
            and two-point step-size adaptation the overall scale (:mod:`scoregrad.es.stepsize`; candidates ``0`` and ``1``, or ``0`` and ``popsize // 2``
            with antithetic pairs, then lie on the line of the last mean shift, so their noise is
            not seed-addressed); ``"csa"``: the same shape update, CMA-ES's cumulative step-size
            adaptation for the scale; ``"natural"``: the paper's update of every coordinate.
            Median evaluations to 1e-8 (5 seeds at D = 10, 2 at D = 100 and 1000; sphere /
            ellipsoid): D = 10 tpa 1.1k / 1.85k, csa 1.7k / 2.4k (CMA-ES 1.2k / 3.9k); D = 100 tpa
            6.5k / 17k, csa 10.5k / 18.5k, natural 24k / 33k (separable CMA-ES 10k / 27k); D = 1000
            tpa 75k / 308k (1.1e-7 at 300k), csa 99k / 233k (separable CMA-ES 59k / not within 300k). TPA is
            faster everywhere but on the 1000-D ellipsoid, where CSA is.
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
        sigma_adaptation: str | None = None,
        on_non_finite: str = "raise",
        noise: str | NoiseTable = "generator",
    ):
        super().__init__(
            x0, sigma=sigma, popsize=popsize, antithetic=antithetic, shaping=shaping, seed=seed,
            optimizer=optimizer, lr=lr, on_non_finite=on_non_finite, noise=noise,
        )  # fmt: skip
        self.sigma = torch.full_like(self.mean.detach(), float(sigma))
        self.lr_sigma = (
            (3 + math.log(self.dim)) / (5 * math.sqrt(self.dim)) if lr_sigma is None else float(lr_sigma)
        )
        if not self.lr_sigma > 0:
            raise ValueError(f"lr_sigma must be > 0, got {lr_sigma}")
        if sigma_adaptation is None:  # TPA needs random candidates beside its line pair
            sigma_adaptation = "tpa" if self.popsize >= TPA_MIN_POPSIZE else "csa"
        if sigma_adaptation not in ("natural", "csa", "tpa"):
            raise ValueError(
                f"sigma_adaptation must be 'natural', 'csa', 'tpa' or None, got {sigma_adaptation!r}"
            )
        if sigma_adaptation == "tpa" and self.popsize < TPA_MIN_POPSIZE:
            raise ValueError(
                f"sigma_adaptation='tpa' needs popsize >= {TPA_MIN_POPSIZE} (two candidates go to the "
                f"line of the last mean shift), got {self.popsize}; use 'csa'"
            )
        self.sigma_adaptation = sigma_adaptation
        self.csa = CumulativeStepSize(self.dim, self.popsize, self.mean.dtype, self.mean.device)
        self.tpa = TwoPointStepSize(self.dim, self.popsize)
        self._told_mean: Tensor | None = None  # the centre when the last tell() came (TPA's line)
        self._line_rows: tuple[int, int] | None = None

    def _line_indices(self) -> tuple[int, int]:
        return (0, self.popsize // 2 if self.antithetic else 1)

    def _line(self, z_first: Tensor) -> Tensor | None:
        """TPA's line direction in standardised coordinates: the last mean shift, scaled to the
        length of ``z_first`` (a chi-distributed length, so the pair looks like samples)."""
        if self.sigma_adaptation != "tpa" or self._told_mean is None:
            return None
        y = (self.mean.detach() - self._told_mean) / self.sigma
        norm = float(y.norm())
        if norm == 0 or not math.isfinite(norm):
            return None
        return y.mul_(float(z_first.norm()) / norm)

    def _noise(self, rows: slice) -> Tensor:
        z = super()._noise(rows)
        index = range(self.popsize)[rows]
        first_noise = z[0] if len(index) and index[0] == 0 else super()._noise(slice(0, 1))[0]
        line = self._line(first_noise)
        self._line_rows = None if line is None else self._line_indices()
        if self._line_rows is not None:
            for row, sign in zip(self._line_rows, (1.0, -1.0), strict=True):
                if row in index:
                    z[row - index.start] = sign * line
        return z

    def candidate_noise(self, index: int, generation: int | None = None) -> Tensor:
        if (
            self.sigma_adaptation == "tpa"
            and index in self._line_indices()
            and generation is not None
            and generation != self.generation
        ):
            raise ValueError(
                f"candidate {index}'s noise under sigma_adaptation='tpa' follows the last mean shift, "
                "not the seed; only the current generation's is known"
            )
        return super().candidate_noise(index, generation)

    def _perturb(self, z: Tensor) -> Tensor:
        return self.sigma * z

    def _update(self, weights: Tensor, z: Tensor) -> tuple[Tensor, Callable[[], Tensor]]:
        g_mean, g_log_sigma = weighted_scores(weights, z)
        self.mean.grad = self.sigma * g_mean
        sigma = self.sigma  # before the update below; directions are built only if gradient_stats() asks
        directions = lambda: sigma * z  # noqa: E731
        self._told_mean = self.mean.detach().clone()
        if self.sigma_adaptation == "natural":
            self.sigma = self.sigma * torch.exp(-0.5 * self.lr_sigma * g_log_sigma)
            return weights, directions
        # CSA or TPA sets the overall scale, the natural gradient only the shape (trace-free part)
        shape = torch.exp(-0.5 * self.lr_sigma * (g_log_sigma - g_log_sigma.mean()))
        if self.sigma_adaptation == "csa":
            scale = self.csa.factor(-g_mean, weights)
        elif self._line_rows is not None:
            assert self._losses is not None
            scale = self.tpa.factor(self._losses, *self._line_rows)
        else:
            scale = 1.0  # the first generation has no mean shift yet
        self.sigma = self.sigma * shape * scale
        return weights, directions

    @property
    def scale(self) -> float:
        return float(self.sigma.log().mean().exp())

    def _extra_state(self):
        told = self._told_mean
        return {
            "sigma": self.sigma.clone(),
            "lr_sigma": self.lr_sigma,
            "path": self.csa.path.clone(),
            "tpa_state": self.tpa.state,
            "told_mean": self.mean.detach().clone() if told is None else told.clone(),
            "has_told_mean": told is not None,
        }

    def _load_extra_state(self, state) -> None:
        self.sigma = state["sigma"].to(self.mean)
        self.lr_sigma = float(state["lr_sigma"])
        self.csa.path = state["path"].to(self.mean)
        self.tpa.state = float(state.get("tpa_state", 0.0))
        told = state.get("told_mean")
        self._told_mean = told.to(self.mean) if told is not None and state.get("has_told_mean") else None
