"""Statistical helpers shared by the tests: draws of gradient estimates and honest tolerances."""

from __future__ import annotations

import torch
from torch import Tensor

#: How many standard errors an estimate may miss the truth by.
Z = 4.0


def assert_unbiased(draws: Tensor, exact: Tensor, what: str = "gradient", atol: float = 1e-5) -> None:
    """The exact value lies within Z standard errors of the mean of independent ``draws`` (dim 0).

    ``atol`` only covers float rounding for zero-variance estimators (where the standard error is 0).
    """
    draws = draws.double()
    exact = torch.as_tensor(exact, dtype=torch.float64).expand_as(draws[0])
    mean = draws.mean(0)
    standard_error = draws.std(0) / draws.shape[0] ** 0.5
    error = (mean - exact).abs()
    bad = error > Z * standard_error + atol
    assert not bool(bad.any()), (
        f"{what}: mean {mean[bad].tolist()} vs exact {exact[bad].tolist()}, "
        f"{(error / standard_error.clamp_min(1e-300))[bad].tolist()} standard errors away"
    )


def assert_variance_close(
    draws: Tensor, exact_variance: float, relative: float = 0.10, what: str = "variance"
) -> None:
    """The sample variance of ``draws`` (1-D) is within ``relative`` of the exact variance.

    Also checks the test is able to tell: the variance's own standard error (from the fourth moment)
    must be small enough that ``relative`` is at least Z standard errors wide.
    """
    draws = draws.double().reshape(-1)
    n = draws.shape[0]
    variance = draws.var()
    centred = draws - draws.mean()
    variance_se = ((centred**4).mean() - variance**2).clamp_min(0).sqrt() / n**0.5
    assert Z * variance_se <= relative * exact_variance, (
        f"{what}: too few draws ({n}) to resolve {relative:.0%} (standard error {variance_se:.3g} of {exact_variance:.3g})"
    )
    assert abs(variance - exact_variance) <= relative * exact_variance + 1e-9, (
        f"{what}: measured {variance.item():.6g}, exact {exact_variance:.6g}"
    )
