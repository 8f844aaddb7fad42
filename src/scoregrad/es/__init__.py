"""Search gradients and evolution strategies: black-box optimisation of a tensor or an ``nn.Module``.

The gradient of ``E_{x ~ N(m, C)}[f(x)]`` by the log-derivative trick is an evolution strategy
(Wierstra et al., 2014; Salimans et al., 2017). Every strategy here follows one ask/tell protocol
(:class:`Strategy`)::

    es = sg.es.OpenES(x0, sigma=0.1, popsize=50, antithetic=True, shaping="centered_rank", seed=0)
    for _ in range(100):
        X = es.ask()                      # (P, D)
        es.tell(f(X))                     # (P,) losses; sets es.mean.grad
        es.optimizer.step()               # a torch.optim optimiser moves the centre

or the loop in one call: ``sg.es.minimize(f, x0, method="snes")``. Strategies: :class:`OpenES`,
:class:`SNES`, :class:`XNES`, :class:`PGPE` (with :class:`ClipUp`), :class:`CMAES` (pycma).
"""

from __future__ import annotations

from scoregrad.es.base import Strategy, default_popsize
from scoregrad.es.cmaes import CMAES
from scoregrad.es.gradient import weighted_scores
from scoregrad.es.minimize import STRATEGIES, SearchResult, make_strategy, minimize
from scoregrad.es.module import flat_parameters, population_call, write_parameters
from scoregrad.es.noise import NoiseTable, generation_seed, noise_block, noise_rows, noise_table
from scoregrad.es.openes import OpenES
from scoregrad.es.pgpe import PGPE, ClipUp
from scoregrad.es.shaping import centered_ranks, nes_utilities, no_shaping
from scoregrad.es.snes import SNES
from scoregrad.es.xnes import XNES

__all__ = [
    "Strategy",
    "OpenES",
    "SNES",
    "XNES",
    "PGPE",
    "ClipUp",
    "CMAES",
    "minimize",
    "SearchResult",
    "make_strategy",
    "STRATEGIES",
    "population_call",
    "flat_parameters",
    "write_parameters",
    "noise_block",
    "noise_rows",
    "NoiseTable",
    "noise_table",
    "generation_seed",
    "weighted_scores",
    "centered_ranks",
    "nes_utilities",
    "no_shaping",
    "default_popsize",
]
