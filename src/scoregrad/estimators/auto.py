"""``estimator="auto"``: choose the estimator by measured gradient variance per unit cost.

No estimator is best everywhere (Mohamed, Rosca, Figurnov & Mnih, 2020): pathwise wins on smooth
``f``, loses on oscillating ``f`` and cannot see a thresholded one; exact enumeration and DisARM are
unbeatable on a few bits; the score function works for anything. :class:`Auto` asks the registry
which unbiased estimators apply to the distribution, runs each ``trials`` times on the first call,
and keeps the one with the lowest

    score = trace(Cov[gradient]) x cost,

the variance of one estimate times what it cost (function evaluations by default, or seconds).
That is the work needed to reach a given precision: averaging ``m`` estimates divides the variance
by ``m`` and multiplies the cost by ``m``. The choice is re-checked every ``recheck_every`` calls,
a simple form of the bandit over estimators of Neufeld, Gyorgy, Schuurmans & Szepesvari (2014).

**It stays unbiased.** Candidates are the registry's unbiased estimators only (relaxations join only
with ``include_biased=True``). Pathwise joins only when ``f`` carries a gradient back to its input
and that gradient is not zero wherever it was measured (a threshold, ``round`` or ``argmax`` make
pathwise gradients zero, hence biased). The estimate returned is computed on fresh samples after
the choice, so the choice, a function of earlier samples only, cannot bias it.

Use one ``sg.estimators.Auto()`` object across calls so that the choice is kept; the name
``"auto"`` makes a new one on every call, which chooses (and pays for the trials) every time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, TransformedDistribution

from scoregrad.estimators import registry
from scoregrad.estimators.base import CostFunction, check_num_samples
from scoregrad.sampling import IID, Sampler

__all__ = ["Auto", "AutoRow"]


@dataclass
class AutoRow:
    """One candidate as measured: total gradient variance, cost per estimate, and the product."""

    estimator: str
    variance: float
    evaluations: float
    seconds: float
    score: float
    note: str = ""


def _parameters(dist: Distribution) -> list[Tensor]:
    """The floating-point tensors of ``dist`` (through Independent/Transformed) that carry gradient."""
    from scoregrad.estimators.score_function import given_parameters

    while isinstance(dist, (Independent, TransformedDistribution)):
        dist = dist.base_dist
    tensors = [getattr(dist, name) for name in given_parameters(dist)]
    return [t for t in tensors if isinstance(t, Tensor) and t.is_floating_point() and t.requires_grad]


class _Counting:
    """Wraps ``f`` to count function evaluations (rows of the leading sample dimension)."""

    def __init__(self, f: CostFunction) -> None:
        self.f, self.evaluations = f, 0

    def __call__(self, x: Tensor) -> Tensor:
        self.evaluations += x.shape[0]
        return self.f(x)


class Auto:
    """Pick the estimator with the lowest gradient variance x cost, measured on the first calls.

    Args:
        trials: estimates per candidate when choosing (at least 2; more gives a steadier choice).
        recheck_every: choose again after this many calls (the problem may change as ``theta`` moves).
        cost: ``"evaluations"`` (calls of ``f`` per estimate, counted: the choice is reproducible under
            ``torch.manual_seed``) or ``"time"`` (seconds per estimate, measured: the real cost,
            but timing noise can change the choice between runs).
        include_biased: also consider the biased relaxations (``gumbel_softmax``, ``straight_through``).

    Attributes:
        choice: the chosen estimator object (None before the first call).
        table: the :class:`AutoRow` measured at the last choice, best first;
            ``sg.diagnostics.auto_table(auto)`` prints it.
    """

    name = "auto"

    def __init__(
        self,
        trials: int = 32,
        recheck_every: int = 500,
        cost: Literal["evaluations", "time"] = "evaluations",
        include_biased: bool = False,
    ) -> None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 2:
            raise ValueError(f"Auto: trials must be an int >= 2, got {trials!r}")
        if isinstance(recheck_every, bool) or not isinstance(recheck_every, int) or recheck_every < 1:
            raise ValueError(f"Auto: recheck_every must be a positive int, got {recheck_every!r}")
        if cost not in ("evaluations", "time"):
            raise ValueError(f"Auto: cost must be 'evaluations' or 'time', got {cost!r}")
        self.trials, self.recheck_every, self.cost = trials, recheck_every, cost
        self.include_biased = include_biased
        self.choice: Any = None
        self.table: list[AutoRow] = []
        self.calls = 0

    def __repr__(self) -> str:
        chosen = getattr(self.choice, "name", None)
        return f"Auto(choice={chosen!r}, trials={self.trials}, cost={self.cost!r})"

    def __call__(
        self, f: CostFunction, dist: Distribution, num_samples: int, *, sampler: Sampler, context: Any = None
    ) -> Tensor:
        check_num_samples(num_samples, self.name)
        if self.choice is None or self.calls % self.recheck_every == 0:
            self.choose(f, dist, num_samples, context)
        self.calls += 1
        # Fresh samples: the choice depended only on the trial draws above.
        return self.choice(f, dist, num_samples, sampler=IID(), context=context)

    def choose(self, f: CostFunction, dist: Distribution, num_samples: int, context: Any = None) -> Any:
        """Measure every applicable candidate on ``(f, dist, num_samples)``; keep and return the best."""
        params = _parameters(dist)
        rows, candidates = [], {}
        for spec in registry.applicable(dist, num_samples, include_biased=self.include_biased):
            estimator = _candidate(spec.name, num_samples)
            row = self._measure(estimator, spec, f, dist, num_samples, params, context)
            rows.append(row)
            if row.note == "":
                candidates[row.estimator] = estimator
        if not candidates:
            raise TypeError(
                f"estimator 'auto': no unbiased estimator applies to {type(dist).__name__} with num_samples="
                f"{num_samples}: " + "; ".join(f"{r.estimator}: {r.note}" for r in rows)
            )
        # Lowest variance x cost; ties (zero variance, say) go to the cheaper, then to registry order.
        order = {name: i for i, name in enumerate(registry.SPECS)}
        rows.sort(
            key=lambda r: (r.note != "", r.score, self._cost(r), order.get(r.estimator.split("+")[0], 99))
        )
        self.table = rows
        self.choice = candidates[rows[0].estimator]
        return self.choice

    def _cost(self, row: AutoRow) -> float:
        return row.evaluations if self.cost == "evaluations" else row.seconds

    def _measure(self, estimator, spec, f, dist, num_samples, params, context) -> AutoRow:
        label = _label(estimator)
        if spec.differentiable_f:
            note = _gradient_note(f, dist, num_samples)
            if note:
                return AutoRow(label, float("nan"), float("nan"), float("nan"), float("inf"), note)
        counting, grads, seconds = _Counting(f), [], []
        try:
            for _ in range(self.trials):
                start = time.perf_counter()
                estimate = estimator(counting, dist, num_samples, sampler=IID(), context=context)
                if params:
                    grad = torch.autograd.grad(estimate.sum(), params, retain_graph=True, allow_unused=True)
                    grads.append(
                        torch.cat([g.flatten() for g in grad if g is not None] or [estimate.new_zeros(1)])
                    )
                seconds.append(time.perf_counter() - start)
        except (TypeError, ValueError) as error:  # e.g. exact over max_support: not applicable here
            return AutoRow(label, float("nan"), float("nan"), float("nan"), float("inf"), str(error))
        variance = float(torch.stack(grads).var(0).sum()) if grads else 0.0
        evaluations = counting.evaluations / self.trials
        row = AutoRow(label, variance, evaluations, float(torch.tensor(seconds).median()), 0.0)
        row.score = variance * self._cost(row)
        return row


def _candidate(name: str, num_samples: int) -> Any:
    from scoregrad.estimators import ESTIMATORS, ScoreFunction

    if name == "score_function":  # leave-one-out whenever there is another sample to leave
        return ScoreFunction("leave_one_out" if num_samples >= 2 else None)
    return ESTIMATORS[name]()


def _label(estimator: Any) -> str:
    baseline = getattr(estimator, "baseline", None)
    if baseline is not None and type(baseline).__name__ == "LeaveOneOut":
        return f"{estimator.name}+leave_one_out"
    return estimator.name


def _gradient_note(f: CostFunction, dist: Distribution, num_samples: int) -> str:
    """Why pathwise-style estimators cannot be trusted with ``f`` here ("" if they can)."""
    if dist.has_rsample:
        x = dist.rsample(torch.Size([num_samples]))
    else:  # a relaxation's input: relaxed Bernoulli / OneHotCategorical samples
        from scoregrad.estimators.discrete import relaxed_sample

        x = relaxed_sample(dist, num_samples, 0.5, "gumbel_softmax")[0]
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        if not isinstance(y, Tensor) or not y.requires_grad:
            return "f carries no gradient back to its input"
        (dx,) = torch.autograd.grad(y.float().sum(), x, allow_unused=True)
    if dx is None or not bool(dx.ne(0).any()):
        return (
            "f's gradient is zero wherever measured (a threshold, round or argmax?): pathwise would be biased"
        )
    return ""
