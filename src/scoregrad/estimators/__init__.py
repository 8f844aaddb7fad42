"""Gradient estimators for ``E_{x ~ p(theta)}[f(x)]``, one family per module, one protocol for all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scoregrad.estimators import registry
from scoregrad.estimators.auto import Auto
from scoregrad.estimators.base import Estimator, evaluate_cost
from scoregrad.estimators.discrete import ARM, DisARM, GumbelSoftmax, StraightThrough
from scoregrad.estimators.exact import Exact
from scoregrad.estimators.measure_valued import MeasureValued
from scoregrad.estimators.pathwise import Pathwise
from scoregrad.estimators.score_function import ScoreFunction

__all__ = [
    "Estimator",
    "ScoreFunction",
    "Pathwise",
    "MeasureValued",
    "Exact",
    "ARM",
    "DisARM",
    "GumbelSoftmax",
    "StraightThrough",
    "Auto",
    "ESTIMATORS",
    "resolve_estimator",
    "evaluate_cost",
]

ESTIMATORS: dict[str, Callable[..., Estimator]] = {
    "score_function": ScoreFunction,
    "pathwise": Pathwise,
    "measure_valued": MeasureValued,
    "exact": Exact,
    "arm": ARM,
    "disarm": DisARM,
    "gumbel_softmax": GumbelSoftmax,
    "straight_through": StraightThrough,
    "auto": Auto,
}


def resolve_estimator(estimator: str | Estimator, baseline: Any = None) -> Estimator:
    """Turn a name or an object into an estimator.

    ``baseline`` configures a score-function estimator given by name; with any other estimator, or
    with an estimator object (which carries its own baseline), passing it is an error rather than
    being silently ignored.
    """
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose one of {sorted(ESTIMATORS)}")
        if registry.SPECS[estimator].takes_baseline:
            return ScoreFunction(baseline)
        if baseline is not None:
            raise ValueError(f"baseline= applies to estimator 'score_function' only, not {estimator!r}")
        return ESTIMATORS[estimator]()
    if baseline is not None:
        raise ValueError(
            "baseline= applies to an estimator given by name; configure the object instead, "
            "e.g. sg.ScoreFunction(baseline=sg.baselines.LeaveOneOut())"
        )
    if callable(estimator):
        return estimator
    raise TypeError(f"estimator must be a name or an Estimator object, got {estimator!r}")
