"""``minimize(f, x0, method=...)``: the ask/evaluate/tell loop, for functions of a tensor."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from scoregrad import distributed
from scoregrad.es.base import Strategy

__all__ = ["minimize", "SearchResult", "STRATEGIES", "make_strategy"]


def _strategies() -> dict[str, type[Strategy]]:
    from scoregrad.es.cmaes import CMAES
    from scoregrad.es.openes import OpenES
    from scoregrad.es.pgpe import PGPE
    from scoregrad.es.snes import SNES
    from scoregrad.es.xnes import XNES

    return {"openes": OpenES, "snes": SNES, "xnes": XNES, "pgpe": PGPE, "cmaes": CMAES}


STRATEGIES = ("openes", "snes", "xnes", "pgpe", "cmaes")


def make_strategy(method: str, x0: Any, **kwargs: Any) -> Strategy:
    """The strategy called ``method`` (one of :data:`STRATEGIES`), built with ``kwargs``."""
    table = _strategies()
    if method not in table:
        raise ValueError(f"method must be one of {list(STRATEGIES)}, got {method!r}")
    return table[method](x0, **kwargs)


@dataclass
class SearchResult:
    """What :func:`minimize` returns.

    Attributes:
        x: the best candidate evaluated, ``(D,)`` in x0's dtype.
        fun: its loss.
        evaluations: number of calls of ``f`` on a candidate.
        history: one dict per generation: ``generation``, ``evaluations``, ``best`` (lowest loss so
            far), ``mean`` (mean loss of the generation), ``sigma`` (the strategy's scale), ``seconds``.
        strategy: the strategy object, to continue or inspect.
        reached_target: whether ``fun <= target``.
    """

    x: Tensor
    fun: float
    evaluations: int
    history: list[dict[str, float]] = field(default_factory=list)
    strategy: Strategy | None = None
    reached_target: bool = False


def minimize(
    f: Callable[[Tensor], Tensor],
    x0: Tensor,
    method: str = "snes",
    sigma0: float = 0.5,
    budget: int = 10_000,
    seed: int = 0,
    vectorize: bool = True,
    *,
    popsize: int | None = None,
    target: float | None = None,
    **options: Any,
) -> SearchResult:
    """Minimise a black-box ``f`` with a search strategy.

    Args:
        f: ``(P, D) -> (P,)`` losses of a whole population, or ``(D,) -> scalar`` with ``vectorize=False``.
        x0: the starting centre ``(D,)``; its dtype is kept.
        method: ``"openes"``, ``"snes"``, ``"xnes"``, ``"pgpe"`` or ``"cmaes"`` (pycma).
        sigma0: initial standard deviation.
        budget: most evaluations of ``f``; the run stops before a generation would exceed it.
        seed: seed of the noise.
        vectorize: call ``f`` once per generation on ``(P, D)`` (else once per candidate).
        popsize: candidates per generation (``None``: the strategy's default).
        target: stop as soon as a loss ``<= target`` is seen.
        **options: passed to the strategy (``antithetic``, ``shaping``, ``lr``, ...).

    Under ``torchrun`` every process runs ``minimize`` with the same arguments; each builds and
    evaluates its share of every generation and the processes exchange only the ``P`` losses
    (Salimans et al., 2017), so every process holds the same result as one process would, bit for
    bit. With ``noise="table"`` (an option of the strategies) the update rebuilds the population's
    noise by a copy from a shared table instead of ``randn``: the choice for many processes.
    """
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    kwargs = dict(sigma=sigma0, seed=seed, **options)
    if popsize is not None or method != "openes":
        kwargs["popsize"] = popsize
    es = make_strategy(method, x0, **kwargs)
    best_x, best, evaluations, history = es.mean.detach().clone(), math.inf, 0, []

    def evaluate(X: Tensor) -> Tensor:
        with torch.no_grad():
            losses = f(X) if vectorize else torch.stack([torch.as_tensor(f(x)) for x in X])
        return torch.as_tensor(losses).reshape(-1).to(X.dtype)

    distributed.init()  # under torchrun, each process evaluates its share; only losses are exchanged
    own = distributed.shard(es.popsize)  # every candidate, in one process
    best_rank = 0  # the process holding best_x (x0 until a candidate beats it: every process has x0)
    start = time.perf_counter()
    while evaluations + es.popsize <= budget:
        X = es.ask(rows=own)  # this process's candidates: seed-addressed noise, no exchange
        losses = distributed.gather_losses(evaluate(X), es.popsize)
        evaluations += es.popsize
        es.tell(losses)  # validates: shape, non-finite values
        i = int(losses.nan_to_num(nan=math.inf).argmin())
        if float(losses[i]) < best:
            best, best_rank = (
                float(losses[i]),
                next(r for r in range(distributed.world_size()) if i < distributed.shard(es.popsize, r).stop),
            )
            if own.start <= i < own.stop:
                best_x = X[i - own.start].clone()
        es.optimizer.step()
        history.append(
            {
                "generation": es.generation,
                "evaluations": evaluations,
                "best": best,
                "mean": float(losses.mean()),
                "sigma": es.scale,
                "seconds": time.perf_counter() - start,
            }
        )
        if target is not None and best <= target:
            break
    best_x = distributed.broadcast(best_x, best_rank)  # one message at the end, not one per improvement
    return SearchResult(best_x, best, evaluations, history, es, target is not None and best <= target)
