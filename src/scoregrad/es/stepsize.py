"""Step-size adaptation: cumulative (CSA, shared by xNES and SNES) and two-point (TPA, SNES).

Hansen & Ostermeier (2001), "Completely Derandomized Self-Adaptation in Evolution Strategies";
constants from Hansen (2016), "The CMA Evolution Strategy: A Tutorial", eqs. (43)-(44). The path
of the normalised mean steps (in the standardised coordinates ``z``) is longer than a random
walk's when consecutive steps agree (sigma too small) and shorter when they cancel (sigma too
large); sigma is multiplied by ``exp(c / d * (|path| / E|N(0, I)| - 1))``.

TPA: Hansen (2008), "CMA-ES with Two-Point Step-Size Adaptation"; constants of pycma 4's
``CMAAdaptSigmaTPA``, which pycma uses instead of CSA from 300 dimensions on. Two candidates of each
generation lie on the line of the last mean shift, one ahead and one behind; if the one ahead ranks
better, the last step was too short (sigma grows), else too long. In high dimensions with the
default population, CSA's path is too slow to follow: measured on the 1000-D sphere (2 seeds), SNES
needs 99k evaluations to 1e-8 with CSA and 75k with TPA (separable CMA-ES, which uses TPA there: 59k;
README, "Benchmarks: test functions").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoregrad.es.shaping import nes_utilities

__all__ = ["CumulativeStepSize", "TwoPointStepSize"]


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


class TwoPointStepSize:
    """TPA for a population of ``popsize`` in ``dim`` dimensions.

    ``factor(losses, ahead, behind)`` takes the generation's losses and the indices of the two line
    candidates (``mean + sigma * y`` and ``mean - sigma * y``, ``y`` along the last mean shift),
    updates the smoothed rank difference and returns the multiplicative change of sigma.
    """

    def __init__(self, dim: int, popsize: int):
        self.damping = 0.7 + 2 * math.log(dim) + 2 * math.log(max(1, popsize - dim))
        self.c = 0.3  # smoothing of the rank difference
        self.state = 0.0

    def factor(self, losses: Tensor, ahead: int, behind: int) -> float:
        values = losses.tolist()  # a few dozen numbers: Python is faster than small tensor ops
        z = (sum(v < values[behind] for v in values) - sum(v < values[ahead] for v in values)) / (
            len(values) - 1
        )  # in [-1, 1]
        self.state = (1 - self.c) * self.state + self.c * math.copysign(abs(z) ** 0.5, z)
        return math.exp(self.state / self.damping)
