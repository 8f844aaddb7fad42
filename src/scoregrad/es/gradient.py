"""The search gradient: the score-function estimator of a Normal search distribution.

For ``x = m + sigma * B z`` with ``z ~ N(0, I)``, the log-derivative trick gives
``grad E[f(x)] = E[f(x) grad log N(x; m, sigma^2 B B^T)]`` (Williams, 1992; Wierstra et al., 2014).
In standardised coordinates the scores of a Normal are

* with respect to the mean, times ``sigma B``: ``z``;
* with respect to ``log sigma`` (per coordinate, separable case): ``z**2 - 1``;
* with respect to ``M`` in ``A = A0 expm(M / 2)`` at ``M = 0`` (xNES's local coordinates): ``z z^T - I``.

This module is the one place where ES computes them. It does not go through ``sg.expectation``
and a ``torch.distributions.Normal`` because that builds an autograd graph over the ``(P, D)``
log-probabilities every generation: measured with one thread, the surrogate's forward and
backward cost 245 us per generation at D = 100, P = 18 (817 us at D = 1000, P = 24), the closed
form 19 us (30 us), i.e. 13 us against 1 us per evaluation, while the peers' whole overhead is
16-75 us per evaluation. ``tests/es/test_es_gradient.py`` checks that both give the same
gradient, against ``sg.surrogate.score_function_surrogate``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["weighted_scores"]


def weighted_scores(
    weights: Tensor, z: Tensor, *, full: bool = False, shape: bool = True
) -> tuple[Tensor, Tensor | None]:
    """``sum_i w_i * score_i`` of a Normal, in standardised coordinates.

    Args:
        weights: ``(P,)`` shaped losses (see :mod:`scoregrad.es.shaping`).
        z: ``(P, D)`` standard-normal noise of the candidates.
        full: return the ``(D, D)`` shape gradient of a full covariance instead of the ``(D,)``
            log-standard-deviation gradient.
        shape: compute the shape gradient at all (``False``: ``g_shape`` is ``None``, for a fixed
            sigma; it costs a pass over ``(P, D)``).

    Returns:
        ``(g_mean, g_shape)``: ``g_mean = sum_i w_i z_i`` of shape ``(D,)`` (divide by ``sigma``
        for the gradient with respect to the mean, multiply by it for the natural gradient), and
        ``g_shape = sum_i w_i (z_i**2 - 1)`` ``(D,)`` or ``sum_i w_i (z_i z_i^T - I)`` ``(D, D)``.
    """
    g_mean = weights @ z
    if not shape:
        return g_mean, None
    total = weights.sum()
    if full:
        g_shape = (z.T * weights) @ z - total * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    else:
        g_shape = weights @ (z * z) - total
    return g_mean, g_shape
