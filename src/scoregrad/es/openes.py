"""OpenAI-ES: isotropic Gaussian search with a fixed sigma and any torch optimiser.

Salimans, Ho, Chen, Sidor & Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning": ``grad = 1/(P sigma) sum_i F_i z_i`` with centred-rank fitness ``F``,
antithetic pairs, weight decay and Adam.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from scoregrad.es.base import OptimizerFactory, Strategy
from scoregrad.es.gradient import weighted_scores
from scoregrad.es.noise import NoiseTable

__all__ = ["OpenES"]


class OpenES(Strategy):
    """OpenAI-ES over ``N(mean, sigma^2 I)``; ``tell`` sets ``mean.grad``, Adam steps by default.

    With ``shaping=None`` (and ``weight_decay=0``) ``mean.grad`` is an unbiased estimate of
    ``grad_mean E_{x ~ N(mean, sigma^2 I)}[f(x)]``; with ``"centered_rank"`` (the default, as in
    the paper) it is that of a rank transform of ``f``. ``weight_decay`` adds ``weight_decay * mean``
    (L2 regularisation of the centre, as in the paper). Other arguments: see :class:`Strategy`.
    """

    name = "openes"
    mirrored_update = True
    default_lr = 0.01

    def __init__(
        self,
        x0: Tensor | nn.Module,
        sigma: float = 0.1,
        popsize: int | None = 50,
        antithetic: bool = True,
        shaping: str | None = "centered_rank",
        seed: int = 0,
        *,
        optimizer: OptimizerFactory | None = None,
        lr: float | None = None,
        weight_decay: float = 0.0,
        on_non_finite: str = "raise",
        noise: str | NoiseTable = "generator",
    ):
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.sigma = float(sigma)
        self.weight_decay = float(weight_decay)
        super().__init__(
            x0, sigma=sigma, popsize=popsize, antithetic=antithetic, shaping=shaping, seed=seed,
            optimizer=optimizer, lr=lr, on_non_finite=on_non_finite, noise=noise,
        )  # fmt: skip

    def default_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """Adam, as in the paper."""
        return torch.optim.Adam(params, lr=self.lr)

    def _perturb(self, z: Tensor) -> Tensor:
        return self.sigma * z

    def _update(self, weights: Tensor, z: Tensor) -> tuple[Tensor, Callable[[], Tensor]]:
        g_mean, _ = weighted_scores(weights, z, shape=False)
        return self._set_grad(weights, g_mean, lambda: z)

    def _update_mirrored(
        self, weights: Tensor, weighted_sum: Callable[[Tensor], Tensor], half: Callable[[], Tensor]
    ) -> tuple[Tensor, Callable[[], Tensor]]:
        h = weights.shape[0] // 2  # sum_i w_i z_i over z = [half, -half], from the first half alone
        return self._set_grad(
            weights, weighted_sum(weights[:h] - weights[h:]), lambda: torch.cat([half(), -half()])
        )

    def _set_grad(
        self, weights: Tensor, g_mean: Tensor, z: Callable[[], Tensor]
    ) -> tuple[Tensor, Callable[[], Tensor]]:
        grad = g_mean / self.sigma
        if self.weight_decay:
            grad = grad + self.weight_decay * self.mean.detach()
        self.mean.grad = grad
        sigma = self.sigma
        return weights, lambda: z() / sigma  # directions, built only if gradient_stats() asks

    @property
    def scale(self) -> float:
        return self.sigma

    def _extra_state(self):
        return {"sigma": self.sigma}

    def _load_extra_state(self, state) -> None:
        self.sigma = float(state["sigma"])
