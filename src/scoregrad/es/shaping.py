"""Fitness shaping: turning a generation's losses into the weights of the search gradient.

Every function takes losses ``(P,)`` (lower is better) and returns weights ``(P,)`` in the same
orientation (a larger weight pushes the search distribution away from that candidate), already
divided so that the search gradient is ``sum_i w_i * score_i``:

=================  ===============================================================================
shaping            what the gradient estimates
=================  ===============================================================================
``None``           ``grad E[f]`` without bias: ``(f_i - b_i) / P`` with ``b`` the mean of the other
                   candidates (iid; Kool et al., 2019) or, with antithetic pairs, any constant
                   (the noise of a mirrored population sums to zero exactly).
``"centered_rank"`` ranks mapped to ``[-0.5, 0.5]`` and divided by ``P`` (Salimans et al., 2017).
                   Biased: it ascends a rank transform of ``f`` (invariant to monotone changes of
                   ``f``), i.e. it favours the median-like behaviour, not ``E[f]``, and ignores
                   how much better a candidate is.
``"nes"``          NES utilities ``max(0, log(P/2 + 1) - log k)`` normalised, minus ``1/P``
                   (Wierstra et al., 2014, "Natural Evolution Strategies", eq. 19). Biased towards
                   the best half: the worse half gets equal weights, so the gradient follows the
                   upper quantile of the fitness distribution (elitist, good for optimisation,
                   not an estimate of ``grad E[f]``).
=================  ===============================================================================
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from scoregrad.baselines import leave_one_out_mean

__all__ = ["SHAPINGS", "no_shaping", "centered_ranks", "nes_utilities", "shape"]


def no_shaping(losses: Tensor, antithetic: bool) -> Tensor:
    """``(f - b) / P``: unbiased; ``b`` is leave-one-out (iid) or the mean (antithetic)."""
    if antithetic:
        return (losses - losses.mean()) / losses.shape[0]
    return (losses - leave_one_out_mean(losses)) / losses.shape[0]


def _ranks(losses: Tensor) -> Tensor:
    """0 for the lowest loss, ``P - 1`` for the highest (ties broken by index)."""
    ranks = torch.empty_like(losses)
    ranks[losses.argsort(stable=True)] = torch.arange(
        losses.shape[0], dtype=losses.dtype, device=losses.device
    )
    return ranks


def centered_ranks(losses: Tensor, antithetic: bool = False) -> Tensor:
    """Ranks scaled to ``[-0.5, 0.5]`` and divided by ``P`` (OpenAI-ES)."""
    P = losses.shape[0]
    return (_ranks(losses) / (P - 1) - 0.5) / P


@functools.lru_cache(maxsize=32)
def _utilities_by_rank(P: int) -> Tensor:
    """NES utilities of ranks 1 (best) .. P, negated, in float64."""
    k = torch.arange(1, P + 1, dtype=torch.float64)
    raw = (math.log(P / 2 + 1) - torch.log(k)).clamp_min(0)
    return -(raw / raw.sum() - 1.0 / P)


def nes_utilities(losses: Tensor, antithetic: bool = False) -> Tensor:
    """Negated NES utilities (best candidate most negative); they sum to zero."""
    table = _utilities_by_rank(losses.shape[0]).to(dtype=losses.dtype, device=losses.device)
    weights = torch.empty_like(losses)
    weights[losses.argsort(stable=True)] = table
    return weights


SHAPINGS = {None: no_shaping, "none": no_shaping, "centered_rank": centered_ranks, "nes": nes_utilities}


def shape(losses: Tensor, shaping: str | None, antithetic: bool) -> Tensor:
    """Dispatch on the shaping name (see the module docstring)."""
    return SHAPINGS[shaping](losses, antithetic)
