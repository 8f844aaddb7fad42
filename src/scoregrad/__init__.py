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

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Everything loads on first use (PEP 562), so `import scoregrad` costs nothing until a name is touched:
# the command line can then handle Ctrl-C while torch is still importing, and `import scoregrad.rl`
# does not pay for what it does not use.
_SUBMODULES = (
    "baselines",
    "estimators",
    "sampling",
    "surrogate",
    "diagnostics",
    "rl",
    "seq",
    "es",
    "distributed",
)
_NAMES = {
    "expectation": "scoregrad.monte_carlo",
    "graph": "scoregrad.scg",
    "StochasticGraph": "scoregrad.scg",
    "VIMCO": "scoregrad.scg",
    "REBAR": "scoregrad.scg",
    "RELAX": "scoregrad.scg",
    "UnorderedSet": "scoregrad.scg",
    "ScoreFunction": "scoregrad.estimators",
    "Pathwise": "scoregrad.estimators",
    "MeasureValued": "scoregrad.estimators",
    "Exact": "scoregrad.estimators",
    "ARM": "scoregrad.estimators",
    "DisARM": "scoregrad.estimators",
    "GumbelSoftmax": "scoregrad.estimators",
    "StraightThrough": "scoregrad.estimators",
    "ESTIMATORS": "scoregrad.estimators",
    "Auto": "scoregrad.estimators",
}

__all__ = [*_NAMES, *_SUBMODULES, "__version__"]

if TYPE_CHECKING:  # static tools see the real names
    from scoregrad import baselines, diagnostics, es, estimators, rl, sampling, seq, surrogate  # noqa: F401
    from scoregrad.estimators import (  # noqa: F401
        ARM,
        ESTIMATORS,
        Auto,
        DisARM,
        Exact,
        GumbelSoftmax,
        MeasureValued,
        Pathwise,
        ScoreFunction,
        StraightThrough,
    )
    from scoregrad.monte_carlo import expectation  # noqa: F401
    from scoregrad.scg import REBAR, RELAX, VIMCO, StochasticGraph, UnorderedSet, graph  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"scoregrad.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'scoregrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES, *_SUBMODULES])
