"""The ask/tell protocol that every search strategy implements.

A strategy holds a search distribution ``N(mean, C)`` over ``D`` parameters. ``ask()`` returns the
generation's candidates ``(P, D)``; ``tell(losses)`` takes their losses ``(P,)`` (to minimise),
sets ``mean.grad`` and adapts the spread of the distribution; ``optimizer.step()`` (a
``torch.optim`` optimiser over ``[mean]``) moves the centre. A new strategy overrides three
methods: ``_perturb(z)`` (candidates from standard-normal noise), ``_update(weights, z)`` (set
``mean.grad`` and adapt the spread) and ``scale`` (a typical standard deviation), plus
``_extra_state`` for what ``state_dict`` must carry.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scoregrad.diagnostics import GradientStats
from scoregrad.es.module import flat_parameters, write_parameters
from scoregrad.es.noise import NoiseTable, generation_seed, noise_block, noise_table
from scoregrad.es.shaping import SHAPINGS, shape

__all__ = ["Strategy", "OptimizerFactory", "default_popsize"]

#: ``optimizer=``: a callable that builds a ``torch.optim.Optimizer`` from ``[mean]``.
OptimizerFactory = Callable[[list[Tensor]], torch.optim.Optimizer]


def default_popsize(dim: int) -> int:
    """``4 + floor(3 ln D)`` (Hansen, 2016, "The CMA Evolution Strategy: A Tutorial")."""
    return 4 + int(3 * math.log(max(dim, 1)))


class Strategy:
    """Base class of the search strategies (see the module docstring).

    Args:
        x0: the initial centre, a 1-D floating tensor ``(D,)``, or an ``nn.Module`` whose parameters
            (flattened in ``named_parameters()`` order) are searched; ``es.module`` is then updated
            in place on every ``optimizer.step()``. Computations keep x0's dtype and device.
        sigma: initial standard deviation of the search distribution, > 0.
        popsize: candidates per generation ``P``; even with ``antithetic=True``.
        antithetic: mirrored sampling, candidates ``m + sigma z`` and ``m - sigma z``.
        shaping: ``None``, ``"centered_rank"`` or ``"nes"`` (see :mod:`scoregrad.es.shaping`).
        seed: master seed of the seed-addressed noise (see :mod:`scoregrad.es.noise`).
        optimizer: a callable ``params -> torch.optim.Optimizer``; ``None`` gives the strategy's default.
        lr: learning rate of the default optimiser.
        on_non_finite: ``"raise"`` (a ValueError naming the candidate) or ``"worst"`` (a NaN or
            infinite loss counts as worse than every finite one).
        noise: where the standard-normal noise comes from (:mod:`scoregrad.es.noise`):
            ``"generator"`` (default; one ``randn`` block per generation) or ``"table"`` (windows of a
            shared :class:`~scoregrad.es.noise.NoiseTable`, or pass one): ``ask(rows)`` then costs only
            those rows, and ``tell`` rebuilds the population's noise by a copy, which is what keeps a
            run of many processes from spending its time on ``randn`` (README, "Scaling out").
    """

    name = "strategy"
    default_lr = 1.0
    #: ``_perturb`` acts on each row alone (elementwise), so a subset of rows gets the same bits as
    #: the whole population; a strategy with a matrix product (xNES) sets False and always perturbs all.
    rowwise = True
    #: with antithetic table noise, ``tell`` calls ``_update_mirrored`` with sums over the first
    #: half's windows (``z = [half, -half]``): no ``(P, D)`` tensor is built (OpenES).
    mirrored_update = False

    def __init__(
        self,
        x0: Tensor | nn.Module,
        *,
        sigma: float,
        popsize: int | None,
        antithetic: bool,
        shaping: str | None,
        seed: int,
        optimizer: OptimizerFactory | None,
        lr: float | None,
        on_non_finite: str,
        noise: str | NoiseTable = "generator",
    ):
        self.module = x0 if isinstance(x0, nn.Module) else None
        centre = flat_parameters(x0) if self.module is not None else _check_x0(x0)
        self.dim = centre.shape[0]
        sigma = float(sigma)
        if not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
        if popsize is None:
            popsize = default_popsize(self.dim) + (default_popsize(self.dim) % 2 if antithetic else 0)
        if not isinstance(popsize, (int, np.integer)) or isinstance(popsize, bool) or popsize < 2:
            raise ValueError(f"popsize must be an integer >= 2, got {popsize!r}")
        if antithetic and popsize % 2:
            raise ValueError(f"popsize must be even with antithetic=True (mirrored pairs), got {popsize}")
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of None, 'centered_rank', 'nes'; got {shaping!r}")
        if on_non_finite not in ("raise", "worst"):
            raise ValueError(f"on_non_finite must be 'raise' or 'worst', got {on_non_finite!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if isinstance(noise, NoiseTable):
            self.noise_table: NoiseTable | None = noise
        elif noise in ("generator", "table"):
            self.noise_table = noise_table() if noise == "table" else None
        else:
            raise ValueError(f"noise must be 'generator', 'table' or a NoiseTable, got {noise!r}")
        if self.noise_table is not None and self.noise_table.size < self.dim:
            raise ValueError(
                f"noise: the table holds {self.noise_table.size} numbers, fewer than the {self.dim} parameters"
            )
        if optimizer is not None and lr is not None:
            raise ValueError("pass lr= only with the default optimizer; set it in optimizer= instead")
        lr = self.default_lr if lr is None else float(lr)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.popsize = int(popsize)
        self.antithetic = bool(antithetic)
        self.shaping = None if shaping == "none" else shaping
        self.seed = int(seed)
        self.on_non_finite = on_non_finite
        self.generation = 0
        self.mean = centre.clone().requires_grad_(True)
        self.optimizer = (optimizer or self.default_optimizer)([self.mean])
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must build a torch.optim.Optimizer, got {type(self.optimizer).__name__}"
            )
        if self.module is not None:
            module = self.module
            self.optimizer.register_step_post_hook(lambda *_: write_parameters(module, self.mean))
        self._z: Tensor | None = None  # the population's noise from ask() (generator noise)
        self._asked = False
        self._losses: Tensor | None = None
        self._last: tuple[Tensor, Callable[[], Tensor]] | None = None

    # -- what a strategy defines ------------------------------------------------------------
    def default_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """SGD with the natural-gradient learning rate (NES strategies)."""
        return torch.optim.SGD(params, lr=self.lr)

    def _perturb(self, z: Tensor) -> Tensor:
        """The candidates' offsets from the mean, ``(P, D)``, for standard-normal ``z``."""
        raise NotImplementedError

    def _update(self, weights: Tensor, z: Tensor) -> tuple[Tensor, Callable[[], Tensor]]:
        """Set ``mean.grad``, adapt the spread; return ``(coefficients (P,), directions)``, where
        ``directions()`` builds the ``(P, D)`` tensor with ``mean.grad == (coefficients[:, None] *
        directions()).sum(0)`` (for diagnostics: a function, so that a generation does not pay for a
        tensor nobody reads)."""
        raise NotImplementedError

    def _update_mirrored(
        self, weights: Tensor, weighted_sum: Callable[[Tensor], Tensor], half: Callable[[], Tensor]
    ) -> tuple[Tensor, Callable[[], Tensor]]:
        """``_update(weights, cat([half(), -half()]))`` for strategies with ``mirrored_update = True``,
        given ``weighted_sum(c) = sum_j c_j half()_j`` (computed without building ``half()``)."""
        raise NotImplementedError

    @property
    def scale(self) -> float:
        """A typical standard deviation of the search distribution (geometric mean over coordinates)."""
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- the protocol -----------------------------------------------------------------------
    def generation_seed(self, generation: int | None = None) -> int:
        """Seed of a generation's noise (the current one by default)."""
        return generation_seed(self.seed, self.generation if generation is None else generation)

    def _seed_noise(self, generation: int, index: Tensor) -> Tensor:
        """Standard-normal ``z`` of candidates ``index`` (consecutive int64 in ``[0, popsize)``) of
        ``generation``, from the seed alone: row ``i`` of the noise block (or table window ``i``),
        negated in the mirrored half of an antithetic population."""
        rows = self.popsize // 2 if self.antithetic else self.popsize
        seed = self.generation_seed(generation)
        kw = dict(dtype=self.mean.dtype, device=self.mean.device)
        table = self.noise_table
        offsets = table.offsets(seed, rows, self.dim) if table is not None else None
        if index.numel() == self.popsize:  # the whole population: each row once, mirrored by negation
            if table is not None:
                block = table.windows(offsets, self.dim, **kw)
            else:
                block = noise_block(seed, rows, self.dim, **kw)
            return torch.cat([block, -block]) if self.antithetic else block
        mirrored = index >= rows
        row = torch.where(mirrored, index - rows, index)
        if table is not None:
            z = table.windows(offsets[row], self.dim, **kw)
        else:
            z = noise_block(seed, rows, self.dim, **kw)[row.to(self.mean.device)]
        z[mirrored.to(z.device)] *= -1
        return z

    def _noise(self, rows: slice) -> Tensor:
        """The current generation's ``z`` of candidates ``rows``; strategies whose candidates are not
        all seed-addressed (SNES's two-point line pair) override it."""
        return self._seed_noise(self.generation, torch.arange(self.popsize)[rows])

    def candidate_noise(self, index: int, generation: int | None = None) -> Tensor:
        """Standard-normal ``z`` ``(D,)`` of candidate ``index``, from (generation seed, index) alone."""
        if not 0 <= index < self.popsize:
            raise ValueError(f"index must be in [0, {self.popsize}), got {index}")
        if generation is None or generation == self.generation:
            return self._noise(slice(index, index + 1))[0]
        return self._seed_noise(generation, torch.tensor([index]))[0]

    def ask(self, rows: slice | None = None) -> Tensor:
        """The generation's candidates ``(popsize, D)``, in x0's dtype; asking again repeats them.

        ``rows``: only these candidates (a slice of ``range(popsize)``), e.g. a process's share in a
        run of many: with ``noise="table"`` they cost only their own rows. ``tell`` still takes
        every candidate's loss.
        """
        if rows is None:
            rows = slice(None)
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"rows must be a slice of consecutive candidates, got {rows!r}")
        partial = self.noise_table is not None and self.rowwise
        if partial:  # only these rows; tell() rebuilds the population's noise from the table
            z, self._z = self._noise(rows), None
        else:  # the whole population's noise, once per generation; tell() uses it
            if self._z is None:
                self._z = self._noise(slice(None))
            z = self._z
        self._asked = True
        with torch.no_grad():
            X = self.mean.detach() + self._perturb(z)
        return X if partial else X[rows]

    def tell(self, losses: Tensor | Sequence[float] | np.ndarray) -> None:
        """Take the losses ``(popsize,)`` of the candidates of the last ``ask()``.

        Sets ``mean.grad`` (the search gradient; see each strategy) and adapts the spread; call
        ``optimizer.step()`` afterwards to move the centre.
        """
        if not self._asked:
            raise RuntimeError("tell() needs the candidates of an ask() first")
        losses = self._losses = self._check_losses(losses)  # kept for strategies that rank (TPA)
        weights = shape(losses, self.shaping, self.antithetic)
        with torch.no_grad():
            if self._z is None and self.antithetic and self.mirrored_update:
                # table noise: sums over the first half's windows; the mirrored half is their negation
                assert self.noise_table is not None
                table, h, generation = self.noise_table, self.popsize // 2, self.generation
                offsets = table.offsets(self.generation_seed(), h, self.dim)
                self._last = self._update_mirrored(
                    weights,
                    lambda c: table.weighted_sum(offsets, c, self.dim).to(self.mean.device),
                    lambda: self._seed_noise(
                        generation, torch.arange(h)
                    ),  # this generation's, if asked later
                )
            else:
                z = self._z if self._z is not None else self._noise(slice(None))
                self._last = self._update(weights, z)
        self._z, self._asked = None, False
        self.generation += 1

    def gradient_stats(self) -> GradientStats:
        """Noise of the last ``tell``'s mean gradient, as ``sg.diagnostics.GradientStats``.

        Each independent unit of the population (a candidate, or a mirrored pair) is one
        "estimate": ``mean`` is the gradient ``tell`` set (before the optimiser), ``variance`` the
        per-unit variance per coordinate, ``standard_error`` that of ``mean`` and ``snr`` the
        per-unit signal-to-noise ratio (multiply by ``sqrt(repeats)`` for the generation's). With
        rank shaping the units are coupled through the ranks, so these figures are approximate.
        """
        if self._last is None:
            raise RuntimeError("gradient_stats() needs a tell() first")
        coefficients, build_directions = self._last
        directions = build_directions()
        units = coefficients[:, None] * directions * coefficients.shape[0]
        if self.antithetic:
            half = units.shape[0] // 2
            units = (units[:half] + units[half:]) / 2
        units = units.double()
        n = units.shape[0]
        mean, variance = units.mean(0), units.var(0)
        return GradientStats(
            name=self.name,
            mean=mean,
            variance=variance,
            standard_error=(variance / n).sqrt(),
            snr=mean.abs() / variance.sqrt().clamp_min(1e-300),
            bias=None,
            z_score=None,
            seconds_per_estimate=float("nan"),
            repeats=n,
            value_mean=float("nan"),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run: centre, spread, optimiser, generation, seed."""
        return {
            "strategy": self.name,
            "mean": self.mean.detach().clone(),
            "generation": self.generation,
            "seed": self.seed,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),  # optimisers update state in place
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (of the same strategy and dimension)."""
        if state.get("strategy") != self.name:
            raise ValueError(f"state_dict is for strategy {state.get('strategy')!r}, not {self.name!r}")
        mean = state["mean"]
        if mean.shape != self.mean.shape:
            raise ValueError(
                f"state_dict's mean has shape {tuple(mean.shape)}, expected {tuple(self.mean.shape)}"
            )
        with torch.no_grad():
            self.mean.copy_(mean)
        self.generation = int(state["generation"])
        self.seed = int(state["seed"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_extra_state(state)
        self._z, self._asked = None, False
        if self.module is not None:
            write_parameters(self.module, self.mean)

    # -- helpers ----------------------------------------------------------------------------
    def _check_losses(self, losses: Tensor | Sequence[float] | np.ndarray) -> Tensor:
        losses = torch.as_tensor(losses).detach().to(dtype=self.mean.dtype, device=self.mean.device)
        if losses.shape != (self.popsize,):
            raise ValueError(
                f"losses must have shape ({self.popsize},) (one per candidate), got {tuple(losses.shape)}"
            )
        bad = ~torch.isfinite(losses)
        if bool(bad.any()):
            index = bad.nonzero()[:, 0].tolist()
            if self.on_non_finite == "raise":
                raise ValueError(
                    f"losses: non-finite value at candidate index {index} ({losses[bad].tolist()}); "
                    "pass on_non_finite='worst' to rank such candidates last"
                )
            if bool(bad.all()):
                raise ValueError("losses: every candidate's loss is non-finite; nothing to rank")
            finite = losses[~bad]
            # Worse than every finite loss, by a margin that keeps the unshaped gradient finite.
            worst = finite.max() + (finite.max() - finite.min()).clamp_min(1.0)
            losses = torch.where(bad, worst, losses)
        return losses


def _check_x0(x0: Any) -> Tensor:
    if not isinstance(x0, Tensor):
        raise TypeError(f"x0 must be a 1-D floating tensor or an nn.Module, got {type(x0).__name__}")
    if x0.dim() != 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty 1-D tensor (D,), got shape {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating tensor (float32/float64), got {x0.dtype}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains non-finite values")
    return x0.detach()
