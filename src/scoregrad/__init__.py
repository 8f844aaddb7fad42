"""scoregrad: gradients of expectations of black-box functions, for PyTorch.

The public surface::

    import scoregrad as sg
    value = sg.expectation(f, dist, num_samples=16, estimator="score_function", baseline="leave_one_out")

Estimators (``sg.ScoreFunction``, ``sg.Pathwise``, ...), baselines (``sg.baselines``), samplers
(``sg.sampling``), surrogate building blocks (``sg.surrogate``), diagnostics
(``sg.diagnostics``) and stochastic computation graphs (``with sg.graph() as g``). Policy gradients
live in ``scoregrad.rl``, sequence rewards in ``scoregrad.seq``, search gradients in ``scoregrad.es``.
"""

from __future__ import annotations

from scoregrad import baselines, estimators, sampling, surrogate
from scoregrad.estimators import (
    ARM,
    ESTIMATORS,
    DisARM,
    Exact,
    GumbelSoftmax,
    MeasureValued,
    Pathwise,
    ScoreFunction,
    StraightThrough,
)
from scoregrad.expectation import expectation
from scoregrad.scg import REBAR, RELAX, VIMCO, StochasticGraph, UnorderedSet, graph

__version__ = "0.1.0"

__all__ = [
    "expectation",
    "graph",
    "StochasticGraph",
    "VIMCO",
    "REBAR",
    "RELAX",
    "UnorderedSet",
    "ScoreFunction",
    "Pathwise",
    "MeasureValued",
    "Exact",
    "ARM",
    "DisARM",
    "GumbelSoftmax",
    "StraightThrough",
    "ESTIMATORS",
    "baselines",
    "estimators",
    "sampling",
    "surrogate",
    "diagnostics",
    "rl",
    "seq",
    "es",
    "__version__",
]


def __getattr__(name: str):
    # diagnostics, rl (gymnasium, safetensors), seq and es load on first use, keeping `import scoregrad` light.
    if name in ("diagnostics", "rl", "seq", "es"):
        import importlib

        return importlib.import_module(f"scoregrad.{name}")
    raise AttributeError(f"module 'scoregrad' has no attribute {name!r}")
