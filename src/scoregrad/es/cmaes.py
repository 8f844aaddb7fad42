"""CMA-ES through pycma (Hansen), behind the same ask/tell protocol.

Not a rewrite: pycma's ``CMAEvolutionStrategy`` does the work (Hansen & Ostermeier, 2001; Hansen,
2016, "The CMA Evolution Strategy: A Tutorial"). The adapter converts between tensors and numpy
and keeps ``es.mean`` and ``es.optimizer`` meaningful: ``tell`` sets ``mean.grad = mean - m_cma``
and the optimiser is SGD with ``lr=1``, so ``optimizer.step()`` lands on CMA's new mean (and
writes it into ``es.module``). pycma is an optional dependency: ``pip install scoregrad[es]``.

pycma draws its own noise, so candidates are not seed-addressed, and the fitness shaping is CMA's
own recombination weights. Each adapter gets its own numpy generator (pycma's ``randn`` option;
pycma otherwise draws from numpy's global generator, so two instances would disturb each other),
and pycma's ``seed`` option is ``seed + 1`` because pycma reads 0 as "from the clock".
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scoregrad.es.base import Strategy

__all__ = ["CMAES"]


class _Randn:
    """A picklable ``randn(*shape)`` on a private numpy generator (pycma's ``randn`` option)."""

    def __init__(self, seed: int):
        self.generator = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.generator.standard_normal(shape)


class CMAES(Strategy):
    """pycma's CMA-ES as a :class:`Strategy`.

    Args:
        x0, sigma, popsize (``None``: pycma's ``4 + floor(3 ln D)``), seed, on_non_finite: see :class:`Strategy`.
        antithetic: pycma's mirrored sampling (``CMA_mirrors``), off by default.
        separable: diagonal covariance (sep-CMA-ES; Ros & Hansen, 2008), for large ``D``.
        options: more pycma options (``cma.CMAOptions()``).
    """

    name = "cmaes"

    def __init__(
        self,
        x0: Tensor | nn.Module,
        sigma: float = 0.5,
        popsize: int | None = None,
        antithetic: bool = False,
        shaping: str | None = None,
        seed: int = 0,
        *,
        separable: bool = False,
        on_non_finite: str = "raise",
        options: dict[str, Any] | None = None,
    ):
        try:
            import cma
        except ImportError as error:  # pragma: no cover - exercised only without the extra
            raise ImportError(
                "CMAES needs pycma: pip install 'scoregrad[es]' (or pip install cma)"
            ) from error
        if shaping is not None:
            raise ValueError(
                f"shaping: CMA-ES uses its own recombination weights; pass shaping=None, got {shaping!r}"
            )
        super().__init__(
            x0, sigma=sigma, popsize=popsize or 4, antithetic=antithetic, shaping=None, seed=seed,
            optimizer=None, lr=None, on_non_finite=on_non_finite,
        )  # fmt: skip
        opts: dict[str, Any] = {
            "seed": self.seed + 1,
            "randn": _Randn(self.seed),
            "verbose": -9,
            "CMA_diagonal": bool(separable),
        }
        if popsize is not None:
            opts["popsize"] = self.popsize
        if antithetic:
            opts["CMA_mirrors"] = self.popsize // 2
        opts.update(options or {})
        self.separable = bool(separable)
        self.cma = cma.CMAEvolutionStrategy(self.mean.detach().double().cpu().numpy(), float(sigma), opts)
        self.popsize = int(self.cma.popsize)
        self._solutions: list[np.ndarray] | None = None

    def ask(self, rows: slice | None = None) -> Tensor:
        """pycma's candidates ``(popsize, D)``, or rows ``rows`` of them (pycma draws them all)."""
        if self._solutions is None:  # asking again repeats them, as for the other strategies
            self._solutions = self.cma.ask()
        X = torch.as_tensor(np.asarray(self._solutions), dtype=self.mean.dtype, device=self.mean.device)
        return X if rows is None else X[rows]

    def tell(self, losses) -> None:
        if self._solutions is None:
            raise RuntimeError("tell() needs the candidates of an ask() first")
        losses = self._check_losses(losses)
        self.cma.tell(self._solutions, losses.double().cpu().numpy().tolist())
        new_mean = torch.as_tensor(self.cma.mean, dtype=self.mean.dtype, device=self.mean.device)
        self.mean.grad = self.mean.detach() - new_mean
        self._solutions = None
        self.generation += 1

    def candidate_noise(self, index: int, generation: int | None = None) -> Tensor:
        raise NotImplementedError("CMAES: pycma draws its own noise; candidates are not seed-addressed")

    def gradient_stats(self):
        raise NotImplementedError("CMAES: pycma's update is not a score-function gradient estimate")

    @property
    def scale(self) -> float:
        """pycma's overall step size ``sigma`` (the covariance carries the rest)."""
        return float(self.cma.sigma)

    def _extra_state(self):
        return {"cma": pickle.dumps(self.cma)}

    def _load_extra_state(self, state) -> None:
        self.cma = pickle.loads(state["cma"])  # noqa: S301 - the user's own checkpoint
        self._solutions = None
