"""Cumulative step-size adaptation (CSA), shared by xNES and SNES.

Hansen & Ostermeier (2001), "Completely Derandomized Self-Adaptation in Evolution Strategies";
constants from Hansen (2016), "The CMA Evolution Strategy: A Tutorial", eqs. (43)-(44). The path
of the normalised mean steps (in the standardised coordinates ``z``) is longer than a random
walk's when consecutive steps agree (sigma too small) and shorter when they cancel (sigma too
large); sigma is multiplied by ``exp(c / d * (|path| / E|N(0, I)| - 1))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoregrad.es.shaping import nes_utilities

__all__ = ["CumulativeStepSize"]


class CumulativeStepSize:
    """CSA for a population of ``popsize`` ranked by NES utilities, in ``dim`` dimensions.

    ``factor(step, weights)`` takes the z-space mean step ``-sum_i w_i z_i`` (which under random
    selection is ``N(0, sum_i w_i^2 I)``) and the weights, updates the path and returns the
    multiplicative change of sigma.
    """

    def __init__(self, dim: int, popsize: int, dtype: torch.dtype, device: torch.device):
        # Variance-effective selection mass of the NES utilities (their positive part sums to 1).
        positive = 1.0 / popsize - nes_utilities(torch.arange(float(popsize), dtype=torch.float64))
        mu_eff = 1.0 / float((positive**2).sum())
        self.mu_eff = mu_eff
        self.c = (mu_eff + 2) / (dim + mu_eff + 5)
        self.damping = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (dim + 1)) - 1) + self.c
        self.expected_norm = math.sqrt(dim) * (1 - 1 / (4 * dim) + 1 / (21 * dim * dim))
        self.path = torch.zeros(dim, dtype=dtype, device=device)

    def factor(self, step: Tensor, weights: Tensor) -> float:
        normalised = step / float((weights**2).sum()) ** 0.5
        self.path = (1 - self.c) * self.path + math.sqrt(self.c * (2 - self.c)) * normalised
        return math.exp(self.c / self.damping * (float(self.path.norm()) / self.expected_norm - 1))
